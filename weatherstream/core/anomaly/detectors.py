"""Detectors: each judges one observation, given the city's recent history, for the alert kinds it owns.

A detector returns a :class:`Signal` per kind: a level (0 none, 1 info, 2 warning, 3 critical), the
observed value, the baseline or threshold it was compared with, and a score. ``active`` says whether an
incident of that kind is open; detectors then use their lower *clear* thresholds (hysteresis), so a
value hovering around a threshold does not open and resolve incidents over and over.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from models import Observation
from weatherstream.core.anomaly.baseline import HourlyBaseline

NONE, INFO, WARNING, CRITICAL = 0, 1, 2, 3
SEVERITY_NAMES = {INFO: "info", WARNING: "warning", CRITICAL: "critical"}
#: the kinds of the statistical, rate and quality detectors' signals (a threshold's kind must be another)
DETECTOR_KINDS = ("temp_high", "temp_low", "pressure_drop", "temp_jump", "stuck_sensor", "silent_station")
#: the time of a history entry ``[t, temp_c, pressure_hpa]`` (histories are sorted by it)
entry_time = operator.itemgetter(0)


class Signal(NamedTuple):
    """A detector's judgement of one kind (a named tuple: a dozen are made per observation).

    ``limit`` is the bound the level was judged against (the warning or critical threshold reached; below
    warning, the clear threshold where a detector has one, else the warning threshold), in the detector's own
    terms: the value's unit for thresholds, standard
    scores for the baseline kinds, the change's unit for rate kinds, a count for a stuck sensor, times the
    usual interval for a silent station. Rate kinds also give ``since``, the time of the earlier observation
    the change is measured from (its value is ``reference``).
    """

    kind: str
    level: int
    value: float | None = None
    reference: float | None = None
    score: float | None = None
    unit: str = ""
    limit: float | None = None
    since: float | None = None

    @property
    def severity(self) -> str:
        return SEVERITY_NAMES.get(self.level, "none")


@dataclass(frozen=True)
class Threshold:
    """A physical threshold: ``warning`` and ``critical`` levels, and the level below which an open
    incident clears. ``above`` says which side is dangerous."""

    kind: str
    field: str
    unit: str
    warning: float
    critical: float
    clear: float
    above: bool = True

    def alarming(self, value: float | None) -> bool:
        """Whether :meth:`judge` would give ``value`` a warning or critical level (None: not measured)."""
        if value is None:
            return False
        if self.above:
            return value >= self.warning or value >= self.critical
        return value <= self.warning or value <= self.critical

    def judge(self, obs: Observation, active: bool) -> Signal:
        value = getattr(obs, self.field)
        if value is None:
            return Signal(self.kind, NONE)
        signed = value if self.above else -value  # how far to the dangerous side, compared as if above
        sign = 1.0 if self.above else -1.0
        level = CRITICAL if signed >= sign * self.critical else WARNING if signed >= sign * self.warning else NONE
        if level == NONE and active and signed >= sign * self.clear:
            level = INFO  # still inside the hysteresis band: the incident stays open
        limit = self.critical if level == CRITICAL else self.warning if level == WARNING else self.clear
        return Signal(self.kind, level, value, self.warning, None, self.unit, limit)


DEFAULT_THRESHOLDS = (
    Threshold("heat", "temp_c", "°C", warning=40.0, critical=45.0, clear=38.0),
    Threshold("frost", "temp_c", "°C", warning=-25.0, critical=-35.0, clear=-23.0, above=False),
    Threshold("storm", "wind_speed_ms", "m/s", warning=20.8, critical=28.5, clear=17.2),  # Beaufort 9 / 11 / 8
    Threshold("gust", "wind_gust_ms", "m/s", warning=25.0, critical=33.0, clear=20.0),
    Threshold("heavy_rain", "rain_1h_mm", "mm/h", warning=10.0, critical=30.0, clear=7.6),
    Threshold("heavy_snow", "snow_1h_mm", "mm/h", warning=5.0, critical=10.0, clear=3.0),
)


@dataclass(frozen=True)
class StatisticalDetector:
    """Temperature against the city's own baseline for that local hour of day."""

    baseline: HourlyBaseline = field(default_factory=HourlyBaseline)
    warning_z: float = 4.0
    critical_z: float = 6.0
    clear_z: float = 2.5

    def judge(self, state: bytes, hour: int, temp_c: float | None,
              active: Mapping[str, object]) -> list[Signal]:  # fmt: skip
        if temp_c is None:
            return []
        z = self.baseline.score(state, hour, temp_c)
        if z is None:
            return [Signal("temp_high", NONE), Signal("temp_low", NONE)]
        mean = self.baseline.mean(state, hour)
        out = []
        for kind, sign in (("temp_high", 1.0), ("temp_low", -1.0)):
            s = sign * z
            level = CRITICAL if s >= self.critical_z else WARNING if s >= self.warning_z else NONE
            if level == NONE and active.get(kind) and s >= self.clear_z:
                level = INFO
            limit = self.critical_z if level == CRITICAL else self.warning_z if level == WARNING else self.clear_z
            out.append(Signal(kind, level, temp_c, mean, round(z, 3), "°C", limit))
        return out


