from typing import Any

import pytest

from models import Observation
from weatherstream.core.anomaly.baseline import HourlyBaseline
from weatherstream.core.anomaly.detectors import StatisticalDetector, Threshold
from weatherstream.core.anomaly.engine import AnomalyEngine, EngineConfig, Verdict, confirm, outbox_id
from weatherstream.core.anomaly.scoring import score

T0 = 1_790_000_000.0


class Run:
    def __init__(self, **cfg: Any) -> None:
        self.engine = AnomalyEngine(EngineConfig(**cfg))
        self.state: dict[str, Any] | None = None
        self.alerts: list[dict[str, Any]] = []
        self.offset = 0

    def feed(self, wall: float = T0 + 10**6, **values: Any) -> Any:
        self.offset += 1
        out = self.engine.apply(self.state, Observation(city_id=7, city_name="Testville", **values), self.offset,
                                wall_now=wall)  # fmt: skip
        self.state = out.state
        self.alerts += out.alerts
        return out

    def lifecycle(self, kind: str) -> list[tuple[str, str]]:
        return [(a["state"], a["severity"]) for a in self.alerts if a["kind"] == kind]


def test_flapping_around_a_threshold_gives_one_incident() -> None:
    run = Run()
    temps = [41.0, 39.5, 40.5, 39.0, 40.2, 38.5, 40.1, 39.9]  # around the heat warning level (40 °C)
    for i, temp in enumerate(temps):
        run.feed(observed_at=T0 + i * 600, temp_c=temp)
    assert run.lifecycle("heat") == [("open", "warning")]  # stays open inside the hysteresis band
    for i in range(2):
        run.feed(observed_at=T0 + (len(temps) + i) * 600, temp_c=30.0)
    assert run.lifecycle("heat") == [("open", "warning"), ("resolved", "warning")]


def test_updates_only_when_severity_rises() -> None:
    run = Run()
    for i, temp in enumerate([41.0, 42.0, 46.0, 47.0, 41.0, 46.0, 30.0, 30.0]):
        run.feed(observed_at=T0 + i * 600, temp_c=temp)
    assert run.lifecycle("heat") == [("open", "warning"), ("update", "critical"), ("resolved", "critical")]
    ids = {a["alert_id"] for a in run.alerts if a["kind"] == "heat"}
    assert ids == {f"7:heat:{int(T0)}"}  # deterministic: city, kind, incident start
    assert [a["seq"] for a in run.alerts if a["kind"] == "heat"] == [1, 2, 3]


def test_statistical_alert_needs_warm_up() -> None:
    run = Run(statistical=StatisticalDetector(baseline=HourlyBaseline(min_samples=3)))
    for day in range(3):  # three days at the same hour: the warm-up
        run.feed(observed_at=T0 + day * 86400, temp_c=10.0 + day * 0.3)
    assert run.lifecycle("temp_high") == []
    run.feed(observed_at=T0 + 3 * 86400, temp_c=22.0)
    assert run.lifecycle("temp_high")[0] == ("open", "critical")


def test_redelivery_and_duplicates_change_nothing() -> None:
    run = Run()
    run.feed(observed_at=T0, temp_c=41.0)
    again = run.engine.apply(run.state, Observation(city_id=7, observed_at=T0, temp_c=41.0), 1, wall_now=T0)
    assert again.verdict is Verdict.REDELIVERED and again.alerts == []
    dup = run.engine.apply(run.state, Observation(city_id=7, observed_at=T0, temp_c=41.0), 99, wall_now=T0)
    assert dup.verdict is Verdict.DUPLICATE and dup.alerts == []


