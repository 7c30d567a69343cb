"""``/api/alerts``: which alert messages a request asks for (filters, time range, page), and the page of them.

Pure: :func:`parse_alert_query` turns the request's query into an :class:`AlertQuery` (or a :class:`BadQuery`
saying what to change); :meth:`AlertQuery.page` filters and pages rows read from Cassandra, newest first.

Example:
    >>> q = parse_alert_query({"kind": "storm", "limit": "1"}, now=1_700_000_000.0)
    >>> rows = [{"kind": "storm", "severity": "warning", "state": "open", "city_id": 1},
    ...         {"kind": "heat", "severity": "warning", "state": "open", "city_id": 2}]
    >>> q.page(rows, truncated=False)["total"]
    1
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from weatherstream.core.anomaly.texts import WHAT
from weatherstream.times import parse_utc

KINDS = tuple(sorted(WHAT))
SEVERITIES = ("info", "warning", "critical")
STATES = ("open", "update", "resolved")
MAX_LIMIT = 500
#: default time range: a city's last week, the whole network's last day
CITY_DAYS, NETWORK_DAYS = 7, 1
#: the longest range one request may read across the network (one Cassandra partition per day)
MAX_NETWORK_DAYS = 31


class BadQuery(ValueError):
    """The request's query cannot be answered; the message says what to change."""


@dataclass(frozen=True)
class AlertQuery:
    city_id: int | None
    kinds: frozenset[str]
    severities: frozenset[str]
    states: frozenset[str]
    start: dt.datetime
    end: dt.datetime
    offset: int
    limit: int

    def matches(self, row: Mapping[str, Any]) -> bool:
        return (
            (not self.kinds or row.get("kind") in self.kinds)
            and (not self.severities or row.get("severity") in self.severities)
            and (not self.states or row.get("state") in self.states)
            and (self.city_id is None or row.get("city_id") == self.city_id)
        )

    def page(self, rows: Sequence[Mapping[str, Any]], truncated: bool) -> dict[str, Any]:
        """The page of the rows that match (``rows`` newest first, as Cassandra gives them). ``truncated``: the
        read stopped at its row limit, so ``total`` counts only what was read."""
        matching = [row for row in rows if self.matches(row)]
        oldest = rows[-1].get("observed_at") if rows else None
        return {
            "alerts": matching[self.offset : self.offset + self.limit],
            "total": len(matching),
            "offset": self.offset,
            "limit": self.limit,
            "from": self.start,
            "to": self.end,
            "truncated": truncated,
            # where the read stopped: a client goes on from there with until=<oldest_read>
            "oldest_read": oldest if truncated else None,
            "kinds": KINDS,  # what kind= may name
        }


def _choices(query: Mapping[str, str], name: str, allowed: Sequence[str]) -> frozenset[str]:
    """A comma-separated list of values out of ``allowed`` (none given: all)."""
    given = frozenset(v for v in query.get(name, "").split(",") if v)
    unknown = sorted(given - set(allowed))
    if unknown:
        raise BadQuery(f"{name} must be one or more of {', '.join(allowed)} (comma-separated), not {unknown[0][:30]!r}")
    return given


def _digits(text: str, most: int) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= most


def city_id_of(text: str) -> int | None:
    """The city id ``text`` gives (ASCII digits, at most 12), else None."""
    return int(text) if _digits(text, 12) else None


def _number(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = query.get(name, str(default))
    if not _digits(text, len(str(high))) or not low <= int(text) <= high:
        raise BadQuery(f"{name} must be a whole number from {low} to {high}")
    return int(text)


def _time(query: Mapping[str, str], name: str) -> dt.datetime | None:
    text = query.get(name)
    if not text:
        return None
    try:
        return parse_utc(text)
    except ValueError as exc:
        raise BadQuery(f"{name}: {exc}") from None


def parse_alert_query(query: Mapping[str, str], now: float) -> AlertQuery:
    """The query of ``/api/alerts``: ``city`` (an id), ``kind``, ``severity``, ``state`` (comma-separated
    lists), ``since`` / ``until`` (ISO 8601 or epoch seconds), ``offset``, ``limit``."""
    city = query.get("city", "")
    city_id = city_id_of(city)
    if city and city_id is None:
        raise BadQuery(f"city must be a city id, e.g. city=2950159, not {city[:20]!r}")
    days = dt.timedelta(days=CITY_DAYS if city_id is not None else NETWORK_DAYS)
    now_utc = dt.datetime.fromtimestamp(now, tz=dt.timezone.utc)
    since, until = _time(query, "since"), _time(query, "until")
    try:
        # by default up to a day ahead: observations stamped a little ahead of this worker's clock
        end = until if until is not None else now_utc + dt.timedelta(days=1)
        start = since if since is not None else (until if until is not None else now_utc) - days
    except OverflowError:
        raise BadQuery("since and until must be times between the years 1 and 9999") from None
    if start >= end:
        raise BadQuery("since must be before until")
    if city_id is None and end - start > dt.timedelta(days=MAX_NETWORK_DAYS):
        raise BadQuery(f"across the network, since and until may be at most {MAX_NETWORK_DAYS} days apart "
                       "(give city=ID for a longer look at one city)")  # fmt: skip
    return AlertQuery(
        city_id=city_id,
        kinds=_choices(query, "kind", KINDS),
        severities=_choices(query, "severity", SEVERITIES),
        states=_choices(query, "state", STATES),
        start=start,
        end=end,
        offset=_number(query, "offset", 0, 0, 1_000_000),
        limit=_number(query, "limit", 100, 1, MAX_LIMIT),
    )