@dataclass(frozen=True)
class RateDetector:
    """Pressure falling by ``pressure_fall_hpa`` within 3 h; temperature changing by ``temp_change_c`` within 1 h."""

    pressure_fall_hpa: float = 8.0
    pressure_fall_critical_hpa: float = 12.0
    temp_change_c: float = 8.0
    temp_change_critical_c: float = 12.0

    def judge(self, history: Sequence[Sequence[float | None]], obs: Observation,
              active: Mapping[str, object]) -> list[Signal]:  # fmt: skip
        """``history``: ``[t, temp_c, pressure_hpa]`` of this city, oldest first (sorted by time); ``active``: the
        kinds with an open incident (a true value)."""
        t = obs.observed_at
        out = []
        before = bisect.bisect_left(history, t, key=entry_time)  # history[:before] is earlier than t
        if obs.pressure_hpa is not None:
            since = bisect.bisect_left(history, t - 3 * 3600, hi=before, key=entry_time)
            # the highest pressure of the last 3 h (the earliest of equal ones: the fall's whole span)
            top: float | None = None
            top_t: float | None = None
            for e_t, _, p in history[since:before]:
                if p is not None and (top is None or p > top):
                    top, top_t = p, e_t
            fall = (top - obs.pressure_hpa) if top is not None else 0.0
            level = (
                CRITICAL
                if fall >= self.pressure_fall_critical_hpa
                else WARNING
                if fall >= self.pressure_fall_hpa
                else NONE
            )
            if level == NONE and active.get("pressure_drop") and fall >= self.pressure_fall_hpa / 2:
                level = INFO
            limit = self.pressure_fall_critical_hpa if level == CRITICAL else self.pressure_fall_hpa
            out.append(Signal("pressure_drop", level, obs.pressure_hpa, top, round(fall, 3), "hPa", limit, top_t))
        if obs.temp_c is not None:
            since = bisect.bisect_left(history, t - 3600, hi=before, key=entry_time)
            # the earlier temperature farthest from this one (the earliest of equally far ones)
            temp, change, far, far_t = obs.temp_c, 0.0, None, None
            for e_t, x, _ in history[since:before]:
                if x is not None:
                    distance = abs(temp - x)
                    if far is None or distance > change:
                        change, far, far_t = distance, x, e_t
            level = (
                CRITICAL if change >= self.temp_change_critical_c else WARNING if change >= self.temp_change_c else NONE
            )
            limit = self.temp_change_critical_c if level == CRITICAL else self.temp_change_c
            out.append(Signal("temp_jump", level, obs.temp_c, far, round(change, 3), "°C", limit, far_t))
        return out


def reading(obs: Observation) -> list[float | None]:
    """What a stuck sensor repeats: every measured quantity."""
    return [obs.temp_c, obs.pressure_hpa, obs.humidity_pct, obs.wind_speed_ms, obs.wind_deg]


@dataclass(frozen=True)
class QualityDetector:
    """A stuck sensor (``stuck_after`` identical readings in a row) and a silent station (no observation
    for ``silent_factor`` times the city's usual cadence)."""

    stuck_after: int = 6
    silent_factor: float = 3.0

    def stuck(self, repeats: int) -> Signal:
        return Signal("stuck_sensor", WARNING if repeats >= self.stuck_after else NONE, float(repeats),
                      float(self.stuck_after), None, "observations", float(self.stuck_after))  # fmt: skip

    def silent(self, gap_s: float, cadence_s: float) -> Signal:
        limit = self.silent_factor * cadence_s
        return Signal("silent_station", WARNING if gap_s > limit else NONE, gap_s, limit, round(gap_s / cadence_s, 2),
                      "s", self.silent_factor)  # fmt: skip