def test_stuck_sensor_and_silent_station() -> None:
    run = Run()
    for i in range(8):
        run.feed(observed_at=T0 + i * 600, temp_c=5.0, pressure_hpa=1000.0, humidity_pct=50.0)
    assert run.lifecycle("stuck_sensor") == [("open", "warning")]
    run.feed(observed_at=T0 + 8 * 600, temp_c=5.5, pressure_hpa=1000.0)
    run.feed(observed_at=T0 + 9 * 600, temp_c=5.7, pressure_hpa=1001.0)
    assert run.lifecycle("stuck_sensor")[-1][0] == "resolved"
    run.feed(observed_at=T0 + 9 * 600 + 4 * 3600, temp_c=5.1)  # four hours of silence
    (opened, resolved) = [a for a in run.alerts if a["kind"] == "silent_station"]
    assert opened["state"] == "open" and opened["incident_start"] == T0 + 9 * 600 and resolved["state"] == "resolved"


def test_tick_reports_a_live_silence_once() -> None:
    run = Run()
    for i in range(5):
        run.feed(observed_at=T0 + i * 600, wall=T0 + i * 600, temp_c=5.0 + i)
    quiet = run.engine.tick(run.state, 7, wall_now=T0 + 4 * 600 + 1000)
    assert quiet.alerts == []
    due = run.engine.due_at(run.state)  # the cadence is 600 s: silent after 3 x 600 s
    assert due == T0 + 4 * 600 + 1800 + 1
    assert run.engine.tick(run.state, 7, wall_now=due - 1.5).alerts == []
    loud = run.engine.tick(run.state, 7, wall_now=due)
    assert [(a["kind"], a["state"], a["historical"]) for a in loud.alerts] == [("silent_station", "open", False)]
    assert run.engine.tick(loud.state, 7, wall_now=T0 + 10**4).alerts == []  # already open
    assert run.engine.due_at(loud.state) is None


def test_historical_alerts_are_marked_or_suppressed() -> None:
    run = Run()
    run.feed(observed_at=T0, wall=T0 + 86400, temp_c=41.0)
    assert run.alerts[0]["historical"] is True
    quiet = Run(suppress_historical=True)
    quiet.feed(observed_at=T0, wall=T0 + 86400, temp_c=41.0)
    assert quiet.alerts == [] and "heat" in quiet.state["incidents"]  # the lifecycle still runs


def test_outbox_until_confirmed() -> None:
    run = Run()
    run.feed(observed_at=T0, temp_c=41.0)
    (alert,) = run.state["outbox"]
    assert confirm(run.state, {outbox_id(alert)})["outbox"] == []


def test_scoring_per_incident() -> None:
    labels = [
        {"kind": "heat_spike", "city_id": 7, "start": 1000.0, "end": 5000.0, "expected": "alert", "incident_id": "a"},
        {"kind": "wind_gust", "city_id": 8, "start": 1000.0, "end": 2000.0, "expected": "alert", "incident_id": "b"},
        {"kind": "impossible_value", "city_id": 7, "start": 0.0, "end": 0.0, "expected": "deadletter"},
    ]
    alerts = [
        {"alert_id": "x", "state": "open", "city_id": 7, "kind": "temp_high", "incident_start": 1600.0},
        {"alert_id": "x", "state": "resolved", "city_id": 7, "kind": "temp_high", "incident_start": 1600.0},
        {"alert_id": "y", "state": "open", "city_id": 7, "kind": "temp_jump", "incident_start": 5600.0},
        {"alert_id": "z", "state": "open", "city_id": 9, "kind": "storm", "incident_start": 1500.0},
    ]
    result = score(labels, alerts)
    assert (result.incidents, result.found, result.alert_incidents, result.correct_alerts) == (2, 1, 3, 2)
    assert result.recall == 0.5 and result.precision == 2 / 3


