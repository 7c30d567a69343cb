"""Windowed aggregates through the real broker and real worker processes, against an independent oracle."""

from __future__ import annotations

import asyncio
import math
import os
import random
import signal
import statistics
import time
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from models import Aggregate
from tests.integration.conftest import read_topic
from tests.oracle import COMPARED, Obs, expected_aggregates
from weatherstream import kafka_clients
from weatherstream.settings import Settings
from weatherstream.topics import create_namespace_topics

START = 1_774_569_600  # 2026-03-27T00:00:00Z; Berlin switches to summer time on 29 March at 01:00Z
STEP = 600
STEPS = 78 * 6  # 78 hours
BERLIN_DST = 1_774_746_000  # 2026-03-29T01:00:00Z
CITIES = {2950159: None, 1850147: 32400, 5128581: -14400, 1275339: 19800}  # None: Berlin, CET -> CEST
NO_IDLE = {"WEATHERSTREAM_IDLE_TIMEOUT_S": "1000000000"}


def _tz(city: int, t: float) -> int:
    fixed = CITIES[city]
    if fixed is not None:
        return fixed
    return 3600 if t < BERLIN_DST else 7200


def make_input() -> tuple[list[Obs], list[tuple[bytes, bytes]]]:
    """A multi-city sequence with out-of-order, late, too-late and duplicate observations.

    Returns the observations the aggregator will see, in arrival order, and the raw messages to send.
    """
    rng = random.Random(11)
    conditions = ["Clear", "Clouds", "Rain"]
    per_city: dict[int, list[Obs]] = {}
    for city in CITIES:
        seq = []
        for i in range(STEPS):
            t = START + i * STEP
            temp = round(10 + 8 * math.sin(i / 14) + rng.gauss(0, 1), 2)
            humidity, pressure = round(rng.uniform(40, 95), 1), round(1010 + 6 * math.sin(i / 40), 1)
            wind, gust = round(rng.uniform(0, 12), 2), round(rng.uniform(12, 25), 2)
            seq.append(Obs(city, t, _tz(city, t), temp, humidity, pressure, wind, gust, rng.choice(conditions)))
        order = list(range(STEPS))
        for i in range(5, STEPS - 1, 23):  # out of order within the allowed lateness
            order[i], order[i + 1] = order[i + 1], order[i]
        for i in range(30, STEPS - 40, 50):  # three hours late: corrections
            j = order.index(i)
            order.insert(j + 18, order.pop(j))
        per_city[city] = [seq[i] for i in order]
    arrivals: list[Obs] = []
    for i in range(STEPS):
        for city in CITIES:
            arrivals.append(per_city[city][i])
    raw = [(str(o.city_id).encode(), _payload(o)) for o in arrivals]
    first_berlin = raw[0]
    raw.insert(600, first_berlin)  # a repeat of an observation that arrived long before: dropped by ingestion
    raw.append((b"1850147", _payload(Obs(1850147, START + (STEPS - 1) * STEP - 60 * 3600 + 7, 32400, 1, 50, 1000,
                                         1, 2, "Clear"))))  # fmt: skip  # too late: dead letter
    return arrivals, raw


def _payload(o: Obs) -> bytes:
    return orjson.dumps({
        "id": o.city_id, "dt": o.t, "timezone": o.tz, "name": f"city {o.city_id}",
        "main": {"temp": o.temp_c, "humidity": o.humidity_pct, "pressure": o.pressure_hpa},
        "wind": {"speed": o.wind_ms, "gust": o.gust_ms}, "weather": [{"id": 800, "main": o.condition}],
    })  # fmt: skip


def send(settings: Settings, raw: list[tuple[bytes, bytes]], rate: float | None = None) -> None:
    """Send the raw messages, as fast as possible or at ``rate`` per second."""

    async def go() -> None:
        await create_namespace_topics(settings)
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", enable_idempotence=True,
                                    linger_ms=5)  # fmt: skip
        await producer.start()
        try:
            started = time.monotonic()
            for i, (key, value) in enumerate(raw):
                if rate is not None:
                    await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
                    await producer.send(settings.topic_raw, value, key=key, headers=[("source", b"test")])
                    await producer.flush()  # a live source: each observation leaves at once
                else:
                    await producer.send(settings.topic_raw, value, key=key, headers=[("source", b"test")])
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(go())


def compare(settings: Settings, expected: dict[tuple[int, str, int], dict[str, Any]]) -> list[tuple[float, Aggregate]]:
    """Check the aggregates topic against the oracle; returns (Kafka timestamp in s, aggregate) pairs."""

    def key(r: Any) -> tuple[int, str, int]:
        agg = Aggregate.loads(r.value)
        return agg.city_id, agg.window_id, agg.revision

    records = read_topic(settings, settings.topic_aggregates, expect=len(expected), timeout_s=300, settle_s=4,
                         distinct=key)  # fmt: skip
    got: dict[tuple[int, str, int], Aggregate] = {}
    for r in records:
        agg = Aggregate.loads(r.value)
        key = (agg.city_id, agg.window_id, agg.revision)
        if key in got:  # a repeat after a crash must be the same aggregate
            assert {f: getattr(got[key], f) for f in COMPARED} == {f: getattr(agg, f) for f in COMPARED}
        got[key] = agg
    assert set(got) - set(expected) == set(), "aggregates the oracle does not expect"
    assert set(expected) - set(got) == set(), "aggregates missing"
    for key, values in expected.items():
        for field in COMPARED:
            want, have = values[field], getattr(got[key], field)
            if isinstance(want, float):
                assert have == pytest.approx(want, rel=1e-9, abs=1e-9), (key, field)
            else:
                assert have == want, (key, field)
    return [(r.timestamp / 1000.0, Aggregate.loads(r.value)) for r in records]


