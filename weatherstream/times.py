"""Reading a point in time given by a person (command line, query string) as an aware UTC datetime."""

from __future__ import annotations

import datetime as dt
import re

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EARLIEST_EPOCH_S = 100_000_000  # 1973: a smaller number is more likely a year or a typo than epoch seconds


def parse_utc(text: str) -> dt.datetime:
    """``2026-01-31T12:00Z`` (ISO 8601 with a zone), ``2026-01-31`` (midnight UTC) or epoch seconds.

    Raises:
        ValueError: with what to write instead.
    """
    text = text.strip()
    if _DATE_ONLY.match(text):
        return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not _EARLIEST_EPOCH_S <= seconds < 10_000_000_000:
            raise ValueError(f"{text!r} is not a plausible time in epoch seconds: give e.g. 1767225600 or 2026-01-01")
        return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r}: give ISO 8601 with a zone (2026-01-31T12:00Z), a date, or epoch seconds") from None
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: add Z (UTC) or an offset such as +01:00")
    return value.astimezone(dt.timezone.utc)
