"""Summaries of observations that merge exactly, and the aggregate values of a window.

A :class:`Summary` holds what a window's aggregate needs of a set of observations, in a size that does not
grow with them except for the observation times: counts, exact scaled sums (:mod:`weatherstream.core.exact`),
the sum of squares of temperature, minima and maxima, the first and last pressure by time, the most
frequent condition's counts, and the UTC offsets at the first and last time. It also keeps each
observation's time and input offset, sorted by time: the window's cadence is the median gap between
times, and they are the city's memory of repeats.

Summaries merge in any grouping and any order to the same summary, and :func:`finish` turns one into the
window's values with a single rounding per value. A window's aggregate is therefore the same whatever
order its observations arrived in, however batches were cut and whichever worker computed it.

Example:
    >>> s = Summary()
    >>> s.add(Sample(t=0.0, offset=1, tz=0, temp_c=1.0))
    >>> s.add(Sample(t=600.0, offset=2, tz=0, temp_c=3.0))
    >>> v = finish(s, 0.0, 3600.0, default_cadence_s=600.0)
    >>> (v["count"], v["temp_mean_c"], round(v["temp_std_c"], 3), v["expected_count"])
    (2, 2.0, 1.414, 6)
"""

from __future__ import annotations

import bisect
import math
import operator
from collections.abc import Sequence
from itertools import repeat
from typing import Any, NamedTuple

from weatherstream.core.exact import SCALE_BITS, rounded, sample_std

#: the quantities whose count, exact sum, minimum and maximum a summary keeps, in :class:`Sample` order
QUANTITIES = ("temp_c", "feels_like_c", "humidity_pct", "pressure_hpa", "wind_speed_ms", "rain_1h_mm", "snow_1h_mm")
TEMP, FEELS, HUMIDITY, PRESSURE, WIND, RAIN, SNOW = range(len(QUANTITIES))
_INF = math.inf
_ONES = repeat(1.0)  # math.copysign(1.0, x) over a column: the signs of its values (map stops at the column's end)


class Sample(NamedTuple):
    """One observation as summaries take it: time (UTC epoch s), input offset, UTC offset (s) and values.

    A named tuple: one is made per input event, and a frozen dataclass of these fields costs three times as much.
    """

    t: float
    offset: int
    tz: int = 0
    temp_c: float | None = None
    feels_like_c: float | None = None
    humidity_pct: float | None = None
    pressure_hpa: float | None = None
    wind_speed_ms: float | None = None
    rain_1h_mm: float | None = None
    snow_1h_mm: float | None = None
    wind_gust_ms: float | None = None
    condition: str | None = None

    def values(self) -> tuple[float | None, ...]:
        """The :data:`QUANTITIES`, in order."""
        return (self.temp_c, self.feels_like_c, self.humidity_pct, self.pressure_hpa, self.wind_speed_ms,
                self.rain_1h_mm, self.snow_1h_mm)  # fmt: skip


