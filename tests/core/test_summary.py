import math
import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from weatherstream.core.exact import SCALE_BITS, bits_needed, rounded, sample_std, scaled, scaled_square
from weatherstream.core.summary import Sample, Summary, cadence_s, finish


def samples(n: int, seed: int = 1) -> list[Sample]:
    rng = random.Random(seed)
    return [
        Sample(
            t=1000.0 + 600 * i,
            offset=i,
            tz=0,
            temp_c=round(rng.uniform(-10, 30), 2),
            humidity_pct=round(rng.uniform(20, 100), 1),
            pressure_hpa=round(rng.uniform(990, 1030), 1),
            wind_speed_ms=round(rng.uniform(0, 15), 2),
            wind_gust_ms=round(rng.uniform(5, 25), 2) if i % 3 else None,
            feels_like_c=rng.uniform(-15, 30),
            rain_1h_mm=rng.choice([None, 0.5, 2.0, 0.13]),
            condition=rng.choice(["Rain", "Clouds", "Clear"]),
        )
        for i in range(n)
    ]


def summary_of(items: list[Sample]) -> Summary:
    s = Summary()
    for item in items:
        s.add(item)
    return s


@pytest.mark.parametrize("cut", [0, 1, 7, 19, 20])
def test_merging_summaries_equals_summarising_all_at_once(cut: int) -> None:
    data = samples(20)
    whole = summary_of(data)
    merged = Summary.merged([summary_of(data[cut:]), summary_of(data[:cut])])
    assert merged.count == whole.count == 20
    whole.offsets = []
    assert merged == whole  # exactly: the sums are integers


@given(st.permutations(list(range(24))), st.integers(1, 6))
def test_any_order_and_grouping_gives_the_same_values_bit_for_bit(order: list[int], groups: int) -> None:
    data = samples(24, seed=5)
    parts = [Summary() for _ in range(groups)]
    for k, i in enumerate(order):
        parts[k % groups].add(data[i])
    assert finish(Summary.merged(parts), 0, 86400, 600) == finish(summary_of(data), 0, 86400, 600)


def test_finish_matches_the_statistics_module_bit_for_bit() -> None:
    data = samples(144, seed=3)
    values = finish(summary_of(data), 1000.0, 1000.0 + 86400, default_cadence_s=600)
    temps = [d.temp_c for d in data if d.temp_c is not None]
    assert values["count"] == 144 and values["expected_count"] == 144 and values["coverage"] == 1.0
    assert values["temp_mean_c"] == statistics.fmean(temps)
    assert values["temp_std_c"] == statistics.stdev(temps)
    assert values["humidity_mean_pct"] == statistics.fmean(d.humidity_pct for d in data if d.humidity_pct)
    assert (values["temp_min_c"], values["temp_max_c"]) == (min(temps), max(temps))
    assert values["pressure_first_hpa"] == data[0].pressure_hpa and values["pressure_last_hpa"] == data[-1].pressure_hpa
    rain = [d.rain_1h_mm for d in data if d.rain_1h_mm is not None]
    assert values["rain_total_mm"] == math.fsum(rain) * 600 / 3600
    assert values["first_observed_at"] == 1000.0 and values["last_observed_at"] == 1000.0 + 143 * 600


def test_coverage_counts_gaps_at_the_median_cadence() -> None:
    s = summary_of([Sample(t, i, 0, temp_c=1.0) for i, t in enumerate([0.0, 600.0, 1200.0, 3000.0])])
    values = finish(s, 0.0, 3600.0, default_cadence_s=300)
    assert values["cadence_s"] == 600 and values["expected_count"] == 6 and values["coverage"] == pytest.approx(4 / 6)
    assert cadence_s([5.0], 300) == 300  # too few to tell
    assert cadence_s([0.0, 600.0, 1200.0, 3000.0, 3300.0], 1) == statistics.median([600, 600, 1800, 300])


def test_most_frequent_condition_ties_alphabetical() -> None:
    s = summary_of([Sample(float(i), i, condition=c) for i, c in enumerate(["Rain", "Clear", "Rain", "Clear"])])
    assert finish(s, 0, 3600, 600)["condition"] == "Clear"


