"""An independent model of the windowing rules, for end-to-end tests.

It shares no code with :mod:`weatherstream.core`: window membership, watermarks, corrections and the
statistics are written again here, plainly, so a bug in one is not hidden by the same bug in the other.
Rules: watermark = newest observation time - lateness; a window closes (revision 1) when the watermark
reaches its end; later data for a closed window gives revision + 1 with all its data; the local day's
end is estimated with the city's newest offset and reported from its last row's offset.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

HOUR, DAY = 3600, 86400
COMPARED = ("count", "temp_mean_c", "temp_std_c", "temp_min_c", "temp_max_c", "humidity_mean_pct",
            "pressure_first_hpa", "pressure_last_hpa", "wind_max_ms", "gust_max_ms", "first_observed_at",
            "last_observed_at", "window_start", "window_end", "condition", "late")  # fmt: skip


@dataclass(frozen=True)
class Obs:
    city_id: int
    t: float
    tz: int
    temp_c: float
    humidity_pct: float
    pressure_hpa: float
    wind_ms: float
    gust_ms: float | None  # None: the station reported no gust
    condition: str


def _day_id(day: int) -> str:
    return f"day-local:{(date(1970, 1, 1) + timedelta(days=day)).isoformat()}"


def _windows(o: Obs) -> list[tuple[str, str, int]]:
    """(kind, window id, key) of every window holding ``o``."""
    hour = math.floor(o.t / HOUR) * HOUR
    out = [("tumbling-1h", f"tumbling-1h:{hour}", hour)]
    day = math.floor((o.t + o.tz) / DAY)
    out.append(("day-local", _day_id(day), day))
    out += [("hopping-24h-1h", f"hopping-24h-1h:{hour - k * HOUR}", hour - k * HOUR) for k in range(24)]
    return out


def _end(kind: str, key: int, tz_now: int) -> float:
    if kind == "day-local":
        return (key + 1) * DAY - tz_now
    return key + (HOUR if kind == "tumbling-1h" else DAY)


def _values(kind: str, key: int, rows: list[Obs], late: bool) -> dict[str, Any]:
    rows = sorted(rows, key=lambda o: o.t)
    temps = [o.temp_c for o in rows]
    gusts = [o.gust_ms for o in rows if o.gust_ms is not None]
    conditions = Counter(o.condition for o in rows)
    top = max(conditions.values())
    if kind == "day-local":
        start, end = key * DAY - rows[0].tz, (key + 1) * DAY - rows[-1].tz
    else:
        start, end = key, _end(kind, key, 0)
    return {
        "count": len(rows),
        "temp_mean_c": statistics.fmean(temps),
        "temp_std_c": statistics.stdev(temps) if len(temps) > 1 else None,
        "temp_min_c": min(temps),
        "temp_max_c": max(temps),
        "humidity_mean_pct": statistics.fmean(o.humidity_pct for o in rows),
        "pressure_first_hpa": rows[0].pressure_hpa,
        "pressure_last_hpa": rows[-1].pressure_hpa,
        "wind_max_ms": max(o.wind_ms for o in rows),
        "gust_max_ms": max(gusts) if gusts else None,
        "first_observed_at": rows[0].t,
        "last_observed_at": rows[-1].t,
        "window_start": start,
        "window_end": end,
        "condition": min(c for c, n in conditions.items() if n == top),
        "late": late,
    }


def expected_aggregates(arrivals: list[Obs], lateness_s: float = 600.0) -> dict[tuple[int, str, int], dict[str, Any]]:
    """Every aggregate the rules produce for ``arrivals`` (in arrival order), by (city, window id, revision)."""
    out: dict[tuple[int, str, int], dict[str, Any]] = {}
    by_city: dict[int, list[Obs]] = {}
    for o in arrivals:
        by_city.setdefault(o.city_id, []).append(o)
    for city, seq in by_city.items():
        rows: dict[str, list[Obs]] = {}
        meta: dict[str, tuple[str, int]] = {}
        revision: dict[str, int] = {}
        newest: Obs | None = None
        wm = -math.inf
        seen: set[float] = set()
        for o in seq:
            if o.t in seen:
                continue
            seen.add(o.t)
            for kind, wid, key in _windows(o):
                rows.setdefault(wid, []).append(o)
                meta[wid] = (kind, key)
                tz_now = newest.tz if newest is not None else o.tz
                if wid in revision:
                    revision[wid] += 1
                    out[(city, wid, revision[wid])] = _values(kind, key, rows[wid], late=True)
                elif _end(kind, key, tz_now) <= wm:
                    revision[wid] = 1
                    out[(city, wid, 1)] = _values(kind, key, rows[wid], late=True)
            if newest is None or o.t >= newest.t:
                newest = o
            wm = max(wm, newest.t - lateness_s)
            for wid, (kind, key) in meta.items():
                if wid not in revision and _end(kind, key, newest.tz) <= wm:
                    revision[wid] = 1
                    out[(city, wid, 1)] = _values(kind, key, rows[wid], late=False)
    return out
