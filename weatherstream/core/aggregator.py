"""The per-city window state machine: observations and idle ticks in; slice writes and aggregates out.

Pure: the pipeline reads a city's :class:`WindowState` (part of its table record), opens a
:class:`CityWindows` on it for one batch, applies the batch's observations and ticks in order, and writes
what :meth:`CityWindows.end` returns. Windows follow these rules:

- Per city a watermark trails the newest observation by ``lateness_s``. When it passes a window's end the
  window gets one final aggregate (revision 1). A city silent for ``idle_timeout_s`` has its watermark moved
  on with the wall clock by ticks, so its windows close too.
- An observation that lands in a window that was already final, less than ``retention_s`` behind the
  watermark, gives a corrected aggregate (revision + 1) over all of the window's data; an older one is too late.
- Aggregates wait in the state's outbox until their delivery is confirmed (a restart sends them again, with
  the same id and revision).

Where the data lives. An observation updates one :class:`~weatherstream.core.slices.Slice` (its hour, with
the default windows); a window's aggregate merges the slices it covers. Slices that may still change in
order (the watermark has not passed their end) are *hot*: kept inside the city's record, written with it.
Older slices are *cold*: each under a key of its own, read only when a window closes or late data comes.

Why it stays consistent after a crash. The city's record and its cold slices are keys of one table, so their
changelog partition orders them, but a worker that restarts with its own RocksDB folder can find the record
set back by one batch (recovery replays the changelog from the last persisted offset over newer local
values), while cold slices written only locally stay. So a cold slice is never written in the batch that
changes it: data goes into the hot copy in the record, and a slice is moved out (*cooled*) only in a later
batch, once the record that holds it is *durable* (its batch was delivered), and only if that batch did not
change it. Every record that can come back then finds each of its cold slices as it left them. Slices are
deleted behind the correction horizon the same way: listed in ``drop`` by the record that no longer needs
them, deleted once that record is durable. A record known not to be durable (written by a batch that may
not have been delivered) is written again with the cold slices its batch cooled (``cooled``).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from weatherstream.core.slices import Slice
from weatherstream.core.summary import Sample, Summary, finish
from weatherstream.core.windows import DAY_S, Window, WindowSpec, parse_wid, round_offset

ColdSlices = Callable[[int], "Slice | None"]
Runs = list[list[int]]  # sorted [first, last] (inclusive) runs of keys a fixed step apart


class Verdict(enum.Enum):
    APPLIED = "applied"
    REDELIVERED = "redelivered"  # applied before a crash: its outputs are sent again
    FORGOTTEN = "forgotten"  # applied long ago (its slice was deleted behind the watermark): nothing to do
    DUPLICATE = "duplicate"  # another message with the same city and time
    TOO_LATE = "too_late"  # older than the retention horizon behind the watermark


@dataclass(frozen=True)
class AggregatorConfig:
    """Rules of windowing.

    Attributes:
        lateness_s: the watermark trails the newest observation by this much.
        idle_timeout_s: after this long without data, a tick moves a city's watermark on with the wall clock.
        retention_s: how far behind the watermark late data still corrects a final window.
        default_cadence_s: the assumed spacing of observations when a window has too few to tell.
    """

    spec: WindowSpec = field(default_factory=WindowSpec)
    lateness_s: float = 600.0
    idle_timeout_s: float = 1800.0
    retention_s: float = 48 * 3600.0
    default_cadence_s: float = 600.0


@dataclass(slots=True)
class WindowState:
    """One city's window state (stored in its table record).

    Attributes:
        last_offset: input offset of the last observation applied; one at or below it is a re-delivery.
        max_t, wm: newest observation time, and the watermark.
        last_wall, tz: wall-clock time of the last arrival (for idle ticks), the newest observation's UTC offset.
        open: per window kind, runs of the keys of windows that hold data and are not final yet.
        rev: revision of windows corrected after they were final (absent: revision 1).
        slices: runs of the starts of slices that hold observations (hot or cold).
        hot: the slices kept in the record (see the module docstring).
        cooled: slices the batch that wrote this state moved out (written again if that batch was not durable).
        drop: cold slices behind the correction horizon, to delete once this state is durable.
        outbox: emissions not yet confirmed delivered.
    """

    last_offset: int = -1
    max_t: float | None = None
    wm: float | None = None
    last_wall: float | None = None
    tz: int = 0
    open: dict[str, Runs] = field(default_factory=dict)
    rev: dict[str, int] = field(default_factory=dict)
    slices: Runs = field(default_factory=list)
    hot: dict[int, Slice] = field(default_factory=dict)
    cooled: list[int] = field(default_factory=list)
    drop: list[int] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)

    def copy(self) -> WindowState:
        """A copy whose containers can change without touching this one (the slices are shared)."""
        return WindowState(
            self.last_offset, self.max_t, self.wm, self.last_wall, self.tz,
            {kind: [list(r) for r in runs] for kind, runs in self.open.items()}, dict(self.rev),
            [list(r) for r in self.slices], dict(self.hot), list(self.cooled), list(self.drop), list(self.outbox),
        )  # fmt: skip


@dataclass
class Changes:
    """What one city's batch changes in the table.

    Attributes:
        state: the new state (write it after ``cold_writes``).
        cold_writes: slice start -> slice to write under its own key (moved out of the record, or written again).
        deletes: slice keys to delete (after the state).
        rewrite: the state must be written even if it equals the one read (its batch may not have been delivered).
    """

    state: WindowState
    cold_writes: dict[int, Slice] = field(default_factory=dict)
    deletes: list[int] = field(default_factory=list)
    rewrite: bool = False


class Aggregator:
    """Applies the windowing rules of one :class:`AggregatorConfig`."""

    def __init__(self, config: AggregatorConfig) -> None:
        self.config = config
        self.spec = config.spec

    def begin(self, city_id: int, state: WindowState | None, cold: ColdSlices, *, owned: bool = False) -> CityWindows:
        """Open ``city_id``'s state for one batch; ``cold`` reads a cold slice by start (None: absent). ``owned``:
        ``state`` is the caller's own, not shared with anything, and is changed in place (else a copy is)."""
        return CityWindows(self, city_id, state, cold, owned=owned)

    def window_values(self, window: Window, summaries: list[Summary]) -> dict[str, Any]:
        """The aggregate values of ``window`` from the summaries of its observations (any order)."""
        s = Summary.merged(summaries)
        start, end = window.start, window.end
        if window.kind == "day-local" and s.times:
            # The day's bounds from the offsets the data carries (a daylight-saving day is 23 or 25 h).
            start = window.key * DAY_S - round_offset(s.tz_first)
            end = (window.key + 1) * DAY_S - round_offset(s.tz_last)
        values = finish(s, start, end, self.config.default_cadence_s)
        values.update(window_start=start, window_end=end)
        return values

    def due_at(self, state: WindowState | None) -> float | None:
        """When (wall clock) an idle tick would next close a window of the city (None: nothing would)."""
        if state is None or state.max_t is None or state.last_wall is None:
            return None
        ends = [self.spec.end_of(kind, runs[0][0], state.tz) for kind, runs in state.open.items() if runs]
        if not ends:
            return None
        # tick() closes a window once wall - last_wall > idle_timeout and max_t + (wall - last_wall) - lateness
        # reaches its end.
        silence = max(self.config.idle_timeout_s, min(ends) + self.config.lateness_s - state.max_t)
        return state.last_wall + silence + 1.0

    def open_windows(self, state: WindowState | None, cold: ColdSlices) -> Iterator[tuple[Window, dict[str, Any]]]:
        """The live values of the windows that hold data and are not final yet (for the web view)."""
        if state is None:
            return
        view = CityWindows(self, 0, state, cold, owned=True)  # read only
        for kind, runs in state.open.items():
            step = self.spec.step_of(kind)
            for first, last in runs:
                for key in range(first, last + 1, step):
                    window = self.spec.window(kind, key, state.tz)
                    summaries = view.summaries(window)
                    if summaries:
                        yield window, self.window_values(window, summaries)


