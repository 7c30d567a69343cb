import math
import random
import statistics

import pytest

from weatherstream.core.aggregate import Moments, Partial, cadence_s, finish, make_row


def rows(n: int, seed: int = 1) -> list[list[object]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        values = dict(
            temp_c=rng.uniform(-10, 30),
            humidity_pct=rng.uniform(20, 100),
            pressure_hpa=rng.uniform(990, 1030),
            wind_speed_ms=rng.uniform(0, 15),
            wind_gust_ms=rng.uniform(5, 25) if i % 3 else None,
            feels_like_c=rng.uniform(-15, 30),
            rain_1h_mm=rng.choice([None, 0.5, 2.0]),
            condition=rng.choice(["Rain", "Clouds", "Clear"]),
        )
        out.append(make_row(1000.0 + 600 * i, i, 0, **values))
    return out


@pytest.mark.parametrize("cut", [0, 1, 7, 19, 20])
def test_merging_partials_equals_summarising_all_rows(cut: int) -> None:
    data = rows(20)
    whole = Partial.of(data)
    merged = Partial.of(data[:cut]).merge(Partial.of(data[cut:]))
    assert merged.count == whole.count == 20
    for name in ("temp", "humidity", "pressure", "wind", "feels"):
        a, b = getattr(whole, name), getattr(merged, name)
        assert (a.n, a.low, a.high) == (b.n, b.low, b.high)
        assert a.mean == pytest.approx(b.mean, rel=1e-12) and a.m2 == pytest.approx(b.m2, rel=1e-9)
    assert (merged.pressure_first, merged.pressure_last, merged.gust_max) == (
        whole.pressure_first, whole.pressure_last, whole.gust_max,
    )  # fmt: skip
    assert merged.conditions == whole.conditions and merged.times == whole.times


def test_moments_match_the_statistics_module() -> None:
    values = [random.Random(3).gauss(10, 4) for _ in range(500)]
    m = Moments()
    for v in values:
        m.add(v)
    assert m.mean == pytest.approx(statistics.fmean(values), rel=1e-12)
    assert m.std() == pytest.approx(statistics.stdev(values), rel=1e-9)
    assert Moments().std() is None and Moments(n=1, mean=3).std() is None


def test_moments_are_stable_with_a_large_offset() -> None:
    m = Moments()
    for v in (1e9 + 4, 1e9 + 7, 1e9 + 13, 1e9 + 16):
        m.add(v)
    assert m.std() == pytest.approx(statistics.stdev([4, 7, 13, 16]), rel=1e-9)


def test_finish_values() -> None:
    data = rows(6)
    values = finish(Partial.of(data), 1000.0, 1000.0 + 3600, default_cadence_s=600)
    temps = [r[3] for r in data]
    assert values["count"] == 6 and values["expected_count"] == 6 and values["coverage"] == 1.0
    assert values["temp_mean_c"] == pytest.approx(statistics.fmean(temps))
    assert values["temp_std_c"] == pytest.approx(statistics.stdev(temps))
    assert (values["temp_min_c"], values["temp_max_c"]) == (min(temps), max(temps))
    assert values["pressure_first_hpa"] == data[0][6] and values["pressure_last_hpa"] == data[-1][6]
    rain = sum(r[9] for r in data if r[9] is not None)
    assert values["rain_total_mm"] == pytest.approx(rain * 600 / 3600)
    assert values["first_observed_at"] == 1000.0 and values["last_observed_at"] == 1000.0 + 3000


def test_coverage_counts_gaps_at_the_median_cadence() -> None:
    data = [make_row(t, i, 0, temp_c=1.0) for i, t in enumerate([0.0, 600.0, 1200.0, 3000.0])]
    values = finish(Partial.of(data), 0.0, 3600.0, default_cadence_s=300)
    assert values["cadence_s"] == 600 and values["expected_count"] == 6 and values["coverage"] == pytest.approx(4 / 6)
    assert cadence_s([5.0], 300) == 300  # too few to tell


def test_most_frequent_condition_ties_alphabetical() -> None:
    data = [make_row(float(i), i, 0, condition=c) for i, c in enumerate(["Rain", "Clear", "Rain", "Clear"])]
    assert finish(Partial.of(data), 0, 3600, 600)["condition"] == "Clear"


def test_missing_values_stay_missing() -> None:
    values = finish(Partial.of([make_row(0.0, 0, 0, pressure_hpa=1000.0)]), 0, 3600, 600)
    assert values["temp_mean_c"] is None and values["temp_std_c"] is None and values["rain_total_mm"] is None
    assert not math.isnan(values["pressure_mean_hpa"])
