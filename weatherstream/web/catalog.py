"""The list of stations behind ``/api/cities``: paged, sorted and searched in memory, loaded from Cassandra.

Every station's newest observation is one row of Cassandra's ``latest_by_city`` (written by the sink of
every worker). A :class:`StationCatalog` keeps a snapshot of it in columns (200-300 bytes per station) and
answers each request from the snapshot, so a page costs O(page) after sorting once per snapshot and a
search O(stations) string comparisons: no Cassandra read, no per-request scan of every city's state. The
snapshot is loaded when first asked for and again, in the background, when a request finds it stale (a worker
nobody asks never loads it). Stale means older than ``refresh_s`` (2 s) or, on a big network, older than
:data:`LOAD_SHARE` times the last load took (at 100,000 stations a load takes about 3 s, so a snapshot is
kept about 30 s): the listing is as fresh as the loads' cost allows, at most a tenth of the time loading.

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
from bisect import bisect_right
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence, Sized
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

SORTS = ("name", "id", "country", "age", "temp")
#: a snapshot is kept at least this many times as long as it took to load
LOAD_SHARE = 10.0
#: the columns a page carries per station (besides ``age_s``)
FIELDS = ("city_id", "city_name", "country", "lat", "lon", "observed_at", "temp_c", "humidity_pct", "pressure_hpa",
          "pressure_tendency_3h_hpa", "wind_speed_ms", "condition_main", "condition_description")  # fmt: skip
#: the numeric columns a snapshot keeps (NaN where a station has no value)
NUMBERS = ("lat", "lon", "observed_at", "temp_c", "humidity_pct", "pressure_hpa", "pressure_tendency_3h_hpa",
           "wind_speed_ms")  # fmt: skip
PLAIN = tuple(column for column in NUMBERS if column != "observed_at")  # kept as given (observed_at: a time)
#: freshness of a station's newest observation: its age below each edge (seconds), else the last name
FRESHNESS = (("reporting", 3600.0), ("stale", 6 * 3600.0), ("silent", math.inf))
#: what the map may colour stations by: a snapshot column, or the newest observation's age
MAP_QUANTITIES = {"temp": "temp_c", "wind": "wind_speed_ms", "pressure": "pressure_hpa",
                  "tendency": "pressure_tendency_3h_hpa", "humidity": "humidity_pct", "age": "observed_at"}  # fmt: skip
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
        self.numbers = {name: array("d") for name in NUMBERS}
        self.conditions: list[tuple[str | None, str | None]] = []
        self.orders: dict[str, array[int]] = {}
        self.ranks: dict[str, array[int]] = {}  # sort -> each station's place in its order
        self.search: SearchIndex | None = None
        self.observed_sorted: list[float] | None = None
        self.maps: dict[str, dict[str, Any]] = {}  # quantity -> the map's columns

    @classmethod
    def of(cls, rows: Iterable[dict[str, Any]], loaded_at: float) -> Snapshot:
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
            for column in PLAIN:
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

    def rank(self, sort: str) -> array[int]:
        """Each station's place in :meth:`order` (computed once per snapshot)."""
        found = self.ranks.get(sort)
        if found is None:
            order = self.order(sort)
            found = array("l", bytes(order.itemsize * len(order)))
            for place, i in enumerate(order):
                found[i] = place
            self.ranks[sort] = found
        return found

    def page(self, query: str, sort: str, descending: bool, offset: int, limit: int, *, now: float) -> dict[str, Any]:
        """One page of the stations that match ``query`` (in the name, as a prefix of the id, or the country code)."""
        text = query.strip().casefold()
        indexes: Sequence[int]
        if text:
            if self.search is None:
                self.search = SearchIndex(self.lowered, self.ids, self.countries)
            indexes = sorted(self.search.matches(text), key=self.rank(sort).__getitem__, reverse=descending)
        else:
            order = self.order(sort)
            indexes = order[::-1] if descending else order
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
        for column in PLAIN:
            value = self.numbers[column][i]
            out[column] = None if math.isnan(value) else value
        return out

    def freshness(self, now: float) -> dict[str, int]:
        """How many stations are reporting, stale or silent (:data:`FRESHNESS`; never heard from: silent).
        O(log stations): the observation times are sorted once per snapshot."""
        if self.observed_sorted is None:
            self.observed_sorted = sorted(t for t in self.numbers["observed_at"] if not math.isnan(t))
        counts, newer_than = {}, len(self.observed_sorted)
        for name, edge in FRESHNESS:
            older = bisect_right(self.observed_sorted, now - edge) if math.isfinite(edge) else 0
            counts[name] = newer_than - older
            newer_than = older
        counts[FRESHNESS[-1][0]] += len(self) - len(self.observed_sorted)
        return counts

    def points(self, quantity: str) -> dict[str, Any]:
        """Every station with a position, for the map: ids, names, lat/lon (degrees, 3 decimals) and the value
        of ``quantity`` (a key of :data:`MAP_QUANTITIES`; ``age``: the newest observation's epoch seconds, which
        the page turns into ages; null where not known). Built once per snapshot and quantity."""
        found = self.maps.get(quantity)
        if found is not None:
            return found
        column = self.numbers[MAP_QUANTITIES[quantity]]
        lat, lon = self.numbers["lat"], self.numbers["lon"]
        out: dict[str, list[Any]] = {"ids": [], "names": [], "lat": [], "lon": [], "values": []}
        digits = 0 if quantity == "age" else 1
        for i in range(len(self.ids)):
            if math.isnan(lat[i]) or math.isnan(lon[i]):
                continue
            out["ids"].append(self.ids[i])
            out["names"].append(self.names[i])
            out["lat"].append(round(lat[i], 3))
            out["lon"].append(round(lon[i], 3))
            out["values"].append(None if math.isnan(column[i]) else round(column[i], digits))
        self.maps[quantity] = out
        return out


