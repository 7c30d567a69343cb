"""The per-city anomaly engine: detectors plus the incident lifecycle, over a plain state (dicts, lists, numbers,
and the baseline's bytes).

Lifecycle of one incident (per city and kind):

- ``open`` when a detector reaches warning or critical;
- ``update`` only when the severity rises (it never steps down within an incident, so a value hovering
  around a level does not flap);
- ``resolved`` after ``clear_after`` observations in a row below the detector's clear threshold.

The alert id is ``city:kind:start`` (start: the observation time that opened it), so a replay of the same
data gives the same ids, and ``seq`` numbers the messages of one incident. The state keeps
``last_offset`` (a redelivered observation changes nothing) and an ``outbox`` of alerts not yet
confirmed sent, like the window state.
"""

from __future__ import annotations

import bisect
import enum
import statistics
from dataclasses import dataclass, field
from typing import Any

from models import Observation
from weatherstream.core.anomaly.baseline import HourlyBaseline
from weatherstream.core.anomaly.detectors import (
    DEFAULT_THRESHOLDS,
    DETECTOR_KINDS,
    NONE,
    SEVERITY_NAMES,
    WARNING,
    QualityDetector,
    RateDetector,
    Signal,
    StatisticalDetector,
    Threshold,
    entry_time,
    reading,
)
from weatherstream.core.anomaly.texts import describe

State = dict[str, Any]
HISTORY_S = 3 * 3600
MAX_GAPS = 20
#: a pressure tendency is the change over 3 h (as in synoptic reports); the reading it starts from may be up to
#: this much later than 3 h before, for stations whose times drift
TENDENCY_SLACK_S = 1800.0


class Verdict(enum.Enum):
    APPLIED = "applied"
    REDELIVERED = "redelivered"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class EngineConfig:
    """Detector settings and lifecycle rules.

    Attributes:
        clear_after: observations below the clear threshold that resolve an incident.
        historical_after_s: alerts about observations older than this (vs the wall clock) are marked historical.
        suppress_historical: drop historical alerts instead of sending them (the lifecycle still runs).
        default_cadence_s: a city's assumed cadence before three gaps are known.
    """

    statistical: StatisticalDetector = field(default_factory=StatisticalDetector)
    thresholds: tuple[Threshold, ...] = DEFAULT_THRESHOLDS
    rate: RateDetector = field(default_factory=RateDetector)
    quality: QualityDetector = field(default_factory=QualityDetector)
    clear_after: int = 2
    historical_after_s: float = 6 * 3600.0
    suppress_historical: bool = False
    default_cadence_s: float = 600.0

    def __post_init__(self) -> None:
        # One signal per kind and observation: an incident's lifecycle counts each of its kind's signals, and a
        # quiet threshold is not judged at all (AnomalyEngine.apply), which only holds when no other signal
        # shares its kind.
        kinds = [th.kind for th in self.thresholds]
        shared = sorted({k for k in kinds if kinds.count(k) > 1} | (set(kinds) & set(DETECTOR_KINDS)))
        if shared:
            raise ValueError(f"threshold kinds must be unique and differ from {', '.join(DETECTOR_KINDS)}; "
                             f"rename {', '.join(shared)}")  # fmt: skip


@dataclass
class Outcome:
    verdict: Verdict
    state: State
    alerts: list[dict[str, Any]] = field(default_factory=list)
    pressure_tendency_3h_hpa: float | None = None  # see pressure_tendency_3h_hpa()


def pressure_tendency_3h_hpa(history: list[list[Any]], t: float, pressure_hpa: float | None) -> float | None:
    """The change of sea-level pressure over the 3 h before ``t``: ``pressure_hpa`` minus the earliest reading in
    ``history`` (``[t, temp_c, pressure_hpa]``, sorted by time) between 3 h and 2.5 h before ``t``; None without
    such a reading or without a pressure now."""
    if pressure_hpa is None:
        return None
    first, last = t - HISTORY_S, t - HISTORY_S + TENDENCY_SLACK_S
    for entry in history[bisect.bisect_left(history, first, key=entry_time) :]:
        if entry[0] > last:
            break
        if entry[2] is not None:
            return round(pressure_hpa - entry[2], 3)
    return None


