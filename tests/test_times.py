import datetime as dt

import pytest

from weatherstream.times import parse_utc

UTC = dt.timezone.utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-31T12:00Z", dt.datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31T13:00+01:00", dt.datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31", dt.datetime(2026, 1, 31, tzinfo=UTC)),
        ("1767225600", dt.datetime(2026, 1, 1, tzinfo=UTC)),
        (" 1767225600.5 ", dt.datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_accepted_forms_give_aware_utc(text: str, expected: dt.datetime) -> None:
    assert parse_utc(text) == expected and parse_utc(text).tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("2026-01-31T12:00", "no time zone"),
        ("2026", "not a plausible time"),
        ("1e400", "not a plausible time"),
        ("yesterday", "give ISO 8601"),
    ],
)
def test_rejected_forms_say_what_to_write(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_utc(text)
