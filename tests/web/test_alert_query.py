"""/api/alerts' query: filters, time range and paging, and what a bad request is told."""

from __future__ import annotations

import datetime as dt
import doctest

import pytest

from weatherstream.web import alertquery
from weatherstream.web.alertquery import MAX_NETWORK_DAYS, BadQuery
from weatherstream.web.alertquery import parse_alert_query as parse

NOW = 1_790_000_000.0
UTC = dt.timezone.utc


def rows() -> list[dict[str, object]]:
    """Newest first, as Cassandra gives them."""
    kinds = ["storm", "heat", "storm", "frost", "storm"]
    return [
        {"alert_id": f"{i}", "kind": k, "severity": "critical" if i % 2 else "warning",
         "state": "open" if i < 3 else "resolved", "city_id": 100 + i % 2}
        for i, k in enumerate(kinds)
    ]  # fmt: skip


def test_filters_combine_and_pages_keep_cassandras_newest_first_order() -> None:
    page = parse({"kind": "storm,frost", "state": "open,resolved", "limit": "2"}, NOW).page(rows(), truncated=False)
    assert [a["alert_id"] for a in page["alerts"]] == ["0", "2"] and page["total"] == 4
    page = parse({"kind": "storm,frost", "offset": "2", "limit": "2"}, NOW).page(rows(), truncated=False)
    assert [a["alert_id"] for a in page["alerts"]] == ["3", "4"]
    page = parse({"severity": "critical", "city": "101"}, NOW).page(rows(), truncated=True)
    assert [a["alert_id"] for a in page["alerts"]] == ["1", "3"] and page["truncated"] is True


def test_default_ranges_are_a_citys_week_and_the_networks_day() -> None:
    now = dt.datetime.fromtimestamp(NOW, tz=UTC)
    city, network = parse({"city": "7"}, NOW), parse({}, NOW)
    assert city.start == now - dt.timedelta(days=7) and network.start == now - dt.timedelta(days=1)
    assert city.end == network.end == now + dt.timedelta(days=1)  # alerts of observations stamped a bit ahead
    since = parse({"since": "2026-09-01T00:00Z", "until": "1790000000"}, NOW)
    assert (since.start, since.end) == (dt.datetime(2026, 9, 1, tzinfo=UTC), now)


@pytest.mark.parametrize(
    ("query", "complaint"),
    [
        ({"kind": "tornado"}, "kind must be one or more of"),
        ({"severity": "high"}, "severity must be one or more of info, warning, critical"),
        ({"state": "closed"}, "state must be one or more of open, update, resolved"),
        ({"city": "x1"}, "city must be a city id"),
        ({"limit": "0"}, "limit must be a whole number from 1 to 500"),
        ({"offset": "-1"}, "offset must be a whole number"),
        ({"since": "yesterday"}, "since:"),
        ({"since": "2026-10-02T00:00Z", "until": "2026-10-01T00:00Z"}, "since must be before until"),
        ({"since": "2000-01-01T00:00Z"}, f"at most {MAX_NETWORK_DAYS} days apart"),
        ({"since": "2026-08-01T00:00Z", "until": "2026-09-01T00:00:01Z"}, f"at most {MAX_NETWORK_DAYS} days apart"),
        ({"limit": "²"}, "limit must be a whole number"),
        ({"offset": "9" * 5000}, "offset must be a whole number"),
        ({"city": "①"}, "city must be a city id"),
        ({"until": "0001-01-01T00:00Z"}, "between the years 1 and 9999"),
    ],
)
def test_a_bad_query_is_told_what_to_change(query: dict[str, str], complaint: str) -> None:
    with pytest.raises(BadQuery, match=complaint):
        parse(query, NOW)


def test_until_alone_looks_back_the_default_span_from_there() -> None:
    until = dt.datetime(2026, 9, 1, tzinfo=UTC)
    assert parse({"until": "2026-09-01T00:00Z"}, NOW).start == until - dt.timedelta(days=1)
    assert parse({"until": "2026-09-01T00:00Z", "city": "7"}, NOW).start == until - dt.timedelta(days=7)
    a_month = parse({"since": "2026-08-01T00:00Z", "until": "2026-09-01T00:00Z"}, NOW)
    assert a_month.end - a_month.start == dt.timedelta(days=MAX_NETWORK_DAYS)


def test_a_truncated_read_says_where_it_stopped() -> None:
    read = [{**row, "observed_at": 100 - i} for i, row in enumerate(rows())]
    assert parse({}, NOW).page(read, truncated=True)["oldest_read"] == 96
    assert parse({}, NOW).page(read, truncated=False)["oldest_read"] is None


def test_one_citys_history_may_span_years() -> None:
    assert parse({"city": "7", "since": "2000-01-01T00:00Z"}, NOW).start.year == 2000


def test_the_modules_example_runs() -> None:
    assert doctest.testmod(alertquery).failed == 0
