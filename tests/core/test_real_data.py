"""Held-out real data: a station's real hourly year through the window state machine, against the oracle.

pvlib ships NSRDB typical-meteorological-year files (real hourly observations). Every aggregate the state
machine gives for them, arriving out of order and in batches of any size, equals the independent oracle's
(``tests/oracle.py``, computed from the rows with ``statistics``) bit for bit.
"""

from __future__ import annotations

import math
import random

import pytest

from tests.oracle import COMPARED, Obs, expected_aggregates
from weatherstream.core.aggregator import Aggregator, AggregatorConfig
from weatherstream.core.normalize import InvalidPayload, normalize
from weatherstream.core.summary import Sample
from weatherstream.sources.replay import open_replay, pvlib_dataset, read_tmy3

DAYS = 40  # of each file (the oracle is quadratic in windows)


def _observations(name: str, city_id: int) -> list[Obs]:
    handle = open_replay(pvlib_dataset(name), text=True)
    out = []
    try:
        for record in read_tmy3(handle, city_id=city_id):
            try:
                obs = normalize(record.payload, now=4e9, source="replay")
            except InvalidPayload:
                continue  # e.g. the file's -9900 fill values
            if None in (obs.temp_c, obs.humidity_pct, obs.pressure_hpa, obs.wind_speed_ms):
                continue
            tz = obs.timezone_offset_s or 0
            out.append(Obs(city_id, obs.observed_at, tz, obs.temp_c, obs.humidity_pct, obs.pressure_hpa,
                           obs.wind_speed_ms, obs.wind_gust_ms, obs.condition_main or ""))  # fmt: skip
    finally:
        handle.close()
    out.sort(key=lambda o: o.t)
    return [o for o in out if o.t < out[0].t + DAYS * 86400]


@pytest.mark.parametrize("batch", [1, 7, 200])
def test_a_real_year_equals_the_oracle_bit_for_bit(batch: int) -> None:
    rng = random.Random(batch)
    queues: list[list[Obs]] = []
    for name, city in (("723170TYA.CSV", 4469146), ("703165TY.csv", 5871146)):
        seq = _observations(name, city)
        for i in range(3, len(seq) - 8, 29):  # some arrive hours late: corrections of final windows
            seq.insert(i + rng.randint(2, 8), seq.pop(i))
        newest = seq[0].t  # (where the file has gaps, "late" can be beyond the correction horizon: left out)
        kept = [o for o in seq if o.t >= (newest := max(newest, o.t)) - 600 - 48 * 3600]
        queues.append(kept[::-1])
    arrivals: list[Obs] = []
    while any(queues):  # the cities interleave at random; each keeps its own order
        arrivals.append(rng.choice([q for q in queues if q]).pop())
    expected = expected_aggregates(arrivals)
    assert {k[2] for k in expected} >= {1, 2}

    agg = Aggregator(AggregatorConfig())
    states: dict[int, object] = {}
    cold: dict[tuple[int, int], object] = {}
    got: dict[tuple[int, str, int], dict[str, object]] = {}
    for i in range(0, len(arrivals), batch):
        by_city: dict[int, list[tuple[int, Obs]]] = {}
        for k, o in enumerate(arrivals[i : i + batch], start=i):
            by_city.setdefault(o.city_id, []).append((k, o))
        for city, items in by_city.items():
            windows = agg.begin(city, states.get(city), lambda s, c=city: cold.get((c, s)))  # type: ignore[arg-type, misc]
            for k, o in items:
                windows.apply(Sample(o.t, k, o.tz, temp_c=o.temp_c, humidity_pct=o.humidity_pct,
                                     pressure_hpa=o.pressure_hpa, wind_speed_ms=o.wind_ms, wind_gust_ms=o.gust_ms,
                                     condition=o.condition or None), wall_now=0.0)  # fmt: skip
            changes = windows.end(durable=True)
            for start, s in changes.cold_writes.items():
                cold[(city, start)] = s
            for start in changes.deletes:
                cold.pop((city, start), None)
            states[city] = changes.state
            for e in windows.emissions:
                got[(city, e["window_id"], e["revision"])] = e
    assert set(got) == set(expected)
    for key, want in expected.items():
        for field in COMPARED:
            have = got[key][field]
            assert have == want[field] and (not isinstance(have, float) or math.copysign(1, have) ==
                                            math.copysign(1, want[field])), (key, field)  # fmt: skip