class SearchIndex:
    """Finds the stations whose name contains a text, whose id starts with it, or whose country code it is.

    Names and ids are joined into one string each and searched with ``str.find``: a search costs the number of
    matches, not a Python step per station (at 100,000 stations a scan of every name took about 0.1 s).
    """

    def __init__(self, lowered: Sequence[str], ids: Sequence[int], countries: Sequence[str]) -> None:
        self.names, self.name_starts = self._joined(name.replace("\n", " ") for name in lowered)
        self.ids, self.id_starts = self._joined(str(i) for i in ids)
        self.by_country: dict[str, list[int]] = {}
        for i, country in enumerate(countries):
            self.by_country.setdefault(country, []).append(i)

    @staticmethod
    def _joined(texts: Iterable[str]) -> tuple[str, array[int]]:
        """The texts, each after a newline, and where each starts."""
        starts, parts, at = array("q"), [], 0
        for text in texts:
            starts.append(at)
            parts.append("\n" + text)
            at += len(text) + 1
        return "".join(parts), starts

    def matches(self, text: str) -> set[int]:
        """The stations that match ``text`` (already case-folded, not empty)."""
        found = set(self.by_country.get(text.upper(), ()))
        if "\n" not in text:
            found.update(self._find(self.names, self.name_starts, text))
            found.update(self._find(self.ids, self.id_starts, "\n" + text))
        return found

    @staticmethod
    def _find(joined: str, starts: array[int], text: str) -> Iterator[int]:
        at = joined.find(text)
        while at >= 0:
            i = bisect_right(starts, at) - 1  # the station whose text holds the match
            yield i
            at = joined.find(text, starts[i + 1] if i + 1 < len(starts) else len(joined))  # one hit per station


def _missing_last(value: float) -> tuple[bool, float]:
    return (math.isnan(value), 0.0 if math.isnan(value) else value)


def snapshot_of(rows: Iterable[dict[str, Any]]) -> Snapshot:
    """A snapshot of ``rows`` (every station's newest observation), sorted by name, the default sort."""
    snap = Snapshot.of(rows, time.time())
    snap.order("name")
    return snap


T = TypeVar("T", bound=Sized)


class KeptFresh(Generic[T]):
    """A snapshot (of anything with a length) kept fresh on demand; ``load`` makes one, best off the event loop:
    at 100,000 stations that takes seconds. ``what`` names it in the log."""

    def __init__(self, load: Callable[[], Awaitable[T]], refresh_s: float = 2.0, what: str = "station catalog") -> None:
        self.load = load
        self.refresh_s = refresh_s
        self.what = what
        self.load_s = 0.0  # how long the last load took
        self.snapshot: T | None = None
        self.loading: asyncio.Task[T] | None = None

    async def current(self) -> T:
        """The snapshot (waiting only for the first); a stale one starts a reload in the background."""
        if self.snapshot is None:
            self.snapshot, self.loaded_at = await self._reload(), time.time()
        elif time.time() - self.loaded_at > self.keep_s and self.loading is None:
            self.loading = asyncio.ensure_future(self._reload())
            self.loading.add_done_callback(self._loaded)
        return self.snapshot

    @property
    def keep_s(self) -> float:
        """How old a snapshot may get before a request starts a reload."""
        return max(self.refresh_s, LOAD_SHARE * self.load_s)

    async def _reload(self) -> T:
        started = time.monotonic()
        snap = await self.load()
        self.load_s = time.monotonic() - started
        logger.info("%s: %d loaded in %.2f s", self.what, len(snap), self.load_s)
        return snap

    def _loaded(self, task: asyncio.Task[T]) -> None:
        self.loading = None
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            logger.warning("%s: reload failed (%s: %s); serving the previous snapshot", self.what,
                           type(exc).__name__, exc)  # fmt: skip
            return
        self.snapshot, self.loaded_at = task.result(), time.time()


#: the station list: every station's newest observation (:func:`snapshot_of`), kept fresh
StationCatalog = KeptFresh[Snapshot]