class Summary:
    """A mergeable, exact summary of a set of one city's observations (see the module docstring).

    Attributes:
        times, offsets: each observation's time and input offset, sorted by time (offsets are empty in a
            merged summary: only a slice's own summaries need them).
        bits: the scale of the sums (:mod:`weatherstream.core.exact`): :data:`SCALE_BITS` unless a value needed more.
        n, sums, lows, highs: per quantity of :data:`QUANTITIES`: how many observations have it, their exact
            sum times ``2**bits``, the smallest and the largest (-0.0 is below 0.0).
        temp_squares: the exact sum of squared temperatures times ``2**(2 * bits)``.
        gust_max: the largest gust (None: no gust reported).
        pressure_first, pressure_last: (time, hPa) of the earliest and the latest pressure reading.
        conditions: condition -> how many observations report it.
        tz_first, tz_last: the UTC offset (s) of the earliest and the latest observation.
    """

    __slots__ = (
        "bits",
        "conditions",
        "gust_max",
        "highs",
        "lows",
        "n",
        "offsets",
        "pressure_first",
        "pressure_last",
        "sums",
        "temp_squares",
        "times",
        "tz_first",
        "tz_last",
    )  # fmt: skip

    def __init__(self) -> None:
        self.times: list[float] = []
        self.offsets: list[int] = []
        self.bits = SCALE_BITS
        self.n = [0] * len(QUANTITIES)
        self.sums = [0] * len(QUANTITIES)
        self.lows = [_INF] * len(QUANTITIES)
        self.highs = [-_INF] * len(QUANTITIES)
        self.temp_squares = 0
        self.gust_max: float | None = None
        self.pressure_first: tuple[float, float] | None = None
        self.pressure_last: tuple[float, float] | None = None
        self.conditions: dict[str, int] = {}
        self.tz_first = 0
        self.tz_last = 0

    @property
    def count(self) -> int:
        return len(self.times)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Summary):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __repr__(self) -> str:
        return f"Summary(count={self.count}, first={self.times[:1]}, last={self.times[-1:]})"

    def find(self, t: float) -> int | None:
        """The input offset of the observation at time ``t`` (None: there is none)."""
        i = bisect.bisect_left(self.times, t)
        if i < len(self.times) and self.times[i] == t:
            return self.offsets[i]
        return None

    def add(self, sample: Sample) -> None:
        """Take in one observation (its time must not be in the summary yet)."""
        t = sample.t
        times = self.times
        if not times or t > times[-1]:
            times.append(t)
            self.offsets.append(sample.offset)
            self.tz_last = sample.tz
            if len(times) == 1:
                self.tz_first = sample.tz
        else:
            i = bisect.bisect_left(times, t)
            times.insert(i, t)
            self.offsets.insert(i, sample.offset)
            if i == 0:
                self.tz_first = sample.tz
        n, sums, lows, highs = self.n, self.sums, self.lows, self.highs
        for q, x in enumerate(sample.values()):
            if x is None:
                continue
            numerator, denominator = x.as_integer_ratio()
            shift = self.bits + 1 - denominator.bit_length()
            if shift < 0:  # a value finer than the scale (under about 0.0005 in size)
                self._rescale(denominator.bit_length() - 1)
                shift = 0
            n[q] += 1
            sums[q] += numerator << shift
            if q == TEMP:
                self.temp_squares += (numerator * numerator) << (2 * shift)
            if x <= lows[q] and (x < lows[q] or _negative_zero(x)):
                lows[q] = x
            if x >= highs[q] and (x > highs[q] or not _negative_zero(x)):
                highs[q] = x
        pressure = sample.pressure_hpa
        if pressure is not None:
            if self.pressure_first is None or t < self.pressure_first[0]:
                self.pressure_first = (t, pressure)
            if self.pressure_last is None or t > self.pressure_last[0]:
                self.pressure_last = (t, pressure)
        gust = sample.wind_gust_ms
        if gust is not None and (self.gust_max is None or gust > self.gust_max):
            self.gust_max = gust
        if sample.condition:
            self.conditions[sample.condition] = self.conditions.get(sample.condition, 0) + 1

    def _rescale(self, bits: int) -> None:
        """Keep the sums at ``bits`` (more than now) from here on."""
        more = bits - self.bits
        self.sums[:] = [total << more for total in self.sums]  # in place: add() holds the list
        self.temp_squares <<= 2 * more
        self.bits = bits

    def copy(self) -> Summary:
        out = Summary.__new__(Summary)
        out.times, out.offsets, out.bits = list(self.times), list(self.offsets), self.bits
        out.n, out.sums, out.lows, out.highs = list(self.n), list(self.sums), list(self.lows), list(self.highs)
        out.temp_squares, out.gust_max = self.temp_squares, self.gust_max
        out.pressure_first, out.pressure_last = self.pressure_first, self.pressure_last
        out.conditions = dict(self.conditions)
        out.tz_first, out.tz_last = self.tz_first, self.tz_last
        return out

    @classmethod
    def merged(cls, parts: Sequence[Summary]) -> Summary:
        """One summary of all of ``parts`` (they hold different times; any order). Offsets are left out.

        It runs for every window that closes (a day's hopping window merges 24 slices), so the columns are
        reduced by ``map`` over ``zip`` (in C) rather than by loops.
        """
        parts = [p for p in parts if p.times]
        out = cls()
        if not parts:
            return out
        if len(parts) == 1:
            only = parts[0].copy()
            only.offsets = []
            return only
        times: list[float] = []
        for p in parts:
            times += p.times
        times.sort()  # usually in order already (slices come in time order): a linear pass then
        out.times = times
        firsts = [p.times[0] for p in parts]
        lasts = [p.times[-1] for p in parts]
        out.tz_first = parts[firsts.index(times[0])].tz_first
        out.tz_last = parts[lasts.index(times[-1])].tz_last
        bits = max(p.bits for p in parts)
        if any(p.bits != bits for p in parts):
            parts = [p if p.bits == bits else _rescaled(p, bits) for p in parts]
        out.bits = bits
        out.n = list(map(sum, zip(*[p.n for p in parts], strict=True)))
        out.sums = list(map(sum, zip(*[p.sums for p in parts], strict=True)))
        low_columns = list(zip(*[p.lows for p in parts], strict=True))
        high_columns = list(zip(*[p.highs for p in parts], strict=True))
        lows = out.lows = list(map(min, low_columns))
        highs = out.highs = list(map(max, high_columns))
        # min and max keep the first of equal values, and -0.0 == 0.0: a zero minimum is -0.0 if any part's is,
        # a zero maximum 0.0 if any part's is (the signs of the zeros decide, all other values being >= or <= 0).
        for q, low in enumerate(lows):
            if low == 0.0:
                lows[q] = -0.0 if min(map(math.copysign, _ONES, low_columns[q])) < 0 else 0.0
        for q, high in enumerate(highs):
            if high == 0.0:
                highs[q] = 0.0 if max(map(math.copysign, _ONES, high_columns[q])) > 0 else -0.0
        out.temp_squares = sum(p.temp_squares for p in parts)
        gusts = [p.gust_max for p in parts if p.gust_max is not None]
        out.gust_max = max(gusts) if gusts else None
        pressure_firsts = [p.pressure_first for p in parts if p.pressure_first is not None]
        pressure_lasts = [p.pressure_last for p in parts if p.pressure_last is not None]
        out.pressure_first = min(pressure_firsts) if pressure_firsts else None
        out.pressure_last = max(pressure_lasts) if pressure_lasts else None
        conditions: dict[str, int] = {}
        for p in parts:
            for name, k in p.conditions.items():
                conditions[name] = conditions.get(name, 0) + k
        out.conditions = conditions
        return out


