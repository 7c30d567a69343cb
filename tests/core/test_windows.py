import datetime as dt

import pytest

from weatherstream.core.slices import Slice
from weatherstream.core.summary import Sample
from weatherstream.core.windows import Window, WindowSpec, human_duration, local_date, parse_wid

SPEC = WindowSpec()
UTC = dt.timezone.utc


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def by_kind(t: float, tz: int = 0) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    for w in SPEC.windows_for(t, tz):
        out.setdefault(w.kind, []).append((w.start, w.end))
    return out


def test_kinds_and_slice() -> None:
    assert SPEC.kinds == ("tumbling-1h", "day-local", "hopping-24h-1h")
    assert SPEC.slice_s == 3600
    assert WindowSpec(tumbling_s=(600,), hopping_size_s=3600, hopping_step_s=300).slice_s == 300
    assert WindowSpec(tumbling_s=(), hopping_size_s=0).slice_s == 3600  # local days only
    assert human_duration(5400) == "90m" and human_duration(604800) == "7d"


@pytest.mark.parametrize(
    ("t", "start"),
    [("2026-03-01T10:00:00+00:00", "2026-03-01T10:00:00+00:00"),  # a start belongs to its window
     ("2026-03-01T10:59:59.999+00:00", "2026-03-01T10:00:00+00:00"),
     ("2026-03-01T11:00:00+00:00", "2026-03-01T11:00:00+00:00")],  # an end does not
)  # fmt: skip
def test_tumbling_boundaries(t: str, start: str) -> None:
    ((s, e),) = by_kind(ts(t))["tumbling-1h"]
    assert (s, e) == (ts(start), ts(start) + 3600)


def test_local_day_is_aligned_to_local_midnight() -> None:
    # 23:30 local in New York (UTC-5) on 1 March is 04:30 UTC on 2 March: it belongs to 1 March.
    t = ts("2026-03-02T04:30:00+00:00")
    ((start, end),) = by_kind(t, tz=-5 * 3600)["day-local"]
    assert start == ts("2026-03-01T00:00:00-05:00") and end == ts("2026-03-02T00:00:00-05:00")
    ((start, _),) = by_kind(t, tz=0)["day-local"]
    assert start == ts("2026-03-02T00:00:00+00:00")


def test_half_and_quarter_hour_offsets() -> None:
    t = ts("2026-03-01T20:00:00+00:00")  # 01:30 on 2 March in India, 01:45 in Nepal
    ((start, _),) = by_kind(t, tz=19800)["day-local"]
    assert start == ts("2026-03-02T00:00:00+05:30")
    ((start, _),) = by_kind(t, tz=20700)["day-local"]
    assert start == ts("2026-03-02T00:00:00+05:45")


def _day_values(samples: list[tuple[float, int]], day: Window) -> dict[str, object]:
    """The aggregate of local day ``day`` over observations (time, UTC offset) put in their slices."""
    from weatherstream.core.aggregator import Aggregator, AggregatorConfig

    agg = Aggregator(AggregatorConfig())
    slices: dict[int, Slice] = {}
    for i, (t, tz) in enumerate(samples):
        start = SPEC.slice_start(t)
        slices.setdefault(start, Slice(start)).add(Sample(t, i, tz, temp_c=1.0), SPEC.day_of(t, tz))
    summaries = [p for start in SPEC.slice_range(day) if start in slices for p in slices[start].summaries(day.key)]
    return agg.window_values(day, summaries)


def test_daylight_saving_days_are_23_and_25_hours() -> None:
    # Berlin springs forward at 01:00 UTC on 29 March 2026 (CET +1 h -> CEST +2 h).
    change = ts("2026-03-29T01:00:00+00:00")
    times = range(int(ts("2026-03-28T23:00:00+00:00")), int(ts("2026-03-29T22:00:00+00:00")), 600)
    spring = [(float(t), 3600 if t < change else 7200) for t in times]
    values = _day_values(spring, SPEC.window("day-local", local_date(spring[10][0], 3600), 7200))
    assert values["window_start"] == ts("2026-03-29T00:00:00+01:00")
    assert values["window_end"] == ts("2026-03-30T00:00:00+02:00")
    assert values["window_end"] - values["window_start"] == 23 * 3600  # type: ignore[operator]
    assert values["count"] == 23 * 6  # every 10-minute observation of the local day, none of its neighbours
    # ... and falls back on 25 October 2026: a 25-hour day.
    t0, change = int(ts("2026-10-24T22:00:00+00:00")), ts("2026-10-25T01:00:00+00:00")
    autumn = [(float(t), 7200 if t < change else 3600) for t in range(t0, t0 + 27 * 3600, 600)]
    values = _day_values(autumn, SPEC.window("day-local", local_date(autumn[0][0], 7200), 3600))
    assert values["window_end"] - values["window_start"] == 25 * 3600 and values["count"] == 25 * 6  # type: ignore[operator]


def test_a_slice_keeps_the_observations_of_two_local_days_apart() -> None:
    # India is UTC+05:30: local midnight falls in the middle of the 18:00 UTC slice.
    t0 = ts("2026-03-01T18:00:00+00:00")
    samples = [(t0 + m * 600, 19800) for m in range(6)]
    day1 = SPEC.window("day-local", local_date(t0, 19800), 19800)
    day2 = SPEC.window("day-local", day1.key + 1, 19800)
    assert (_day_values(samples, day1)["count"], _day_values(samples, day2)["count"]) == (3, 3)


def test_hopping_windows_overlap_24_times() -> None:
    t = ts("2026-03-01T10:20:00+00:00")
    windows = by_kind(t)["hopping-24h-1h"]
    assert len(windows) == 24
    assert all(s <= t < e and e - s == 86400 and s % 3600 == 0 for s, e in windows)
    assert sorted(s for s, _ in windows)[0] == ts("2026-02-28T11:00:00+00:00")
    # an observation one hour later shares 23 of them
    later = by_kind(t + 3600)["hopping-24h-1h"]
    assert len(set(windows) & set(later)) == 23


def test_window_ids_round_trip() -> None:
    for w in SPEC.windows_for(ts("2026-03-01T10:20:00+00:00"), 3600):
        kind, key = parse_wid(w.wid)
        assert SPEC.window(kind, key, 3600) == w
    assert [w.wid for w in SPEC.windows_for(ts("2026-03-01T10:20:00+00:00"), 3600)][1] == "day-local:2026-03-01"


def test_tumbling_and_hopping_windows_are_unions_of_slices() -> None:
    for w in SPEC.windows_for(ts("2026-03-01T10:20:00+00:00"), 19800):
        if w.kind != "day-local":
            assert w.start % SPEC.slice_s == 0 and w.end % SPEC.slice_s == 0


def test_bad_specs_are_refused() -> None:
    with pytest.raises(ValueError):
        WindowSpec(hopping_size_s=5000, hopping_step_s=3600)
    with pytest.raises(ValueError):
        WindowSpec(tumbling_s=(0,))
