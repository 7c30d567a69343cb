"""The per-city window state machine: observations and idle ticks in; pane writes and aggregates out.

Pure: the caller (the aggregator agent) reads the city's *header* and panes from tables, calls
:meth:`Aggregator.apply` or :meth:`Aggregator.tick`, writes what the :class:`Step` says, then sends the
emissions. The header is one JSON-able dict per city:

``last_offset``
    offset (in the city's partition of ``{ns}.observations``) of the last observation applied. An
    observation at or below it is a re-delivery after a crash and changes nothing.
``max_t``, ``wm``
    newest observation time, and the watermark: ``max_t - lateness`` (or more, after an idle tick).
``last_wall``, ``tz``
    wall-clock time of the last arrival (for idle ticks), the newest observation's UTC offset.
``open``
    per window kind, the keys of windows that hold data and are not final yet.
``rev``
    revision of windows corrected after they were final (absent: revision 1).
``panes``
    runs ``[first, end)`` of pane starts in use, so old panes can be deleted.
``drop``
    pane starts no longer needed (behind the watermark), to delete only once this header is in the
    changelog: a header rebuilt after a crash can be older than the panes, and still need them.
``outbox``
    emissions not yet confirmed delivered; they are sent again after a restart (same id and revision:
    consumers treat a repeat as the same aggregate).

Windows close when the watermark passes their end: one final aggregate each (revision 1). An
observation that lands in a closed window less than ``retention_s`` behind the watermark produces a
corrected aggregate (revision + 1); an older one is too late. Panes keep each observation's row with its
offset, so a re-delivered observation is recognised and a different observation with the same time is
a duplicate. Panes are written before the header, so after a crash a pane can hold rows the header has not
applied: a row counts in a window only once ``last_offset`` has reached its offset. Panes are deleted only
after the header that no longer needs them (its ``drop``), since a header rebuilt after a crash may still.
"""

from __future__ import annotations

import bisect
import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from weatherstream.core.aggregate import OFFSET, TZ, Partial, Row, finish
from weatherstream.core.windows import DAY_S, Window, WindowSpec, parse_wid, round_offset

Header = dict[str, Any]
PaneGetter = Callable[[int], "list[Row] | None"]


class Verdict(enum.Enum):
    APPLIED = "applied"
    REDELIVERED = "redelivered"  # applied before a crash: its pane is written again, its outputs re-sent
    FORGOTTEN = "forgotten"  # applied long ago (its pane aged out behind the watermark): nothing to do
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


@dataclass
class Step:
    """What one observation or tick changes.

    Attributes:
        header: the city's new header (write it after the panes; delete its ``drop`` panes after it).
        pane_writes: pane start -> its rows (sorted by time).
        emissions: aggregate dicts to send (already appended to the header's outbox).
    """

    verdict: Verdict
    header: Header
    pane_writes: dict[int, list[Row]] = field(default_factory=dict)
    emissions: list[dict[str, Any]] = field(default_factory=list)


def new_header() -> Header:
    return {"last_offset": -1, "max_t": None, "wm": None, "last_wall": None, "tz": 0, "open": {}, "rev": {},
            "panes": [], "drop": [], "outbox": []}  # fmt: skip


def _add_pane(runs: list[list[int]], start: int, pane_s: int) -> None:
    if any(run[0] <= start < run[1] for run in runs):
        return
    runs[:] = _merge_runs([*runs, [start, start + pane_s]])  # it may join two runs (a gap filled)


def _merge_runs(runs: list[list[int]]) -> list[list[int]]:
    merged: list[list[int]] = []
    for run in sorted(runs):
        if merged and run[0] <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], run[1])
        else:
            merged.append(list(run))
    return merged