def _negative_zero(x: float) -> bool:
    return x == 0.0 and math.copysign(1.0, x) < 0


def _rescaled(s: Summary, bits: int) -> Summary:
    out = s.copy()
    out._rescale(bits)
    return out


def cadence_s(times: Sequence[float], default_s: float) -> float:
    """The median spacing of consecutive observation times, sorted (``default_s`` below three observations)."""
    if len(times) < 3:
        return default_s
    gaps = sorted(map(operator.sub, times[1:], times[:-1]))
    if gaps[0] <= 0:
        gaps = [g for g in gaps if g > 0]
    if not gaps:
        return default_s
    mid = len(gaps) // 2
    return gaps[mid] if len(gaps) % 2 else (gaps[mid - 1] + gaps[mid]) / 2


def _mean(s: Summary, q: int) -> float | None:
    return rounded(s.sums[q], s.bits) / s.n[q] if s.n[q] else None


def finish(s: Summary, window_start: float, window_end: float, default_cadence_s: float) -> dict[str, Any]:
    """The aggregate values of a window from the summary of its observations (units in the names)."""
    cadence = cadence_s(s.times, default_cadence_s)
    expected = max(1, round((window_end - window_start) / cadence))
    count = len(s.times)
    n, lows, highs = s.n, s.lows, s.highs

    def low(q: int) -> float | None:
        return lows[q] if n[q] else None

    def high(q: int) -> float | None:
        return highs[q] if n[q] else None

    condition = min(s.conditions, key=lambda c: (-s.conditions[c], c)) if s.conditions else None
    return {
        "count": count,
        "expected_count": expected,
        "coverage": count / expected,
        "cadence_s": cadence,
        "temp_min_c": low(TEMP),
        "temp_max_c": high(TEMP),
        "temp_mean_c": _mean(s, TEMP),
        "temp_std_c": sample_std(n[TEMP], s.sums[TEMP], s.temp_squares, s.bits),
        "feels_like_mean_c": _mean(s, FEELS),
        "humidity_min_pct": low(HUMIDITY),
        "humidity_max_pct": high(HUMIDITY),
        "humidity_mean_pct": _mean(s, HUMIDITY),
        "pressure_min_hpa": low(PRESSURE),
        "pressure_max_hpa": high(PRESSURE),
        "pressure_mean_hpa": _mean(s, PRESSURE),
        "pressure_first_hpa": s.pressure_first[1] if s.pressure_first else None,
        "pressure_last_hpa": s.pressure_last[1] if s.pressure_last else None,
        "wind_mean_ms": _mean(s, WIND),
        "wind_max_ms": high(WIND),
        "gust_max_ms": s.gust_max,
        # 1-hour rates sampled every `cadence` seconds: each stands for cadence/3600 of an hour.
        "rain_total_mm": rounded(s.sums[RAIN], s.bits) * cadence / 3600 if n[RAIN] else None,
        "snow_total_mm": rounded(s.sums[SNOW], s.bits) * cadence / 3600 if n[SNOW] else None,
        "condition": condition,
        "first_observed_at": s.times[0] if s.times else None,
        "last_observed_at": s.times[-1] if s.times else None,
    }