def new_state(baseline: HourlyBaseline) -> State:
    return {"last_offset": -1, "baseline": baseline.empty(), "history": [], "last": None, "repeats": 0,
            "last_t": None, "last_wall": None, "gaps": [], "incidents": {}, "outbox": [], "name": None}  # fmt: skip


def _copy(state: State) -> State:
    incidents = {k: dict(v) for k, v in state["incidents"].items()}
    lists = {k: list(state[k]) for k in ("outbox", "history", "gaps")}
    return {**state, "incidents": incidents, **lists}


class AnomalyEngine:
    """Applies :class:`EngineConfig` to one city's observations."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()

    def cadence_s(self, state: State) -> float:
        """The median of the city's recent gaps (the default below three)."""
        gaps = state["gaps"]
        return statistics.median(gaps) if len(gaps) >= 3 else self.config.default_cadence_s

    def due_at(self, state: State | None) -> float | None:
        """When (wall clock) a tick would open the city's ``silent_station`` incident (None: it would not)."""
        if not state or state["last_wall"] is None or "silent_station" in state["incidents"]:
            return None
        return float(state["last_wall"]) + self.config.quality.silent_factor * self.cadence_s(state) + 1.0

    def apply(self, state: State | None, obs: Observation, offset: int, *, wall_now: float,
              owned: bool = False) -> Outcome:  # fmt: skip
        """Judge one observation. The outcome's state is a new one, unless ``owned``: ``state`` is the caller's own
        (the outcome of an earlier call, not shared with anything), and is changed in place (a batch of a city's
        observations copies the state it read once, not once per observation)."""
        cfg = self.config
        if owned and state:
            s = state
        else:
            s = _copy(state) if state else new_state(cfg.statistical.baseline)
        t = obs.observed_at
        history = s["history"]  # sorted by time
        # also for a repeat, whose copy replaces the stored row
        tendency = pressure_tendency_3h_hpa(history, t, obs.pressure_hpa)
        if offset <= s["last_offset"]:
            return Outcome(Verdict.REDELIVERED, s, pressure_tendency_3h_hpa=tendency)
        s["last_offset"] = offset
        at = bisect.bisect_left(history, t, key=entry_time)
        if (at < len(history) and history[at][0] == t) or t == s["last_t"]:
            return Outcome(Verdict.DUPLICATE, s, pressure_tendency_3h_hpa=tendency)
        s["name"] = obs.city_name or s["name"]
        out = Outcome(Verdict.APPLIED, s, pressure_tendency_3h_hpa=tendency)
        incidents = s["incidents"]  # the open incidents by kind: detectors judge those against their clear levels
        hour = int(((t + (obs.timezone_offset_s or 0)) // 3600) % 24)
        signals = cfg.statistical.judge(s["baseline"], hour, obs.temp_c, incidents)
        for th in cfg.thresholds:
            # A quiet threshold of a kind with no open incident has nothing to open or clear: not judged.
            active = th.kind in incidents
            if active or th.alarming(getattr(obs, th.field)):
                signals.append(th.judge(obs, active))
        signals += cfg.rate.judge(history, obs, incidents)

        in_order = s["last_t"] is None or t > s["last_t"]
        if in_order:
            current = reading(obs)
            s["repeats"] = s["repeats"] + 1 if s["last"] == current else 1
            s["last"] = current
            signals.append(cfg.quality.stuck(s["repeats"]))
            if s["last_t"] is not None:
                gap = t - s["last_t"]
                cadence = self.cadence_s(s)
                silent = cfg.quality.silent(gap, cadence)
                if silent.level >= WARNING and "silent_station" not in s["incidents"]:
                    # The silence is over by the time it is seen: open at its start, resolve now.
                    self._open(s, out, obs.city_id, silent, s["last_t"], wall_now)
                    self._resolve(s, out, obs.city_id, "silent_station", t, wall_now, silent)
                elif "silent_station" in s["incidents"]:  # opened by a tick while it was quiet
                    self._resolve(s, out, obs.city_id, "silent_station", t, wall_now, silent)
                usual = gap <= 4 * cadence or len(s["gaps"]) < 3  # a long silence is not the cadence
                s["gaps"] = ([*s["gaps"], gap] if usual else s["gaps"])[-MAX_GAPS:]
            s["last_t"] = t
        s["last_wall"] = wall_now

        for signal in signals:
            if signal.level >= WARNING or signal.kind in incidents:  # otherwise there is nothing to open or clear
                self._lifecycle(s, out, obs.city_id, signal, t, wall_now)
        if obs.temp_c is not None:
            s["baseline"] = cfg.statistical.baseline.update(s["baseline"], hour, obs.temp_c)
        kept = history[bisect.bisect_left(history, t - HISTORY_S, key=entry_time) :]
        bisect.insort(kept, [t, obs.temp_c, obs.pressure_hpa], key=entry_time)  # no other entry has time t
        s["history"] = kept
        s["outbox"].extend(out.alerts)
        return out

    def tick(self, state: State | None, city_id: int, *, wall_now: float) -> Outcome:
        """A live station that has gone quiet: open ``silent_station`` when the wall-clock silence exceeds
        the silent factor times its cadence."""
        if not state or state["last_wall"] is None or "silent_station" in state["incidents"]:
            return Outcome(Verdict.APPLIED, state or new_state(self.config.statistical.baseline))
        s = _copy(state)
        out = Outcome(Verdict.APPLIED, s)
        signal = self.config.quality.silent(wall_now - s["last_wall"], self.cadence_s(s))
        if signal.level >= WARNING:
            self._open(s, out, city_id, signal, s["last_t"] or wall_now, wall_now)
            s["outbox"].extend(out.alerts)
        return out

    # ----------------------------------------------------------------------------------------------
    def _lifecycle(self, s: State, out: Outcome, city_id: int, signal: Signal, t: float, wall: float) -> None:
        incident = s["incidents"].get(signal.kind)
        if incident is None:
            if signal.level >= WARNING:
                self._open(s, out, city_id, signal, t, wall)
            return
        if signal.level > NONE:
            incident["clear"] = 0
            if signal.level > incident["level"]:
                incident["level"] = signal.level
                self._alert(s, out, city_id, incident, "update", signal, t, wall)
            return
        incident["clear"] += 1
        if incident["clear"] >= self.config.clear_after:
            self._resolve(s, out, city_id, signal.kind, t, wall, signal)

    def _open(self, s: State, out: Outcome, city_id: int, signal: Signal, start: float, wall: float) -> None:
        incident = {"id": f"{city_id}:{signal.kind}:{int(start)}", "kind": signal.kind, "start": start,
                    "level": signal.level, "clear": 0, "seq": 0}  # fmt: skip
        s["incidents"][signal.kind] = incident
        self._alert(s, out, city_id, incident, "open", signal, start, wall)

    def _resolve(self, s: State, out: Outcome, city_id: int, kind: str, t: float, wall: float, signal: Signal) -> None:
        incident = s["incidents"].pop(kind)
        self._alert(s, out, city_id, incident, "resolved", signal, t, wall)

    def _alert(self, s: State, out: Outcome, city_id: int, incident: dict[str, Any], state: str, signal: Signal,
               t: float, wall: float) -> None:  # fmt: skip
        incident["seq"] += 1
        historical = t < wall - self.config.historical_after_s
        alert = {
            "alert_id": incident["id"],
            "seq": incident["seq"],
            "city_id": city_id,
            "city_name": s.get("name"),
            "kind": incident["kind"],
            "severity": SEVERITY_NAMES.get(incident["level"], "warning"),
            "state": state,
            "observed_value": signal.value,
            "reference": signal.reference,
            "score": signal.score,
            "unit": signal.unit,
            "incident_start": incident["start"],
            "observed_at": t,
            "detected_at": wall,
            "historical": historical,
            "message": describe(
                s.get("name") or str(city_id),
                incident["kind"],
                state,
                signal,
                SEVERITY_NAMES.get(incident["level"], "warning"),
                t,
                historical,
            ),
        }
        if historical and self.config.suppress_historical:
            return
        out.alerts.append(alert)


def confirm(state: State, delivered: set[str]) -> State:
    """The state without outbox alerts whose delivery was confirmed."""
    if not delivered or not state.get("outbox"):
        return state
    return {**state, "outbox": [a for a in state["outbox"] if outbox_id(a) not in delivered]}


def outbox_id(alert: dict[str, Any]) -> str:
    return f"{alert['alert_id']}#{alert['seq']}"