class CityWindows:
    """One city's window state during one batch. ``owned``: the state is the caller's own, changed in place (its
    hot slices too); else the state read is never changed (a copy is, and a slice is copied before it changes)."""

    def __init__(self, aggregator: Aggregator, city_id: int, state: WindowState | None, cold: ColdSlices,
                 *, owned: bool = False) -> None:  # fmt: skip
        self.agg, self.config, self.spec = aggregator, aggregator.config, aggregator.spec
        self.city_id = city_id
        self.owned = owned or state is None
        self.state = (state if owned else state.copy()) if state is not None else WindowState()
        self.cold = cold
        self.changed: dict[int, Slice] = {}  # hot slices this batch changed (its own copies)
        self.emissions: list[dict[str, Any]] = []
        self.redelivered = False

    # -- reading and writing slices -------------------------------------------------------------------
    def slice(self, start: int) -> Slice | None:
        """The slice at ``start`` as this state knows it (None: it holds nothing)."""
        hot = self.state.hot.get(start)
        if hot is not None:
            return hot
        if not runs_contains(self.state.slices, start, self.spec.slice_s):
            return None
        return self.cold(start)

    def _writable(self, start: int) -> Slice:
        mine = self.changed.get(start)
        if mine is not None:
            return mine
        base = self.slice(start)
        if base is None:
            mine = Slice(start)
            runs_add(self.state.slices, start, start, self.spec.slice_s)
        elif self.owned and self.state.hot.get(start) is base:
            mine = base  # a hot slice of the caller's own state (a cold one may be cached: always copied)
        else:
            mine = base.copy()
        self.changed[start] = self.state.hot[start] = mine
        return mine

    def summaries(self, window: Window) -> list[Summary]:
        """The summaries of ``window``'s observations."""
        day = window.key if window.kind == "day-local" else None
        span = self.spec.slice_range(window)
        out: list[Summary] = []
        hot, cold = self.state.hot, self.cold
        for start in runs_within(self.state.slices, span.start, span.stop, span.step):
            found = hot.get(start) or cold(start)  # it exists (in the runs): no need to look it up there
            if found is not None:
                parts = found.parts
                if day is None:
                    out.extend(parts.values())
                elif day in parts:
                    out.append(parts[day])
        return out

    # -- input ----------------------------------------------------------------------------------------
    def apply(self, sample: Sample, *, wall_now: float, event_ts: float | None = None) -> Verdict:
        """Apply one observation.

        Args:
            wall_now: the current wall-clock time (for idle detection; not used for windows).
            event_ts: when the observation appeared in Kafka (recorded on aggregates it closes).
        """
        st, cfg, spec = self.state, self.config, self.spec
        offset, t = sample.offset, sample.t
        if offset <= st.last_offset:
            return self._judged_before(sample)
        st.last_offset = offset
        if st.wm is not None and t < st.wm - cfg.retention_s:
            return Verdict.TOO_LATE
        start = spec.slice_start(t)
        existing = self.slice(start)
        if existing is not None and existing.find(t) is not None:
            return Verdict.DUPLICATE
        self._writable(start).add(sample, spec.day_of(t, sample.tz))
        if st.max_t is None or t >= st.max_t:
            st.max_t, st.tz = t, sample.tz
        st.last_wall = wall_now

        wm, tz = st.wm, sample.tz
        for kind, window_keys, earliest_end in spec.keys_for(t, tz):
            runs, step = st.open.get(kind), spec.step_of(kind)
            if runs is None:
                runs = st.open[kind] = []
            if wm is None or earliest_end > wm:  # the usual case: none of them has closed
                first, last = window_keys[0], window_keys[-1]
                runs_add(runs, *((last, first) if first > last else (first, last)), step)
                continue
            for key in window_keys:
                if runs_contains(runs, key, step):
                    continue
                window = spec.window(kind, key, tz)
                if window.end > wm:
                    runs_add(runs, key, key, step)
                    continue
                # Closed: a corrected aggregate (or the first, if the window had no data before this).
                summaries = self.summaries(window)
                prior = st.rev.get(window.wid) or (1 if sum(len(s.times) for s in summaries) > 1 else 0)
                revision = prior + 1
                if revision > 1:
                    st.rev[window.wid] = revision
                self._emit(window, summaries, revision, wall_now, event_ts, late=True)
        self._advance(max(wm if wm is not None else -math.inf, st.max_t - cfg.lateness_s), wall_now, event_ts)
        return Verdict.APPLIED

    def _judged_before(self, sample: Sample) -> Verdict:
        """A re-delivered observation (its offset is already counted), judged as the first time, from its slice."""
        st, t = self.state, sample.t
        found = self.slice(self.spec.slice_start(t))
        if found is None and st.wm is not None and t < st.wm - self.config.retention_s:
            return Verdict.FORGOTTEN
        other = found.find(t) if found is not None else None
        if other == sample.offset:
            self.redelivered = True
            return Verdict.REDELIVERED
        return Verdict.DUPLICATE if other is not None else Verdict.TOO_LATE

    def tick(self, *, wall_now: float) -> None:
        """Move an idle city's watermark on with the wall clock: by the time since its last arrival."""
        st = self.state
        if st.max_t is None or st.last_wall is None:
            return
        silent_s = wall_now - st.last_wall
        if silent_s <= self.config.idle_timeout_s:
            return
        idle_wm = st.max_t + silent_s - self.config.lateness_s
        self._advance(max(st.wm if st.wm is not None else -math.inf, idle_wm), wall_now, None)

    # -- windows closing ------------------------------------------------------------------------------
    def _advance(self, new_wm: float, wall_now: float, event_ts: float | None) -> None:
        st, spec, cfg = self.state, self.spec, self.config
        st.wm = new_wm
        for kind, runs in st.open.items():
            # A kind's windows end in key order: close from the first until one is still open.
            while runs and spec.end_of(kind, runs[0][0], st.tz) <= new_wm:
                window = spec.window(kind, runs[0][0], st.tz)
                self._emit(window, self.summaries(window), 1, wall_now, event_ts, late=False)
                runs_pop_first(runs, spec.step_of(kind))
        horizon = new_wm - cfg.retention_s
        if st.rev:
            for wid in [w for w in st.rev if self._window_end(w) < horizon]:
                del st.rev[wid]
        floor = spec.slice_start(horizon - spec.max_span_s)
        if st.slices and st.slices[0][0] < floor:
            for start in runs_take_below(st.slices, floor, spec.slice_s):
                st.hot.pop(start, None)
                self.changed.pop(start, None)
                st.drop.append(start)

    def _window_end(self, wid: str) -> float:
        kind, key = parse_wid(wid)
        return self.spec.window(kind, key, self.state.tz).end

    def _emit(self, window: Window, summaries: list[Summary], revision: int, wall_now: float,
              event_ts: float | None, *, late: bool) -> None:  # fmt: skip
        values = self.agg.window_values(window, summaries)
        values.update(
            city_id=self.city_id, kind=window.kind, window_id=window.wid, revision=revision, late=late,
            closed_at=wall_now, watermark_passed_at=event_ts, eid=f"{self.city_id}/{window.wid}#{revision}",
        )  # fmt: skip
        self.emissions.append(values)
        self.state.outbox.append(values)

    # -- the batch's writes ---------------------------------------------------------------------------
    def end(self, *, durable: bool) -> Changes:
        """What to write for this batch.

        Args:
            durable: the state this batch started from is known to be in the changelog (its batch was
                delivered), so slices it no longer needs can be deleted and unchanged hot slices moved out.
        """
        st = self.state
        changes = Changes(st)
        if not durable:
            # Written again, with the cold slices its batch moved out: that batch may never have been delivered.
            changes.rewrite = True
            for start in st.cooled:
                found = self.cold(start)
                if found is not None:
                    changes.cold_writes[start] = found
            return changes
        changes.deletes, st.drop, st.cooled = st.drop, [], []
        wm = st.wm
        if wm is not None:
            for start in [s for s in st.hot if s + self.spec.slice_s <= wm and s not in self.changed]:
                changes.cold_writes[start] = st.hot.pop(start)
                st.cooled.append(start)
        return changes