def test_an_owned_state_changed_in_place_gives_what_copies_give() -> None:
    """A batch copies the state it read once (``owned``) instead of once per observation: same outcomes, and the
    state it read is never changed."""
    import copy
    import random

    rng = random.Random(5)
    observations = []
    for i in range(300):  # storms, frost, pressure falls, repeats and late arrivals
        t = T0 + i * 600 + (rng.choice([0, 0, 0, -1800]) if i > 3 else 0)
        observations.append(Observation(city_id=7, city_name="Testville", observed_at=t,
                                        temp_c=rng.choice([5.0, 5.0, 41.0, -30.0, 12.5]),
                                        pressure_hpa=rng.choice([1012.0, 1001.0, 990.0]),
                                        wind_speed_ms=rng.choice([3.0, 22.0, 30.0])))  # fmt: skip
    engine = AnomalyEngine()
    copying: dict[str, Any] | None = None
    in_place: dict[str, Any] | None = None
    for start in range(0, len(observations), 25):  # batches of 25
        read, as_read = in_place, copy.deepcopy(in_place)
        owned = False
        for offset, obs in enumerate(observations[start : start + 25], start=start + 1):
            a = engine.apply(copying, obs, offset, wall_now=T0 + 10**6)
            b = engine.apply(in_place, obs, offset, wall_now=T0 + 10**6, owned=owned)
            assert (a.verdict, a.alerts) == (b.verdict, b.alerts)
            copying, in_place, owned = a.state, b.state, True
        assert copying == in_place
        assert read == as_read  # the state the batch read (shared with the cache) was left as it was


def test_pressure_tendency_is_the_change_since_the_reading_three_hours_before() -> None:
    run = Run()
    pressures = [1012.0, 1011.0, 1010.5, 1009.0]  # hourly
    outcomes = [run.feed(observed_at=T0 + i * 3600, pressure_hpa=p) for i, p in enumerate(pressures)]
    assert [o.pressure_tendency_3h_hpa for o in outcomes] == [None, None, None, -3.0]
    # a reading 2 h 40 min before is the start too (times drift); none between 3 h and 2.5 h before: unknown
    assert run.feed(observed_at=T0 + 3 * 3600 + 2400, pressure_hpa=1009.5).pressure_tendency_3h_hpa == -1.5
    assert run.feed(observed_at=T0 + 7 * 3600, pressure_hpa=1009.5).pressure_tendency_3h_hpa is None
    # no pressure now: no tendency; a reading without pressure is passed over for the next one in the span
    assert run.feed(observed_at=T0 + 8 * 3600).pressure_tendency_3h_hpa is None
    run.feed(observed_at=T0 + 8 * 3600 + 600, pressure_hpa=1010.0)
    assert run.feed(observed_at=T0 + 11 * 3600, pressure_hpa=1012.25).pressure_tendency_3h_hpa == 2.25


def test_a_repeat_gets_the_tendency_its_first_copy_got() -> None:
    run = Run()
    run.feed(observed_at=T0, pressure_hpa=1000.0)
    first = run.feed(observed_at=T0 + 3 * 3600, pressure_hpa=1004.0)
    again = run.engine.apply(run.state, Observation(city_id=7, observed_at=T0 + 3 * 3600, pressure_hpa=1004.0),
                             run.offset + 1, wall_now=T0)  # fmt: skip
    redelivered = run.engine.apply(run.state, Observation(city_id=7, observed_at=T0 + 3 * 3600, pressure_hpa=1004.0),
                                   run.offset, wall_now=T0)  # fmt: skip
    assert again.verdict is Verdict.DUPLICATE and redelivered.verdict is Verdict.REDELIVERED
    assert (
        first.pressure_tendency_3h_hpa == again.pressure_tendency_3h_hpa == redelivered.pressure_tendency_3h_hpa == 4.0
    )


def test_threshold_kinds_must_be_their_own() -> None:
    # The engine leaves a quiet threshold unjudged, which is only the same as judging it while no other signal of
    # the observation shares its kind (each signal of an open incident's kind counts towards clearing it).
    wind = Threshold("wind", "wind_speed_ms", "m/s", warning=20.0, critical=30.0, clear=15.0)
    gust = Threshold("wind", "wind_gust_ms", "m/s", warning=25.0, critical=35.0, clear=20.0)
    with pytest.raises(ValueError, match="rename wind"):
        EngineConfig(thresholds=(wind, gust))
    with pytest.raises(ValueError, match="rename temp_jump"):
        EngineConfig(thresholds=(Threshold("temp_jump", "temp_c", "°C", 40.0, 45.0, 38.0),))
    assert EngineConfig(thresholds=(wind,)).thresholds == (wind,)
