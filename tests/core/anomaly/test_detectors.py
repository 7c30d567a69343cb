from typing import Any

import pytest

from models import Observation
from weatherstream.core.anomaly.baseline import HourlyBaseline
from weatherstream.core.anomaly.detectors import (
    CRITICAL,
    DEFAULT_THRESHOLDS,
    INFO,
    NONE,
    WARNING,
    QualityDetector,
    RateDetector,
    StatisticalDetector,
    Threshold,
)


def obs(**values: Any) -> Observation:
    return Observation(city_id=1, observed_at=values.pop("t", 10_000.0), **values)


def test_baseline_warms_up_then_scores() -> None:
    b = HourlyBaseline(min_samples=5, min_spread=0.5)
    state = b.empty()
    for x in (10.0, 11.0, 9.0, 10.0):
        state = b.update(state, 3, x)
        assert b.score(state, 3, 30.0) is None  # warming up: no score, no alert
    state = b.update(state, 3, 10.0)
    assert b.score(state, 3, 30.0) > 10
    assert b.score(state, 4, 30.0) is None  # other hours learn separately


def test_baseline_is_robust_to_the_anomaly_it_sees() -> None:
    b = HourlyBaseline(min_samples=5)
    state = b.empty()
    for x in [10.0, 10.5, 9.5, 10.2, 9.8] * 4:
        state = b.update(state, 0, x)
    before = b.mean(state, 0)
    for _ in range(3):  # three hot readings: clipped, so the baseline barely moves
        state = b.update(state, 0, 40.0)
    assert b.mean(state, 0) - before < 1.5
    assert b.score(state, 0, 40.0) > 8


def test_statistical_levels_and_hysteresis() -> None:
    det = StatisticalDetector(baseline=HourlyBaseline(min_samples=3, min_spread=1.0))
    b = det.baseline
    state = b.empty()
    for x in (10.0, 10.0, 10.0):
        state = b.update(state, 5, x)
    levels = {s.kind: s.level for s in det.judge(state, 5, 14.5, active={})}
    assert levels == {"temp_high": WARNING, "temp_low": NONE}
    assert {s.kind: s.level for s in det.judge(state, 5, 17.0, {})}["temp_high"] == CRITICAL
    assert {s.kind: s.level for s in det.judge(state, 5, 5.0, {})}["temp_low"] == WARNING
    # 3 spreads above: not enough to open, enough to keep an open incident open
    assert {s.kind: s.level for s in det.judge(state, 5, 13.0, {})}["temp_high"] == NONE
    assert {s.kind: s.level for s in det.judge(state, 5, 13.0, {"temp_high": True})}["temp_high"] == INFO


@pytest.mark.parametrize(
    ("kind", "field", "values"),
    [
        ("heat", "temp_c", [(39.9, NONE), (40.0, WARNING), (45.0, CRITICAL)]),
        ("frost", "temp_c", [(-24.0, NONE), (-25.0, WARNING), (-36.0, CRITICAL)]),
        ("storm", "wind_speed_ms", [(20.0, NONE), (21.0, WARNING), (29.0, CRITICAL)]),
        ("gust", "wind_gust_ms", [(24.0, NONE), (25.0, WARNING), (40.0, CRITICAL)]),
        ("heavy_rain", "rain_1h_mm", [(9.0, NONE), (10.0, WARNING), (31.0, CRITICAL)]),
        ("heavy_snow", "snow_1h_mm", [(4.0, NONE), (5.0, WARNING), (12.0, CRITICAL)]),
    ],
)
def test_physical_thresholds(kind: str, field: str, values: list[tuple[float, int]]) -> None:
    (threshold,) = [t for t in DEFAULT_THRESHOLDS if t.kind == kind]
    for value, level in values:
        assert threshold.judge(obs(**{field: value}), active=False).level == level
    assert threshold.judge(obs(), active=False).level == NONE  # not measured: no alert


@pytest.mark.parametrize(
    "threshold",
    [*DEFAULT_THRESHOLDS, Threshold("odd", "temp_c", "°C", warning=30.0, critical=20.0, clear=10.0),
     Threshold("odd_low", "temp_c", "°C", warning=-30.0, critical=-20.0, clear=-10.0, above=False)],
    ids=lambda t: t.kind,
)  # fmt: skip
def test_alarming_is_exactly_a_warning_or_critical_judgement(threshold: Threshold) -> None:
    # The engine judges a threshold of a kind with no open incident only when it is alarming (a quicker test).
    for tenths in range(-600, 601):
        value = tenths / 10
        judged = threshold.judge(obs(**{threshold.field: value}), active=False).level
        assert threshold.alarming(value) == (judged >= WARNING), value
    assert not threshold.alarming(None)


def test_threshold_hysteresis_band() -> None:
    (heat,) = [t for t in DEFAULT_THRESHOLDS if t.kind == "heat"]
    assert heat.judge(obs(temp_c=39.0), active=True).level == INFO  # between clear (38) and warning (40)
    assert heat.judge(obs(temp_c=37.0), active=True).level == NONE


def test_pressure_falling_within_three_hours() -> None:
    rate = RateDetector()
    history = [[10_000.0 - 3 * 3600 + 60, 5.0, 1012.0], [10_000.0 - 3600, 5.0, 1008.0]]
    (p, _) = rate.judge(history, obs(t=10_000.0, pressure_hpa=1003.5, temp_c=5.0), {})
    assert p.kind == "pressure_drop" and p.level == WARNING and p.score == pytest.approx(8.5)
    (p, _) = rate.judge(history, obs(t=10_000.0, pressure_hpa=999.0, temp_c=5.0), {})
    assert p.level == CRITICAL
    old = [[10_000.0 - 3 * 3600 - 1, 5.0, 1030.0]]  # more than 3 h ago: not counted
    assert rate.judge(old, obs(t=10_000.0, pressure_hpa=1003.0), {})[0].level == NONE


def test_temperature_jump_within_an_hour() -> None:
    rate = RateDetector()
    history = [[10_000.0 - 1800, 5.0, None]]
    (t,) = [s for s in rate.judge(history, obs(t=10_000.0, temp_c=13.5), {}) if s.kind == "temp_jump"]
    assert t.level == WARNING
    (t,) = [s for s in rate.judge(history, obs(t=10_000.0, temp_c=-8.0), {}) if s.kind == "temp_jump"]
    assert t.level == CRITICAL
    (t,) = [s for s in rate.judge(history, obs(t=10_000.0, temp_c=11.0), {}) if s.kind == "temp_jump"]
    assert t.level == NONE


def test_quality_detectors() -> None:
    q = QualityDetector(stuck_after=6, silent_factor=3.0)
    assert q.stuck(5).level == NONE and q.stuck(6).level == WARNING
    assert q.silent(1800.0, 600.0).level == NONE and q.silent(1801.0, 600.0).level == WARNING