class Aggregator:
    """Applies the windowing rules of one :class:`AggregatorConfig`."""

    def __init__(self, config: AggregatorConfig) -> None:
        self.config = config
        self.spec = config.spec

    # ----------------------------------------------------------------------------------------------
    def apply(
        self,
        city_id: int,
        header: Header | None,
        row: Row,
        get_pane: PaneGetter,
        *,
        wall_now: float,
        event_ts: float | None = None,
    ) -> Step:
        """Apply one observation (as a row carrying its input offset).

        Args:
            get_pane: reads a pane's rows by pane start (None when absent).
            wall_now: the current wall-clock time (for idle detection; not used for windows).
            event_ts: when the observation appeared in Kafka (recorded on aggregates it closes).
        """
        h = _copy(header) if header else new_header()
        offset, t = int(row[OFFSET]), float(row[0])
        if offset <= h["last_offset"]:
            return self._judged_before(h, row, get_pane)
        h["last_offset"] = offset
        cfg, spec = self.config, self.spec
        if h["wm"] is not None and t < h["wm"] - cfg.retention_s:
            return Step(Verdict.TOO_LATE, h)

        step = Step(Verdict.APPLIED, h)
        pane_start = spec.pane_start(t)
        rows = list(get_pane(pane_start) or [])
        times = [r[0] for r in rows]
        i = bisect.bisect_left(times, t)
        if i < len(rows) and rows[i][0] == t:
            other = int(rows[i][OFFSET])
            if other < offset:
                step.verdict = Verdict.DUPLICATE
                return step
            # Already in the pane: a crash came after the pane write and before the header write. The pane
            # may exist only in the crashed worker's local store (its changelog record never left), so it is
            # written again, and counted in the header like any other. A later offset there is a row the
            # header has not applied either: this observation came first, so it takes the place.
            rows[i] = row
        else:
            rows.insert(i, row)
        step.pane_writes[pane_start] = rows
        _add_pane(h["panes"], pane_start, spec.pane_s)

        def written(start: int) -> list[Row] | None:
            return step.pane_writes[start] if start in step.pane_writes else get_pane(start)

        pane = _applied_rows(written, offset)

        if h["max_t"] is None or t >= h["max_t"]:
            h["max_t"] = t
            h["tz"] = int(row[TZ] or 0)
        h["last_wall"] = wall_now

        wm, tz = h["wm"], int(row[TZ] or 0)
        for kind, window_keys, earliest_end in spec.keys_for(t, tz):
            keys = h["open"].setdefault(kind, [])
            if wm is None or earliest_end > wm:  # the usual case: none of them has closed
                known = set(keys)
                for key in window_keys:
                    if key not in known:
                        bisect.insort(keys, key)
                continue
            for key in window_keys:
                if key in keys:
                    continue
                window = spec.window(kind, key, tz)
                if window.end > wm:
                    bisect.insort(keys, key)
                    continue
                wid = window.wid  # closed: a corrected aggregate (or the first, if it had no rows)
                prior = h["rev"].get(wid) or (1 if self._had_rows(window, pane, exclude_offset=offset) else 0)
                revision = prior + 1
                if revision > 1:
                    h["rev"][wid] = revision
                step.emissions.append(self._emit(city_id, window, pane, revision, wall_now, event_ts, late=True))
        self._advance(city_id, h, step, pane, max(h["wm"] or -math.inf, h["max_t"] - cfg.lateness_s), wall_now,
                      event_ts)  # fmt: skip
        return step

    def _judged_before(self, h: Header, row: Row, get_pane: PaneGetter) -> Step:
        """A re-delivered observation (its offset is already counted): judged as the first time, from its pane.

        Its row is in its pane if it was accepted: then the pane is written again, since it may exist only
        in the local store of the worker that crashed (its changelog record never left), and a worker that
        rebuilds the table from the changelog would lack the row the header counts. A pane aged out behind
        the watermark means it was handled, and its outputs sent, many batches ago.
        """
        offset, t = int(row[OFFSET]), float(row[0])
        start = self.spec.pane_start(t)
        rows = get_pane(start)
        if rows is None and h["wm"] is not None and t < h["wm"] - self.config.retention_s:
            return Step(Verdict.FORGOTTEN, h)
        same_time = [r for r in rows or () if r[0] == t]
        if any(int(r[OFFSET]) == offset for r in same_time):
            step = Step(Verdict.REDELIVERED, h)
            step.pane_writes[start] = list(rows or ())
            return step
        return Step(Verdict.DUPLICATE if same_time else Verdict.TOO_LATE, h)

    def tick(self, city_id: int, header: Header | None, get_pane: PaneGetter, *, wall_now: float) -> Step:
        """Move an idle city's watermark on with the wall clock: by the time since its last arrival."""
        if not header:
            return Step(Verdict.APPLIED, new_header())
        h = _copy(header)
        step = Step(Verdict.APPLIED, h)
        if h["max_t"] is None or h["last_wall"] is None:
            return step
        silent_s = wall_now - h["last_wall"]
        if silent_s <= self.config.idle_timeout_s:
            return step
        idle_wm = h["max_t"] + silent_s - self.config.lateness_s
        pane = _applied_rows(get_pane, h["last_offset"])
        self._advance(city_id, h, step, pane, max(h["wm"] or -math.inf, idle_wm), wall_now, None)
        return step

    # ----------------------------------------------------------------------------------------------
    def _advance(self, city_id: int, h: Header, step: Step, pane: PaneGetter, new_wm: float, wall_now: float,
                 event_ts: float | None) -> None:  # fmt: skip
        spec, cfg = self.spec, self.config
        h["wm"] = new_wm
        for kind, keys in h["open"].items():
            # Keys are kept sorted and a kind's windows end in key order: stop at the first still open.
            closed = 0
            for key in keys:
                window = spec.window(kind, key, h["tz"])
                if window.end > new_wm:
                    break
                step.emissions.append(self._emit(city_id, window, pane, 1, wall_now, event_ts, late=False))
                closed += 1
            del keys[:closed]
        horizon = new_wm - cfg.retention_s
        for wid in [w for w in h["rev"] if self._window_end_from_wid(w, h["tz"]) < horizon]:
            del h["rev"][wid]
        pane_floor = spec.pane_start(horizon - spec.max_span_s)
        kept: list[list[int]] = []
        for first, end in _merge_runs(h["panes"]):
            h["drop"].extend(range(first, min(end, pane_floor), spec.pane_s))
            if end > pane_floor:
                kept.append([max(first, pane_floor), end])
        h["panes"] = kept
        h["outbox"].extend(step.emissions)

    def _window_end_from_wid(self, wid: str, tz: int) -> float:
        kind, key = parse_wid(wid)
        return self.spec.window(kind, key, tz).end

    def window_rows(self, window: Window, pane: PaneGetter) -> list[Row]:
        """Every row of ``window``, in time order."""
        rows: list[Row] = []
        if window.kind != "day-local":  # its panes lie inside it (pane edges are window edges)
            for start in self.spec.pane_range(window):
                rows.extend(pane(start) or ())
            return rows
        for start in self.spec.pane_range(window):
            for row in pane(start) or ():
                if self.spec.row_in(window, float(row[0]), int(row[TZ] or 0)):
                    rows.append(row)
        return rows

    def _had_rows(self, window: Window, pane: PaneGetter, exclude_offset: int) -> bool:
        return any(int(r[OFFSET]) != exclude_offset for r in self.window_rows(window, pane))

    def aggregate(self, window: Window, rows: list[Row]) -> dict[str, Any]:
        """The values of ``window`` over ``rows`` (exact local-day bounds from the rows' offsets)."""
        # One pass over the rows in time order: the arithmetic is the same however they arrived.
        partial = Partial.of(rows)
        start, end = window.start, window.end
        if window.kind == "day-local" and rows:
            start = window.key * DAY_S - round_offset(int(rows[0][TZ] or 0))
            end = (window.key + 1) * DAY_S - round_offset(int(rows[-1][TZ] or 0))
        values = finish(partial, start, end, self.config.default_cadence_s)
        values.update(window_start=start, window_end=end)
        return values

    def _emit(self, city_id: int, window: Window, pane: PaneGetter, revision: int, wall_now: float,
              event_ts: float | None, *, late: bool) -> dict[str, Any]:  # fmt: skip
        values = self.aggregate(window, self.window_rows(window, pane))
        values.update(
            city_id=city_id,
            kind=window.kind,
            window_id=window.wid,
            revision=revision,
            late=late,
            closed_at=wall_now,
            watermark_passed_at=event_ts,
            eid=f"{city_id}/{window.wid}#{revision}",
        )
        return values


