"""The list of stations behind ``/api/cities``: paged, sorted and searched in memory, loaded from Cassandra.

Every station's newest observation is one row of Cassandra's ``latest_by_city`` (written by the sink of
every worker). A :class:`StationCatalog` keeps a snapshot of it in columns (about 100 bytes per station) and
answers each request from the snapshot, so a page costs O(page) after sorting once per snapshot and a
search O(stations) string comparisons: no Cassandra read, no per-request scan of every city's state. The
snapshot is loaded when first asked for and again, in the background, when a request finds it older than
``refresh_s`` (a worker nobody asks never loads it).

Example:
    >>> snap = Snapshot.of([{"city_id": 2, "city_name": "Berlin", "country": "DE", "observed_at": None}], 0.0)
    >>> snap.page("ber", "name", False, 0, 10, now=0.0)["cities"][0]["city_id"]
    2
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from array import array
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

logger = logging.getLogger(__name__)

SORTS = ("name", "id", "country", "age", "temp")
#: the columns a page carries per station (besides ``age_s``)
FIELDS = ("city_id", "city_name", "country", "observed_at", "temp_c", "humidity_pct", "pressure_hpa",
          "wind_speed_ms", "condition_main", "condition_description")  # fmt: skip
MAX_LIMIT = 500
_NAN = math.nan


def _number(value: Any) -> float:
    return _NAN if value is None else float(value)


def _time(value: Any) -> float:
    if value is None:
        return _NAN
    return value.timestamp() if hasattr(value, "timestamp") else float(value)


class Snapshot:
    """Every station's newest observation, in columns."""

    def __init__(self, loaded_at: float) -> None:
        self.loaded_at = loaded_at
        self.ids = array("q")
        self.names: list[str] = []
        self.lowered: list[str] = []
        self.countries: list[str] = []
        self.numbers = {name: array("d") for name in ("observed_at", "temp_c", "humidity_pct", "pressure_hpa",
                                                      "wind_speed_ms")}  # fmt: skip
        self.conditions: list[tuple[str | None, str | None]] = []
        self.orders: dict[str, array[int]] = {}

    @classmethod
    def of(cls, rows: Sequence[dict[str, Any]], loaded_at: float) -> Snapshot:
        snap = cls(loaded_at)
        interned: dict[str, str] = {}
        for row in rows:
            snap.ids.append(int(row["city_id"]))
            name = row.get("city_name") or ""
            snap.names.append(name)
            snap.lowered.append(name.casefold())
            country = row.get("country") or ""
            snap.countries.append(interned.setdefault(country, country))
            snap.numbers["observed_at"].append(_time(row.get("observed_at")))
            for column in ("temp_c", "humidity_pct", "pressure_hpa", "wind_speed_ms"):
                snap.numbers[column].append(_number(row.get(column)))
            snap.conditions.append((row.get("condition_main"), row.get("condition_description")))
        return snap

    def __len__(self) -> int:
        return len(self.ids)

    def order(self, sort: str) -> array[int]:
        """Station indexes sorted by ``sort`` (ties by name, then id); computed once per snapshot."""
        found = self.orders.get(sort)
        if found is None:
            ids, lowered = self.ids, self.lowered
            keys: dict[str, Callable[[int], Any]] = {
                "name": lambda i: (lowered[i], ids[i]),
                "id": lambda i: ids[i],
                "country": lambda i: (self.countries[i], lowered[i], ids[i]),
                # newest first in ascending order of age; stations never heard from last
                "age": lambda i: (_missing_last(-self.numbers["observed_at"][i]), ids[i]),
                "temp": lambda i: (_missing_last(self.numbers["temp_c"][i]), ids[i]),
            }
            found = self.orders[sort] = array("l", sorted(range(len(ids)), key=keys[sort]))
        return found

    def page(self, query: str, sort: str, descending: bool, offset: int, limit: int, *, now: float) -> dict[str, Any]:
        """One page of the stations that match ``query`` (in the name, as a prefix of the id, or the country code)."""
        order = self.order(sort)
        indexes: Sequence[int] = order[::-1] if descending else order
        text = query.strip().casefold()
        if text:
            lowered, countries, ids = self.lowered, self.countries, self.ids
            code = text.upper()
            indexes = [i for i in indexes if text in lowered[i] or countries[i] == code or str(ids[i]).startswith(text)]
        total = len(indexes)
        rows = [self.row(i, now) for i in indexes[offset : offset + limit]]
        return {"cities": rows, "total": total, "offset": offset, "limit": limit, "as_of": self.loaded_at}

    def row(self, i: int, now: float) -> dict[str, Any]:
        observed = self.numbers["observed_at"][i]
        known = not math.isnan(observed)
        main, description = self.conditions[i]
        out: dict[str, Any] = {
            "city_id": self.ids[i], "city_name": self.names[i] or None, "country": self.countries[i] or None,
            "observed_at": observed if known else None, "age_s": round(now - observed, 1) if known else None,
            "condition_main": main, "condition_description": description,
        }  # fmt: skip
        for column in ("temp_c", "humidity_pct", "pressure_hpa", "wind_speed_ms"):
            value = self.numbers[column][i]
            out[column] = None if math.isnan(value) else value
        return out


def _missing_last(value: float) -> tuple[bool, float]:
    return (math.isnan(value), 0.0 if math.isnan(value) else value)


class StationCatalog:
    """A :class:`Snapshot` kept fresh on demand; ``load`` reads every station's newest observation."""

    def __init__(self, load: Callable[[], Awaitable[list[dict[str, Any]]]], refresh_s: float = 30.0) -> None:
        self.load = load
        self.refresh_s = refresh_s
        self.snapshot: Snapshot | None = None
        self.loading: asyncio.Task[Snapshot] | None = None

    async def current(self) -> Snapshot:
        """The snapshot (waiting only for the first); a stale one starts a reload in the background."""
        if self.snapshot is None:
            self.snapshot = await self._reload()
        elif time.time() - self.snapshot.loaded_at > self.refresh_s and self.loading is None:
            self.loading = asyncio.ensure_future(self._reload())
            self.loading.add_done_callback(self._loaded)
        return self.snapshot

    async def _reload(self) -> Snapshot:
        started = time.monotonic()
        rows = await self.load()
        snap = Snapshot.of(rows, time.time())
        snap.order("name")  # the default sort, ready before the first page is asked for
        logger.info("station catalog: %d stations loaded in %.2f s", len(snap), time.monotonic() - started)
        return snap

    def _loaded(self, task: asyncio.Task[Snapshot]) -> None:
        self.loading = None
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            logger.warning("station catalog: reload failed (%s: %s); serving the previous snapshot",
                           type(exc).__name__, exc)  # fmt: skip
            return
        self.snapshot = task.result()