def confirm(state: WindowState, delivered: set[str]) -> WindowState:
    """``state`` without outbox entries whose delivery was confirmed (a copy if anything goes)."""
    if not delivered or not state.outbox:
        return state
    kept = [e for e in state.outbox if e["eid"] not in delivered]
    if len(kept) == len(state.outbox):
        return state
    out = state.copy()
    out.outbox = kept
    return out


# -- runs of keys ------------------------------------------------------------------------------------
def runs_contains(runs: Runs, key: int, step: int) -> bool:
    """Whether ``key`` is one of the keys of ``runs`` (``step`` apart)."""
    for first, last in runs:
        if key < first:
            return False
        if key <= last:
            return (key - first) % step == 0
    return False


def runs_add(runs: Runs, first: int, last: int, step: int) -> None:
    """Add the keys ``first..last`` (``step`` apart) to ``runs``."""
    if runs:
        tail = runs[-1]
        if tail[0] <= first and last <= tail[1]:
            return  # already there (the usual case: an observation in the newest windows)
        if tail[0] <= first <= tail[1] + step:
            tail[1] = max(tail[1], last)
            return
    merged: Runs = []
    placed = False
    for run in runs:
        if run[1] + step < first:
            merged.append(run)
        elif last + step < run[0]:
            if not placed:
                merged.append([first, last])
                placed = True
            merged.append(run)
        else:
            first, last = min(first, run[0]), max(last, run[1])
    if not placed:
        merged.append([first, last])
    runs[:] = merged


def runs_pop_first(runs: Runs, step: int) -> None:
    """Remove the first key of ``runs``."""
    head = runs[0]
    if head[0] + step > head[1]:
        del runs[0]
    else:
        head[0] += step


def runs_within(runs: Runs, lo: int, hi: int, step: int) -> Iterator[int]:
    """The keys of ``runs`` in ``[lo, hi)`` (``runs`` and the range on the same grid)."""
    for first, last in runs:
        if last < lo:
            continue
        if first >= hi:
            return
        yield from range(max(first, lo), min(last + step, hi), step)


def runs_take_below(runs: Runs, floor: int, step: int) -> list[int]:
    """Remove and return the keys of ``runs`` below ``floor``."""
    taken: list[int] = []
    while runs and runs[0][0] < floor:
        first, last = runs[0]
        if last < floor:
            taken.extend(range(first, last + step, step))
            del runs[0]
        else:
            taken.extend(range(first, floor, step))
            runs[0][0] = floor + (first - floor) % step  # the first key at or above the floor
    return taken