def test_missing_values_stay_missing() -> None:
    values = finish(summary_of([Sample(0.0, 0, pressure_hpa=1000.0)]), 0, 3600, 600)
    assert values["temp_mean_c"] is None and values["temp_std_c"] is None and values["rain_total_mm"] is None
    assert values["gust_max_ms"] is None and values["temp_min_c"] is None
    assert values["pressure_mean_hpa"] == 1000.0


def test_values_finer_than_the_scale_stay_exact() -> None:
    """A value below about 0.0005 in size needs a finer scale than the sums' usual one: they move to it, exactly."""
    tiny = 1.3e-7
    assert bits_needed(tiny) > SCALE_BITS
    data = [Sample(0.0, 0, temp_c=12.34), Sample(600.0, 1, temp_c=tiny), Sample(1200.0, 2, temp_c=-3.5)]
    values = finish(summary_of(data), 0, 3600, 600)
    assert values["temp_mean_c"] == statistics.fmean([12.34, tiny, -3.5])
    assert values["temp_std_c"] == statistics.stdev([12.34, tiny, -3.5])
    coarse = summary_of([data[0]])
    fine = summary_of(data[1:])
    assert coarse.bits == SCALE_BITS and fine.bits > SCALE_BITS
    assert finish(Summary.merged([coarse, fine]), 0, 3600, 600) == values


def test_signed_zeros_do_not_depend_on_order() -> None:
    a = summary_of([Sample(0.0, 0, temp_c=0.0), Sample(600.0, 1, temp_c=-0.0)])
    b = summary_of([Sample(600.0, 1, temp_c=-0.0), Sample(0.0, 0, temp_c=0.0)])
    merged = Summary.merged([summary_of([Sample(600.0, 1, temp_c=-0.0)]), summary_of([Sample(0.0, 0, temp_c=0.0)])])
    for s in (a, b, merged):
        low, high = finish(s, 0, 3600, 600)["temp_min_c"], finish(s, 0, 3600, 600)["temp_max_c"]
        assert math.copysign(1, low) == -1 and math.copysign(1, high) == 1


def test_find_and_repeat_memory() -> None:
    s = summary_of([Sample(1200.0, 7), Sample(600.0, 3)])
    assert (s.find(600.0), s.find(1200.0), s.find(900.0)) == (3, 7, None)
    assert s.times == [600.0, 1200.0] and s.offsets == [3, 7]


@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False), min_size=2, max_size=60))
def test_exact_sums_round_like_fsum_and_stdev(values: list[float]) -> None:
    bits = max(SCALE_BITS, *(bits_needed(v) for v in values))
    total = sum(scaled(v, bits) for v in values)
    squares = sum(scaled_square(v, bits) for v in values)
    assert rounded(total, bits) == math.fsum(values)
    assert sample_std(len(values), total, squares, bits) == statistics.stdev(values)


@given(
    st.lists(st.tuples(st.sampled_from([0.0, -0.0, 1.5, -2.25, None]), st.sampled_from([0, 3600, -16200])),
             min_size=1, max_size=30),
    st.randoms(use_true_random=False),
    st.integers(1, 8),
)  # fmt: skip
def test_merged_equals_summarising_all_at_once_signed_zeros_included(
    values: list[tuple[float | None, int]], rng: random.Random, groups: int
) -> None:
    """However the observations are grouped and ordered, merging gives the summary of all of them, down to the
    sign of a zero minimum or maximum and the UTC offsets of the first and the last."""
    data = [Sample(600.0 * i, i, tz, temp_c=v, rain_1h_mm=v, wind_speed_ms=None if v is None else abs(v),
                   pressure_hpa=v, condition="Rain" if v else None) for i, (v, tz) in enumerate(values)]  # fmt: skip
    order = list(range(len(data)))
    rng.shuffle(order)
    parts = [Summary() for _ in range(groups)]
    for k, i in enumerate(order):
        parts[rng.randrange(groups) if k >= groups else k].add(data[i])
    rng.shuffle(parts)
    merged, whole = Summary.merged(parts), summary_of(data)
    whole.offsets = []

    def signs(xs: list[float]) -> list[float]:
        return [math.copysign(1.0, x) for x in xs]

    assert merged == whole
    assert signs(merged.lows) == signs(whole.lows) and signs(merged.highs) == signs(whole.highs)
    assert (merged.tz_first, merged.tz_last) == (whole.tz_first, whole.tz_last)
