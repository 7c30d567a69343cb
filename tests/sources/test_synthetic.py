import statistics
from collections import Counter

import orjson
import pytest

from weatherstream.core.normalize import InvalidPayload, normalize
from weatherstream.sources.synthetic import ANOMALY_KINDS, SyntheticConfig, generate, plan_anomalies

CFG = SyntheticConfig(cities=20, count=8000, step_s=600, seed=7, anomalies=35)


def test_same_seed_same_bytes_and_other_seed_other_bytes() -> None:
    small = SyntheticConfig(cities=5, count=200, seed=1, anomalies=0)
    assert [r.payload for r in generate(small)] == [r.payload for r in generate(small)]
    other = SyntheticConfig(cities=5, count=200, seed=2, anomalies=0)
    assert [r.payload for r in generate(small)] != [r.payload for r in generate(other)]


def test_exact_count_keys_and_event_times() -> None:
    records = list(generate(CFG))
    assert len(records) == CFG.count
    for r in records[:500]:
        doc = orjson.loads(r.payload)
        assert r.city_id == doc["id"] and r.event_time == doc["dt"] and r.source == "synthetic"
    assert len({r.city_id for r in records}) == CFG.cities


def test_only_the_labelled_impossible_values_fail_validation() -> None:
    labels = plan_anomalies(CFG)
    rejected = []
    for r in generate(CFG):
        try:
            normalize(r.payload, now=CFG.start + 10**8)
        except InvalidPayload as exc:
            rejected.append((r.city_id, r.event_time, exc.reason.value))
    expected = {(lb.city_id, lb.start) for lb in labels if lb.expected == "deadletter"}
    assert {(c, t) for c, t, _ in rejected} == expected
    assert {reason for *_, reason in rejected} == {"out_of_range"}


def test_every_kind_is_injected_and_labelled() -> None:
    labels = plan_anomalies(CFG)
    assert len(labels) == CFG.anomalies
    assert Counter(lb.kind for lb in labels).keys() == set(ANOMALY_KINDS)
    assert len({lb.incident_id for lb in labels}) == len(labels)


def test_injected_anomalies_are_visible_in_the_data() -> None:
    labels = plan_anomalies(CFG)
    by_city_time = {(r.city_id, r.event_time): orjson.loads(r.payload) for r in generate(CFG)}
    for lb in labels:
        inside = [by_city_time.get((lb.city_id, lb.start + i * CFG.step_s)) for i in range(3)]
        before = by_city_time[(lb.city_id, lb.start - 6 * 3600)]
        if lb.kind == "heat_spike":
            assert inside[1]["main"]["temp"] > before["main"]["temp"] + 5
        elif lb.kind == "silent_station":
            assert inside == [None, None, None]
        elif lb.kind == "stuck_sensor":
            assert inside[0]["main"] == inside[1]["main"] == inside[2]["main"]
        elif lb.kind == "wind_gust":
            assert inside[0]["wind"]["gust"] >= 32


def test_afternoons_are_warmer_than_nights() -> None:
    cfg = SyntheticConfig(cities=1, count=24 * 30, step_s=3600, seed=3)  # London, a month of hours
    temps: dict[str, list[float]] = {"night": [], "afternoon": []}
    for r in generate(cfg):
        hour = int((r.event_time or 0) % 86400 // 3600)
        doc = orjson.loads(r.payload)
        if hour in (2, 3, 4):
            temps["night"].append(doc["main"]["temp"])
        elif hour in (13, 14, 15):
            temps["afternoon"].append(doc["main"]["temp"])
    assert statistics.mean(temps["afternoon"]) > statistics.mean(temps["night"]) + 3


def test_too_many_anomalies_for_the_span_is_an_error() -> None:
    with pytest.raises(ValueError, match="fit"):
        plan_anomalies(SyntheticConfig(cities=50, count=1000, anomalies=100))


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="cities"):
        SyntheticConfig(cities=0)
    with pytest.raises(ValueError, match="cities"):
        SyntheticConfig(cities=200_001)


def test_beyond_the_built_in_list_come_distinct_stations_near_them() -> None:
    from weatherstream.sources.cities import BUILTIN_CITIES
    from weatherstream.sources.synthetic import synthetic_cities

    cities = synthetic_cities(200)
    assert len(cities) == 200 and len({c.city_id for c in cities}) == 200
    assert cities[: len(BUILTIN_CITIES)] == list(BUILTIN_CITIES)
    for i, station in enumerate(cities[len(BUILTIN_CITIES) :]):
        base = BUILTIN_CITIES[i % len(BUILTIN_CITIES)]
        assert station.tz == base.tz and abs(station.lat - base.lat) <= 0.5
        assert abs((station.lon - base.lon + 180) % 360 - 180) <= 0.5
    records = list(generate(SyntheticConfig(cities=200, count=400, seed=4)))
    assert len({r.city_id for r in records}) == 200
