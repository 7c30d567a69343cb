"""Records (as decoded from their topics) -> rows of the Cassandra tables. Pure: no I/O.

Every table's primary key comes from the record itself, so the same record always gives the same row
(a message delivered twice is written twice, identically). Times become aware UTC datetimes.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.aggregate import Aggregate
from models.alert import Alert
from models.observation import LATEST_FIELDS, Observation

UTC = dt.timezone.utc


class RowError(ValueError):
    """A record cannot become a row: the message says which field and why."""


def utc(seconds: Any) -> dt.datetime | None:
    """UTC epoch seconds -> aware datetime (None stays None)."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise RowError(f"not a time in epoch seconds: {seconds!r}")
    try:
        return dt.datetime.fromtimestamp(float(seconds), tz=UTC)
    except (ValueError, OverflowError, OSError):  # beyond the years 1-9999 (or the platform's range)
        raise RowError(f"not a time in epoch seconds (out of range): {seconds!r}") from None


@dataclass(frozen=True)
class Table:
    """A table's name, its columns in insert order, which of them are times, and its partition key."""

    name: str
    columns: tuple[str, ...]
    times: frozenset[str]
    partition_key: tuple[str, ...]
    newest_wins: bool = False  # written USING TIMESTAMP observed_at: an older record never replaces a newer one
    time_indexes: tuple[int, ...] = field(init=False, repr=False, compare=False)
    day_index: int | None = field(init=False, repr=False, compare=False)  # a partition by the observation's day
    bucket_index: int | None = field(init=False, repr=False, compare=False)  # the one partition of a small table
    observed_index: int | None = field(init=False, repr=False, compare=False)  # of observed_at

    def __post_init__(self) -> None:
        if "day" in self.columns and "observed_at" not in self.times:
            raise ValueError(f"table {self.name}: a day column needs observed_at among the times")
        object.__setattr__(self, "time_indexes", tuple(i for i, c in enumerate(self.columns) if c in self.times))
        object.__setattr__(self, "day_index", self.columns.index("day") if "day" in self.columns else None)
        object.__setattr__(self, "bucket_index", self.columns.index("bucket") if "bucket" in self.columns else None)
        object.__setattr__(self, "observed_index",
                           self.columns.index("observed_at") if "observed_at" in self.columns else None)  # fmt: skip

    def insert_cql(self, keyspace: str) -> str:
        marks = ", ".join("?" for _ in self.columns)
        using = "TIMESTAMP ?" if self.newest_wins else "TTL ?"
        return f"INSERT INTO {keyspace}.{self.name} ({', '.join(self.columns)}) VALUES ({marks}) USING {using}"

    def using_value(self, values: tuple[Any, ...], ttl_s: int) -> int:
        """The value of the ``USING`` marker: the TTL, or the write time in microseconds (observation time)."""
        if not self.newest_wins:
            return ttl_s
        observed: dt.datetime = values[self.observed_index]  # type: ignore[index]
        return int(observed.timestamp() * 1_000_000)


OBSERVATIONS = Table(
    "observations_by_city_day",
    ("city_id", "day", *(f for f in Observation._options.fields if f != "city_id")),
    frozenset({"observed_at", "sunrise", "sunset", "ingested_at"}),
    ("city_id", "day"),
)

AGGREGATES = Table(
    "aggregates_by_city",
    tuple(f for f in Aggregate._options.fields if f != "eid"),  # eid identifies the message, not the window
    frozenset({"window_start", "window_end", "first_observed_at", "last_observed_at", "closed_at",
               "watermark_passed_at"}),
    ("city_id", "kind"),
)  # fmt: skip

LATEST = Table(
    "latest_by_city",
    ("bucket", "city_id", "lat", "lon", *LATEST_FIELDS),
    frozenset({"observed_at"}),
    ("bucket",),
    newest_wins=True,
)

#: for each column of latest_by_city, the column of an observation row that holds its value (None: ``bucket``)
LATEST_FROM_OBSERVATION = tuple(None if c == "bucket" else OBSERVATIONS.columns.index(c) for c in LATEST.columns)

_ALERT_COLUMNS = tuple(Alert._options.fields)
_ALERT_TIMES = frozenset({"observed_at", "incident_start", "detected_at"})
ALERTS_BY_CITY = Table("alerts_by_city", _ALERT_COLUMNS, _ALERT_TIMES, ("city_id",))
ALERTS_BY_DAY = Table("alerts_by_day", ("day", *_ALERT_COLUMNS), _ALERT_TIMES, ("day",))

_REQUIRED = {
    OBSERVATIONS.name: ("city_id", "observed_at"),
    LATEST.name: ("city_id", "observed_at"),
    AGGREGATES.name: ("city_id", "kind", "window_start", "revision"),
    ALERTS_BY_CITY.name: ("city_id", "observed_at", "alert_id", "seq"),
    ALERTS_BY_DAY.name: ("city_id", "observed_at", "alert_id", "seq"),
}


def row(table: Table, record: Mapping[str, Any]) -> tuple[Any, ...]:
    """The values of ``table``'s columns for ``record`` (missing optional fields are null).

    Raises:
        RowError: a key field is missing or a time is not a finite number.
    """
    if not isinstance(record, Mapping):
        raise RowError(f"{table.name}: expected a JSON object, got {type(record).__name__}")
    for name in _REQUIRED[table.name]:
        if record.get(name) is None:
            raise RowError(f"{table.name}: the record has no {name}")
    city_id = record["city_id"]
    if isinstance(city_id, bool) or not isinstance(city_id, int):
        raise RowError(f"{table.name}: city_id must be an integer, got {city_id!r}")
    values = list(map(record.get, table.columns))
    for i in table.time_indexes:  # in column order: the first bad time is the one reported
        try:
            values[i] = utc(values[i])
        except RowError as exc:
            raise RowError(f"{table.name}.{table.columns[i]}: {exc}") from None
    if table.day_index is not None:  # the UTC day of the observation (observed_at is one of the times above)
        values[table.day_index] = values[table.observed_index].date()  # type: ignore[index,union-attr]
    if table.bucket_index is not None:
        values[table.bucket_index] = 0
    return tuple(values)


def latest_of(observation: tuple[Any, ...]) -> tuple[Any, ...]:
    """The ``latest_by_city`` row of a record whose ``observations_by_city_day`` row is ``observation``: the same
    as ``row(LATEST, record)``, without going through the record again."""
    return tuple(0 if i is None else observation[i] for i in LATEST_FROM_OBSERVATION)
