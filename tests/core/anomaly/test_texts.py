"""Alert texts: each says what changed, by how much, over what span, against which reference and threshold."""

from __future__ import annotations

from typing import Any

import pytest

from tests.core.anomaly.test_engine import T0, Run
from weatherstream.core.anomaly.detectors import CRITICAL, NONE, WARNING, Signal
from weatherstream.core.anomaly.texts import describe, duration


def live(run: Run, t: float, **values: Any) -> None:
    """An observation detected a minute after it was made (not historical)."""
    run.feed(wall=t + 60, observed_at=t, **values)


def messages(run: Run, kind: str) -> list[str]:
    return [a["message"] for a in run.alerts if a["kind"] == kind]


def test_a_temperature_jump_states_the_change_its_span_both_values_and_the_rule() -> None:
    run = Run()
    live(run, T0, temp_c=0.3)
    live(run, T0 + 600, temp_c=1.0)
    live(run, T0 + 3600, temp_c=12.4)  # 12.1 °C above the reading 60 min before
    (jump,) = messages(run, "temp_jump")
    assert (
        jump == "Testville: temperature rose 12.1 °C in 1 h (0.3 -> 12.4 °C); critical at a change of 12 °C within 1 h"
    )


def test_a_pressure_fall_is_measured_from_the_highest_reading_of_the_last_three_hours() -> None:
    run = Run()
    for i, hpa in enumerate([1010.0, 1012.0, 1011.0, 1008.0, 1003.5]):
        live(run, T0 + i * 2400, pressure_hpa=hpa)
    (fall,) = messages(run, "pressure_drop")
    assert fall == ("Testville: pressure fell 8.5 hPa in 2 h (1012.0 -> 1003.5 hPa); warning at a fall of 8 hPa "
                    "within 3 h")  # fmt: skip


def test_threshold_kinds_give_the_value_and_the_level_reached_and_the_end_where_it_is_now() -> None:
    run = Run()
    for i, temp in enumerate([46.0, 30.0, 30.0]):
        live(run, T0 + i * 600, temp_c=temp)
    assert messages(run, "heat") == [
        "Testville: extreme heat, temperature 46.0 °C; critical at 45 °C and above",
        "Testville: extreme heat is over (temperature 30.0 °C)",
    ]
    run = Run()
    live(run, T0, temp_c=-27.0)
    assert messages(run, "frost") == ["Testville: severe frost, temperature -27.0 °C; warning at -25 °C and below"]
    run = Run()
    live(run, T0, rain_1h_mm=12.0)
    assert messages(run, "heavy_rain") == [
        "Testville: heavy rain, 12.0 mm in the last hour; warning at 10 mm/h and above"
    ]


@pytest.mark.parametrize(
    ("kind", "signal", "severity", "text"),
    [
        ("temp_high", Signal("temp_high", WARNING, 31.0, 22.5, 4.3, "°C", 4.0), "warning",
         "Oslo: temperature 31.0 °C, 8.5 °C above its usual 22.5 °C for this hour of the day (4.3 times its "
         "usual spread; warning from 4 times)"),
        ("temp_low", Signal("temp_low", CRITICAL, -9.0, 3.0, -6.2, "°C", 6.0), "critical",
         "Oslo: temperature -9.0 °C, 12.0 °C below its usual 3.0 °C for this hour of the day (6.2 times its "
         "usual spread; critical from 6 times)"),
        ("stuck_sensor", Signal("stuck_sensor", WARNING, 6.0, 6.0, None, "observations", 6.0), "warning",
         "Oslo: the same readings 6 times in a row (temperature, pressure, humidity, wind); warning from 6 in a row"),
        ("silent_station", Signal("silent_station", WARNING, 11_400.0, 10_800.0, 3.17, "s", 3.0), "warning",
         "Oslo: no observation for 3 h 10 min, 3.2 times the usual interval of 1 h; warning after 3 times the usual "
         "interval"),
        ("storm", Signal("storm", NONE, 16.0, 20.8, None, "m/s", 17.2), "warning", None),
    ],
)  # fmt: skip
def test_each_kind_reads_as_a_sentence(kind: str, signal: Signal, severity: str, text: str | None) -> None:
    state = "resolved" if text is None else "open"
    expected = text if text is not None else "Oslo: storm-force wind is over (wind 16.0 m/s)"
    assert describe("Oslo", kind, state, signal, severity, T0) == expected


def test_a_historical_alert_says_so_and_when_it_was_observed() -> None:
    signal = Signal("heat", WARNING, 41.0, 40.0, None, "°C", 40.0)
    text = describe("Seville", "heat", "open", signal, "warning", 1_500_000_000.0, historical=True)
    historical = "Historical (observed 2017-07-14 02:40 UTC): "
    assert text == historical + "Seville: extreme heat, temperature 41.0 °C; warning at 40 °C and above"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(12.0, "12 s"), (59.4, "59 s"), (3000.0, "50 min"), (3600.0, "1 h"), (9600.0, "2 h 40 min"),
     (86_400.0 * 2 + 3 * 3600, "2 d 3 h"), (-5.0, "0 s")],
)  # fmt: skip
def test_durations_read_as_people_write_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_every_alert_of_a_real_run_has_a_number_and_no_score_jargon(tmp_path: Any) -> None:
    run = Run()
    for i, (temp, hpa) in enumerate([(10.0, 1015.0), (25.0, 1014.0), (46.0, 1000.0), (20.0, 1000.0)]):
        live(run, T0 + i * 1800, temp_c=temp, pressure_hpa=hpa)
    assert run.alerts
    for alert in run.alerts:
        assert "score" not in alert["message"] and any(ch.isdigit() for ch in alert["message"]), alert["message"]


def test_the_end_of_a_stuck_or_silent_station_reads_as_a_sentence() -> None:
    assert describe("Oslo", "stuck_sensor", "resolved", Signal("stuck_sensor", NONE, 1.0), "warning", T0) == (
        "Oslo: the readings change again"
    )
    assert describe("Oslo", "silent_station", "resolved", Signal("silent_station", NONE), "warning", T0) == (
        "Oslo: observations come in again"
    )
