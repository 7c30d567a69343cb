"""Per-window aggregates of observations: mergeable partial statistics and the final values.

A *row* is one observation reduced to what aggregates need (:data:`ROW_FIELDS`). Rows are summarised
into a :class:`Partial` (count, Welford moments, min/max, sums, first/last, condition counts), partials
merge associatively (Chan et al.'s parallel variance), and :func:`finish` turns a partial into the
window's values. Aggregating rows sorted by time, pane by pane, gives the same numbers whatever order
the observations arrived in.

Example:
    >>> rows = [make_row(0.0, 1, 0, temp_c=1.0), make_row(600.0, 2, 0, temp_c=3.0)]
    >>> p = Partial.of(rows)
    >>> (p.count, p.temp.mean, round(p.temp.std(), 3))
    (2, 2.0, 1.414)
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# One observation as stored in a pane (a JSON list, so it is compact in the table).
ROW_FIELDS = (
    "observed_at", "offset", "tz", "temp_c", "feels_like_c", "humidity_pct", "pressure_hpa",
    "wind_speed_ms", "wind_gust_ms", "rain_1h_mm", "snow_1h_mm", "condition",
)  # fmt: skip
T, OFFSET, TZ, TEMP, FEELS, HUM, PRES, WIND, GUST, RAIN, SNOW, COND = range(len(ROW_FIELDS))

Row = list[Any]


def make_row(observed_at: float, offset: int, tz: int, **values: Any) -> Row:
    """A row from keyword values named like :data:`ROW_FIELDS` (missing ones are None)."""
    row: Row = [observed_at, offset, tz] + [None] * (len(ROW_FIELDS) - 3)
    for name, value in values.items():
        row[ROW_FIELDS.index(name)] = value
    return row


@dataclass
class Moments:
    """Count, mean, sum of squared deviations, min and max of one quantity (mergeable, stable)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    low: float = math.inf
    high: float = -math.inf

    def add(self, x: float) -> None:
        # Welford's update; written out because it runs for every value of every closing window.
        n = self.n + 1
        delta = x - self.mean
        mean = self.mean + delta / n
        self.n, self.mean = n, mean
        self.m2 += delta * (x - mean)
        if x < self.low:
            self.low = x
        if x > self.high:
            self.high = x

    @classmethod
    def of(cls, values: list[float]) -> Moments:
        """The moments of ``values`` in two passes (mean first, then squared deviations from it)."""
        n = len(values)
        if n == 0:
            return cls()
        mean = math.fsum(values) / n
        m2 = math.fsum([(x - mean) * (x - mean) for x in values])
        return cls(n, mean, m2, min(values), max(values))

    def merge(self, other: Moments) -> Moments:
        if other.n == 0:
            return Moments(self.n, self.mean, self.m2, self.low, self.high)
        if self.n == 0:
            return Moments(other.n, other.mean, other.m2, other.low, other.high)
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        m2 = self.m2 + other.m2 + delta * delta * self.n * other.n / n
        return Moments(n, mean, m2, min(self.low, other.low), max(self.high, other.high))

    def std(self) -> float | None:
        """Sample standard deviation (None below two values)."""
        return math.sqrt(max(self.m2, 0.0) / (self.n - 1)) if self.n >= 2 else None

    def stats(self) -> tuple[float | None, float | None, float | None]:
        """(min, max, mean), None when empty."""
        if self.n == 0:
            return None, None, None
        return self.low, self.high, self.mean


_MOMENT_FIELDS = ((TEMP, "temp"), (FEELS, "feels"), (HUM, "humidity"), (PRES, "pressure"), (WIND, "wind"))