def _applied_rows(get_pane: PaneGetter, last_offset: int) -> PaneGetter:
    """Panes as the header knows them: without rows of offsets after ``last_offset``.

    Panes are written before headers, so after a crash a pane can hold rows of observations its city's
    header has not applied yet. They are delivered again and counted then; a window that closes before
    that must not take them in.
    """

    def pane(start: int) -> list[Row] | None:
        rows = get_pane(start)
        if rows is not None:
            for row in rows:  # on the hot path: one pass, and a copy only when a row is left out
                if row[OFFSET] > last_offset:
                    return [r for r in rows if r[OFFSET] <= last_offset]
        return rows

    return pane


def pane_drops(header: Header | None) -> list[int]:
    """Pane starts to delete once ``header`` is in the changelog (a header written later no longer needs them)."""
    return list((header or {}).get("drop", ()))


def settled(header: Header) -> Header:
    """``header`` without its drops: call it when they are known deleted, i.e. when the city's next batch
    starts with new data (the batch that wrote the header was acknowledged, so its deletes were delivered)."""
    if not header.get("drop"):
        return header
    return {**header, "drop": []}


def confirm(header: Header, delivered: set[str]) -> Header:
    """The header without outbox entries whose delivery was confirmed."""
    if not delivered or not header.get("outbox"):
        return header
    h = dict(header)
    h["outbox"] = [e for e in header["outbox"] if e["eid"] not in delivered]
    return h


def _copy(header: Header) -> Header:
    return {
        **header,
        "open": {k: list(v) for k, v in header.get("open", {}).items()},
        "rev": dict(header.get("rev", {})),
        "panes": [list(r) for r in header.get("panes", [])],
        "drop": list(header.get("drop", [])),
        "outbox": list(header.get("outbox", [])),
    }
