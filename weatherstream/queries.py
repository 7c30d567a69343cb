"""Reading the sink's Cassandra tables back, for the web views and ``weatherstream query``.

Every function takes an open session and the keyspace, and returns rows as dicts with aware UTC datetimes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from cassandra.cluster import Session
from cassandra.util import Date


def _aware(row: dict[str, Any]) -> dict[str, Any]:
    """The driver returns timestamps as naive UTC datetimes (make them aware) and dates as its own type."""
    out = {}
    for key, value in row.items():
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        elif isinstance(value, Date):
            value = value.date()
        out[key] = value
    return out


def _days(start: dt.datetime, end: dt.datetime) -> list[dt.date]:
    """UTC days from ``end`` back to ``start`` (newest first)."""
    day, first = end.date(), start.date()
    out = []
    while day >= first:
        out.append(day)
        day -= dt.timedelta(days=1)
    return out


def read_observations(session: Session, keyspace: str, city_id: int, start: dt.datetime, end: dt.datetime,
                      limit: int = 10_000) -> list[dict[str, Any]]:  # fmt: skip
    """Observations of a city with ``start <= observed_at < end``, newest first."""
    query = session.prepare(
        f"SELECT * FROM {keyspace}.observations_by_city_day WHERE city_id = ? AND day = ? "
        "AND observed_at >= ? AND observed_at < ?"
    )
    out: list[dict[str, Any]] = []
    for day in _days(start, end - dt.timedelta(microseconds=1)):
        for row in session.execute(query, (city_id, day, start, end)):
            out.append(_aware(row._asdict()))
            if len(out) >= limit:
                return out
    return out


def read_aggregates(session: Session, keyspace: str, city_id: int, kinds: Sequence[str], start: dt.datetime,
                    end: dt.datetime, all_revisions: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """Aggregates of a city's windows starting in ``[start, end)``: the newest revision of each window
    (or every revision), newest window first, kind by kind."""
    query = session.prepare(
        f"SELECT * FROM {keyspace}.aggregates_by_city WHERE city_id = ? AND kind = ? "
        "AND window_start >= ? AND window_start < ?"
    )
    out: list[dict[str, Any]] = []
    for kind in kinds:
        seen: set[dt.datetime] = set()
        for row in session.execute(query, (city_id, kind, start, end)):
            if not all_revisions and row.window_start in seen:
                continue  # revisions come newest first within a window
            seen.add(row.window_start)
            out.append(_aware(row._asdict()))
    return out


def read_latest(session: Session, keyspace: str, columns: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
    """The newest observation of every city, by city id (only ``columns``, if given), read a page at a time: a
    caller that keeps only some of each row never holds them all."""
    what = ", ".join(columns) if columns else "*"
    for row in session.execute(f"SELECT {what} FROM {keyspace}.latest_by_city WHERE bucket = 0"):
        yield _aware(row._asdict())


def read_network_alerts(session: Session, keyspace: str, start: dt.datetime, end: dt.datetime,
                        max_rows: int) -> tuple[list[dict[str, Any]], bool]:  # fmt: skip
    """Alert messages of every city observed in ``[start, end)``, newest first (one ``alerts_by_day`` partition
    per UTC day, the newest day first), at most ``max_rows``; True when more were there."""
    query = session.prepare(f"SELECT * FROM {keyspace}.alerts_by_day WHERE day = ? AND observed_at >= ? "
                            "AND observed_at < ? LIMIT ?")  # fmt: skip
    out: list[dict[str, Any]] = []
    utc = dt.timezone.utc
    for day in _days(start.astimezone(utc), end.astimezone(utc) - dt.timedelta(microseconds=1)):
        found = session.execute(query, (day, start, end, max_rows + 1 - len(out)))
        out.extend(_aware(row._asdict()) for row in found)
        if len(out) > max_rows:
            return out[:max_rows], True
    return out, False


def read_alerts(session: Session, keyspace: str, city_id: int, start: dt.datetime,
                end: dt.datetime) -> list[dict[str, Any]]:  # fmt: skip
    """Alert messages of a city observed in ``[start, end)``, newest first."""
    query = session.prepare(
        f"SELECT * FROM {keyspace}.alerts_by_city WHERE city_id = ? AND observed_at >= ? AND observed_at < ?"
    )
    return [_aware(row._asdict()) for row in session.execute(query, (city_id, start, end))]