@dataclass
class Partial:
    """Mergeable summary of the rows of one pane or window (rows in time order)."""

    count: int = 0
    times: list[float] = field(default_factory=list)
    temp: Moments = field(default_factory=Moments)
    feels: Moments = field(default_factory=Moments)
    humidity: Moments = field(default_factory=Moments)
    pressure: Moments = field(default_factory=Moments)
    pressure_first: tuple[float, float] | None = None  # (time, hPa)
    pressure_last: tuple[float, float] | None = None
    wind: Moments = field(default_factory=Moments)
    gust_max: float | None = None
    rain_sum_1h: float = 0.0
    snow_sum_1h: float = 0.0
    rain_n: int = 0
    snow_n: int = 0
    conditions: dict[str, int] = field(default_factory=dict)
    tz_first: int | None = None
    tz_last: int | None = None

    @classmethod
    def of(cls, rows: Iterable[Row]) -> Partial:
        """The summary of ``rows`` (in time order), a column at a time: it runs for every closing window."""
        rows = list(rows)
        if not rows:
            return cls()
        times = [float(r[T]) for r in rows]

        def column(index: int) -> list[float]:
            return [float(r[index]) for r in rows if r[index] is not None]

        p = cls(count=len(rows), times=times, tz_first=rows[0][TZ], tz_last=rows[-1][TZ])
        for index, name in _MOMENT_FIELDS:
            setattr(p, name, Moments.of(column(index)))
        pressures = [(t, float(r[PRES])) for t, r in zip(times, rows, strict=True) if r[PRES] is not None]
        if pressures:
            # the earliest time (first of equals) and the latest time (last of equals), as add() keeps them
            p.pressure_first = min(pressures, key=lambda tp: tp[0])
            p.pressure_last = max(reversed(pressures), key=lambda tp: tp[0])
        gusts = column(GUST)
        p.gust_max = max(gusts) if gusts else None
        rain, snow = column(RAIN), column(SNOW)
        p.rain_sum_1h, p.rain_n = sum(rain, 0.0), len(rain)
        p.snow_sum_1h, p.snow_n = sum(snow, 0.0), len(snow)
        for r in rows:
            if r[COND]:
                p.conditions[r[COND]] = p.conditions.get(r[COND], 0) + 1
        return p

    def add(self, row: Row) -> None:
        t = float(row[T])
        self.count += 1
        self.times.append(t)
        if self.tz_first is None:
            self.tz_first = row[TZ]
        self.tz_last = row[TZ]
        for index, name in _MOMENT_FIELDS:
            value = row[index]
            if value is not None:
                getattr(self, name).add(float(value))
        if row[PRES] is not None:
            if self.pressure_first is None or t < self.pressure_first[0]:
                self.pressure_first = (t, float(row[PRES]))
            if self.pressure_last is None or t >= self.pressure_last[0]:
                self.pressure_last = (t, float(row[PRES]))
        if row[GUST] is not None:
            self.gust_max = float(row[GUST]) if self.gust_max is None else max(self.gust_max, float(row[GUST]))
        if row[RAIN] is not None:
            self.rain_sum_1h += float(row[RAIN])
            self.rain_n += 1
        if row[SNOW] is not None:
            self.snow_sum_1h += float(row[SNOW])
            self.snow_n += 1
        if row[COND]:
            self.conditions[row[COND]] = self.conditions.get(row[COND], 0) + 1

    def merge(self, later: Partial) -> Partial:
        """This partial followed by ``later`` (which covers later times)."""
        if later.count == 0:
            return self
        if self.count == 0:
            return later
        conditions = dict(self.conditions)
        for k, v in later.conditions.items():
            conditions[k] = conditions.get(k, 0) + v
        firsts = [p for p in (self.pressure_first, later.pressure_first) if p is not None]
        lasts = [p for p in (self.pressure_last, later.pressure_last) if p is not None]
        gusts = [g for g in (self.gust_max, later.gust_max) if g is not None]
        return Partial(
            count=self.count + later.count,
            times=self.times + later.times,
            temp=self.temp.merge(later.temp),
            feels=self.feels.merge(later.feels),
            humidity=self.humidity.merge(later.humidity),
            pressure=self.pressure.merge(later.pressure),
            pressure_first=min(firsts) if firsts else None,
            pressure_last=max(lasts) if lasts else None,
            wind=self.wind.merge(later.wind),
            gust_max=max(gusts) if gusts else None,
            rain_sum_1h=self.rain_sum_1h + later.rain_sum_1h,
            snow_sum_1h=self.snow_sum_1h + later.snow_sum_1h,
            rain_n=self.rain_n + later.rain_n,
            snow_n=self.snow_n + later.snow_n,
            conditions=conditions,
            tz_first=self.tz_first,
            tz_last=later.tz_last,
        )


def cadence_s(times: Sequence[float], default_s: float) -> float:
    """The median spacing of consecutive observation times (``default_s`` below three observations)."""
    if len(times) < 3:
        return default_s
    ordered = sorted(times)
    gaps = [b - a for a, b in itertools.pairwise(ordered) if b > a]
    return statistics.median(gaps) if gaps else default_s


def finish(p: Partial, window_start: float, window_end: float, default_cadence_s: float) -> dict[str, Any]:
    """The aggregate values of a window from its merged partial (units in the names)."""
    cadence = cadence_s(p.times, default_cadence_s)
    expected = max(1, round((window_end - window_start) / cadence))
    t_min, t_max, t_mean = p.temp.stats()
    h_min, h_max, h_mean = p.humidity.stats()
    p_min, p_max, p_mean = p.pressure.stats()
    _, w_max, w_mean = p.wind.stats()
    condition = min(p.conditions, key=lambda c: (-p.conditions[c], c)) if p.conditions else None
    return {
        "count": p.count,
        "expected_count": expected,
        "coverage": p.count / expected,
        "cadence_s": cadence,
        "temp_min_c": t_min,
        "temp_max_c": t_max,
        "temp_mean_c": t_mean,
        "temp_std_c": p.temp.std(),
        "feels_like_mean_c": p.feels.stats()[2],
        "humidity_min_pct": h_min,
        "humidity_max_pct": h_max,
        "humidity_mean_pct": h_mean,
        "pressure_min_hpa": p_min,
        "pressure_max_hpa": p_max,
        "pressure_mean_hpa": p_mean,
        "pressure_first_hpa": p.pressure_first[1] if p.pressure_first else None,
        "pressure_last_hpa": p.pressure_last[1] if p.pressure_last else None,
        "wind_mean_ms": w_mean,
        "wind_max_ms": w_max,
        "gust_max_ms": p.gust_max,
        # 1-hour rates sampled every `cadence` seconds: each stands for cadence/3600 of an hour.
        "rain_total_mm": p.rain_sum_1h * cadence / 3600 if p.rain_n else None,
        "snow_total_mm": p.snow_sum_1h * cadence / 3600 if p.snow_n else None,
        "condition": condition,
        "first_observed_at": min(p.times) if p.times else None,
        "last_observed_at": max(p.times) if p.times else None,
    }
