"""Event-time window arithmetic: which windows an observation belongs to, and their bounds.

Three kinds, all per city, all in UTC epoch seconds:

- **tumbling** windows of ``size_s`` aligned to the epoch: ``[k*size, (k+1)*size)``.
- **local day** windows from the city's local midnight to the next one. The local date of an
  observation comes from its own UTC offset, so a day with a daylight-saving change is 23 or 25 hours long.
- **hopping** windows of ``size_s`` every ``step_s``, aligned to the epoch: ``[k*step, k*step+size)``.

Every tumbling and hopping window is a union of *slices*: consecutive ``slice_s`` stretches of UTC time,
``slice_s`` dividing every size and step. A local day's edges (local midnights) need not be slice edges: a
slice keeps its observations apart by local date (:mod:`weatherstream.core.slices`).

Example:
    >>> spec = WindowSpec(tumbling_s=(3600,), local_day=True, hopping_size_s=86400, hopping_step_s=3600)
    >>> spec.slice_s
    3600
    >>> [w.wid for w in spec.windows_for(7200.0, utc_offset_s=0)][:2]
    ['tumbling-1h:7200', 'day-local:1970-01-01']
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import cached_property

DAY_S = 86400
QUARTER_HOUR_S = 900


def human_duration(seconds: int) -> str:
    """``3600`` -> ``"1h"``, ``86400`` -> ``"24h"``, ``604800`` -> ``"7d"``, ``5400`` -> ``"90m"``."""
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % length == 0 and not (unit == "d" and seconds <= 2 * 86400):
            return f"{seconds // length}{unit}"
    return f"{seconds}s"


def local_date(t: float, utc_offset_s: int) -> int:
    """Days since 1970-01-01 of the local calendar date at UTC time ``t``."""
    return math.floor((t + utc_offset_s) / DAY_S)


def round_offset(utc_offset_s: int) -> int:
    """An offset rounded to the nearest 15 minutes (every current zone already is one)."""
    return round(utc_offset_s / QUARTER_HOUR_S) * QUARTER_HOUR_S


@dataclass(frozen=True)
class Window:
    """One window of one kind.

    Attributes:
        kind: e.g. "tumbling-1h", "day-local", "hopping-24h-1h".
        start: UTC epoch seconds, inclusive.
        end: UTC epoch seconds, exclusive. For a local day it is estimated from the offset known when
            the window is made; :meth:`WindowSpec.day_bounds` gives the exact bounds from the data.
        key: what identifies it within its kind: the start, or for a local day the local date.
    """

    kind: str
    start: float
    end: float
    key: int

    @property
    def wid(self) -> str:
        """A stable id: ``kind:start`` (``day-local:YYYY-MM-DD`` for local days)."""
        if self.kind == "day-local":
            return f"{self.kind}:{dt.date.fromordinal(dt.date(1970, 1, 1).toordinal() + self.key).isoformat()}"
        return f"{self.kind}:{self.key}"


def parse_wid(wid: str) -> tuple[str, int]:
    """The (kind, key) of a window id; for a local day the key is days since 1970-01-01."""
    kind, _, rest = wid.partition(":")
    if kind == "day-local":
        return kind, dt.date.fromisoformat(rest).toordinal() - dt.date(1970, 1, 1).toordinal()
    return kind, int(rest)


@dataclass(frozen=True)
class WindowSpec:
    """Which windows to keep.

    Attributes:
        tumbling_s: sizes of epoch-aligned tumbling windows (default one hour).
        local_day: also keep local-midnight day windows.
        hopping_size_s, hopping_step_s: the hopping window (0 size: none); the size must be a multiple of the step.
    """

    tumbling_s: tuple[int, ...] = (3600,)
    local_day: bool = True
    hopping_size_s: int = 86400
    hopping_step_s: int = 3600

    def __post_init__(self) -> None:
        if any(s <= 0 for s in self.tumbling_s):
            raise ValueError("tumbling window sizes must be positive")
        if self.hopping_size_s:
            if self.hopping_step_s <= 0 or self.hopping_size_s % self.hopping_step_s:
                raise ValueError("the hopping size must be a positive multiple of its step")

    @cached_property
    def slice_s(self) -> int:
        """The slice length: the largest that divides every size and step (an hour when only local days are kept)."""
        sizes = [s for s in (*self.tumbling_s, self.hopping_size_s, self.hopping_step_s) if s]
        return math.gcd(*sizes) if sizes else 3600

    @cached_property
    def kinds(self) -> tuple[str, ...]:
        out = [f"tumbling-{human_duration(s)}" for s in self.tumbling_s]
        if self.local_day:
            out.append("day-local")
        if self.hopping_size_s:
            out.append(f"hopping-{human_duration(self.hopping_size_s)}-{human_duration(self.hopping_step_s)}")
        return tuple(out)

    @cached_property
    def max_span_s(self) -> int:
        """The longest window (a local day can be 25 h)."""
        return max([*self.tumbling_s, self.hopping_size_s, DAY_S + 3600 if self.local_day else 0])

    def slice_start(self, t: float) -> int:
        return math.floor(t / self.slice_s) * self.slice_s

    def day_of(self, t: float, utc_offset_s: int) -> int:
        """The local date (days since 1970-01-01) an observation at ``t`` belongs to; 0 without local days."""
        return local_date(t, round_offset(utc_offset_s)) if self.local_day else 0

    def windows_for(self, t: float, utc_offset_s: int) -> list[Window]:
        """Every window containing time ``t``, for an observation made at local offset ``utc_offset_s``."""
        return [
            self.window(kind, key, utc_offset_s) for kind, keys, _ in self.keys_for(t, utc_offset_s) for key in keys
        ]

    def keys_for(self, t: float, utc_offset_s: int) -> list[tuple[str, range, float]]:
        """Per kind, the keys of the windows containing ``t`` (hopping ones newest first) and the earliest end
        among them: :meth:`windows_for` without making the windows (it runs for every observation)."""
        out: list[tuple[str, range, float]] = []
        for size, kind in zip(self.tumbling_s, self.kinds, strict=False):
            start = math.floor(t / size) * size
            out.append((kind, range(start, start + 1), start + size))
        if self.local_day:
            offset = round_offset(utc_offset_s)
            day = local_date(t, offset)
            out.append(("day-local", range(day, day + 1), (day + 1) * DAY_S - offset))
        if self.hopping_size_s:
            step, size = self.hopping_step_s, self.hopping_size_s
            last = math.floor(t / step) * step
            first = last - (size // step - 1) * step
            out.append((self.kinds[-1], range(last, first - 1, -step), first + size))
        return out

    def window(self, kind: str, key: int, utc_offset_s: int = 0) -> Window:
        """The window of ``kind`` identified by ``key`` (for a local day, its end estimated with the offset)."""
        if kind == "day-local":
            offset = round_offset(utc_offset_s)
            return Window(kind, key * DAY_S - offset, (key + 1) * DAY_S - offset, key)
        if kind.startswith("hopping-"):
            return Window(kind, key, key + self.hopping_size_s, key)
        size = self.tumbling_s[self.kinds.index(kind)]
        return Window(kind, key, key + size, key)

    def slice_range(self, window: Window) -> range:
        """Starts of the slices that may hold observations of ``window`` (a local day: 2 h of slack each side,
        for observations made at another offset than the one its bounds were estimated with)."""
        if window.kind == "day-local":
            lo, hi = window.start - 2 * 3600, window.end + 2 * 3600
        else:
            lo, hi = window.start, window.end
        return range(self.slice_start(lo), math.ceil(hi / self.slice_s) * self.slice_s, self.slice_s)

    @cached_property
    def _steps(self) -> dict[str, int]:
        steps = {kind: size for size, kind in zip(self.tumbling_s, self.kinds, strict=False)}
        if self.local_day:
            steps["day-local"] = 1
        if self.hopping_size_s:
            steps[self.kinds[-1]] = self.hopping_step_s
        return steps

    @cached_property
    def _spans(self) -> dict[str, int]:
        spans = {kind: size for size, kind in zip(self.tumbling_s, self.kinds, strict=False)}
        if self.hopping_size_s:
            spans[self.kinds[-1]] = self.hopping_size_s
        return spans

    def step_of(self, kind: str) -> int:
        """How far apart consecutive keys of ``kind`` are (a local day's key is its date: 1)."""
        return self._steps[kind]

    def end_of(self, kind: str, key: int, utc_offset_s: int = 0) -> float:
        """``window(kind, key, utc_offset_s).end``, without making the window."""
        if kind == "day-local":
            return (key + 1) * DAY_S - round_offset(utc_offset_s)
        return key + self._spans[kind]