def _count_aggregates(settings: Settings) -> int:
    from weatherstream.topics import namespace_topic_counts

    return asyncio.run(namespace_topic_counts(settings))[settings.topic_aggregates]["messages"]


def _wait_for_aggregates(settings: Settings, at_least: int, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while _count_aggregates(settings) < at_least:
        assert time.monotonic() < deadline, "the worker produced too few aggregates in time"
        time.sleep(0.2)


def test_final_and_corrected_aggregates_equal_the_oracle(settings: Settings, start_worker) -> None:  # type: ignore[no-untyped-def]
    arrivals, raw = make_input()
    expected = expected_aggregates(arrivals)
    revisions = {k[2] for k in expected}
    assert revisions >= {1, 2} and any(v["late"] for v in expected.values())  # the input really has late data
    # repeats become dead letters too when asked (by default they are only counted)
    worker = start_worker(**NO_IDLE, WEATHERSTREAM_DEAD_LETTER_REPEATS="true")
    send(settings, raw, rate=200)  # a steady live rate, so the delays below are not backlog
    aggregates = compare(settings, expected)
    worker.assert_healthy()
    letters = read_topic(settings, settings.topic_deadletter, expect=2, settle_s=1)
    assert sorted(dict(r.headers)["ws-reason"] for r in letters) == [b"duplicate", b"too_late"]
    assert worker.metric("weatherstream_repeats_total", reason="too_late") == 1
    # From the observation that moved the watermark past a window's end appearing in Kafka to the
    # window's final aggregate appearing in Kafka (reported, not asserted: timing is for benchmarks).
    delays = [ts - a.watermark_passed_at for ts, a in aggregates if a.watermark_passed_at and not a.late]
    assert len(delays) > 500
    print(f"\nwatermark passed -> final aggregate on the topic: median {statistics.median(delays) * 1000:.1f} ms, "
          f"max {max(delays) * 1000:.1f} ms over {len(delays)} aggregates")  # fmt: skip


def _committed_input(settings: Settings) -> dict[int, int]:
    """The pipeline group's committed offsets on the raw topic, by partition (those it committed)."""

    async def read() -> dict[int, int]:
        admin = kafka_clients.admin(settings)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(settings.app_id)
        finally:
            await admin.close()
        return {tp.partition: o.offset for tp, o in offsets.items() if tp.topic == settings.topic_raw and o.offset > 0}

    return asyncio.run(read())


def _sought_to_first_record(log: str) -> str:
    """The partitions a worker's consumer sought to their first record for want of a committed offset."""
    lines = [line for line in log.splitlines() if "without a committed offset start from their first record" in line]
    return "\n".join(lines)


@pytest.mark.parametrize("commit_interval_s", ["0.2", "3600"], ids=["committed", "before-the-first-commit"])
def test_kill_9_in_the_middle_still_equals_the_oracle(settings: Settings, start_worker, commit_interval_s: str) -> None:  # type: ignore[no-untyped-def]
    """Killed after it committed part of the input, the restarted worker goes on from there; killed before its
    first commit, it starts from each partition's first record and so also fetches again what it dropped during
    its own recovery (aiokafka seeks back only partitions with a commit)."""
    arrivals, raw = make_input()
    expected = expected_aggregates(arrivals)
    worker = start_worker(name="w", **NO_IDLE, WEATHERSTREAM_BROKER_COMMIT_INTERVAL_S=commit_interval_s)
    send(settings, raw)
    _wait_for_aggregates(settings, len(expected) // 3)
    if commit_interval_s == "0.2":
        time.sleep(0.5)  # at least two commits
    os.killpg(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait()
    committed = _committed_input(settings)
    assert bool(committed) == (commit_interval_s == "0.2"), committed
    restarted = start_worker(name="w", data="w", **NO_IDLE)  # same RocksDB folder, as after a real crash
    compare(settings, expected)
    restarted.assert_healthy()
    sought = _sought_to_first_record(restarted.log())
    for p in range(settings.partitions):
        assert (f"{settings.topic_raw}[{p}]" in sought) == (p not in committed), (p, sought)


def test_second_worker_takes_over_when_one_stops(settings: Settings, start_worker) -> None:  # type: ignore[no-untyped-def]
    arrivals, raw = make_input()
    expected = expected_aggregates(arrivals)
    first = start_worker(name="a", **NO_IDLE)
    second = start_worker(name="b", **NO_IDLE)
    send(settings, raw)
    _wait_for_aggregates(settings, len(expected) // 3)
    second.stop()
    compare(settings, expected)
    first.assert_healthy()
