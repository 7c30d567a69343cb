"""Crash loop and lost local state: two workers over 8 partitions, one killed with SIGKILL at random moments
(and some of those times its RocksDB folder deleted too) while 20,000 events stream in; at the end every
distinct input is one raw row, the final aggregates equal the independent oracle and the alerts equal the
set the anomaly engine gives for the same observations, with no alert id reused for another alert.

`make test` runs the short form (3 kills); `make chaos` the full one (``WEATHERSTREAM_CHAOS_KILLS=20``).
The figures are printed at the end of each run and quoted in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from models import Alert, Observation
from tests.integration.conftest import read_topic
from tests.integration.test_sink_worker import count_rows, wait_for
from tests.integration.test_windows_worker import compare, send
from tests.oracle import Obs, expected_aggregates
from weatherstream.core.anomaly import engine as anomaly
from weatherstream.core.normalize import InvalidPayload, normalize
from weatherstream.db import connect_settings
from weatherstream.settings import Settings
from weatherstream.sources.synthetic import SyntheticConfig, generate
from weatherstream.topics import create_namespace_topics

EVENTS = int(os.environ.get("WEATHERSTREAM_CHAOS_EVENTS", "20000"))
KILLS = int(os.environ.get("WEATHERSTREAM_CHAOS_KILLS", "3"))
CITIES = 50
SESSION_TIMEOUT_S = 10  # a killed worker's partitions move to the other one after this long
WORKER_ENV = {
    "WEATHERSTREAM_IDLE_TIMEOUT_S": "1000000000",  # windows close on event time only: the oracle's rule
    "WEATHERSTREAM_BROKER_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S),
}
ALERT_FIELDS = ("kind", "severity", "state", "observed_at", "incident_start", "city_id")


def workload(events: int, seed: int) -> list[tuple[bytes, bytes]]:
    """(key, payload) of ``events`` synthetic observations of 50 cities ending now, with injected anomalies
    (some of them impossible values: dead letters)."""
    steps = events // CITIES + 1
    start = float(int(time.time()) // 600 * 600 - steps * 600)
    cfg = SyntheticConfig(cities=CITIES, count=events, seed=seed, start=start, anomalies=max(1, events // 1000))
    return [(str(r.city_id).encode(), r.payload) for r in generate(cfg)]


def accepted(pairs: list[tuple[bytes, bytes]]) -> list[Observation]:
    """The observations validation accepts, in arrival order (the rest become dead letters)."""
    out = []
    for _, payload in pairs:
        try:
            out.append(normalize(payload, now=time.time(), source="synthetic"))
        except InvalidPayload:
            continue
    return out


def oracle_input(observations: list[Observation]) -> list[Obs]:
    return [Obs(o.city_id, o.observed_at, o.timezone_offset_s or 0, o.temp_c, o.humidity_pct, o.pressure_hpa,
                o.wind_speed_ms, o.wind_gust_ms, o.condition_main) for o in observations]  # fmt: skip


def expected_alerts(settings: Settings, observations: list[Observation]) -> dict[tuple[str, int], tuple[Any, ...]]:
    """What the anomaly engine says about each city's observations in order, run directly, with no Kafka,
    no worker and no crash: (alert id, seq) -> the compared fields."""
    from agents.pipeline import engine_config

    engine = anomaly.AnomalyEngine(engine_config(settings))
    states: dict[int, Any] = {}
    out: dict[tuple[str, int], tuple[Any, ...]] = {}
    for offset, obs in enumerate(observations):
        outcome = engine.apply(states.get(obs.city_id), obs, offset, wall_now=time.time())
        states[obs.city_id] = anomaly.confirm(outcome.state, {anomaly.outbox_id(a) for a in outcome.alerts})
        for a in outcome.alerts:
            out[(a["alert_id"], a["seq"])] = tuple(a[f] for f in ALERT_FIELDS)
    return out


def alert_fields(alert: Alert) -> tuple[Any, ...]:
    return tuple(getattr(alert, f) for f in ALERT_FIELDS)


class Sender(threading.Thread):
    """Sends the workload at a steady rate in the background (a live source), in 50 ms slices, until it is all
    sent or :meth:`stop` is called."""

    def __init__(self, settings: Settings, pairs: list[tuple[bytes, bytes]], rate: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.pairs, self.rate = settings, pairs, rate
        self.sent = 0
        self.error: BaseException | None = None
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)

    def run(self) -> None:
        try:
            asyncio.run(self._send())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    async def _send(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.bootstrap_servers, acks="all",
                                    enable_idempotence=True, linger_ms=5)  # fmt: skip
        await producer.start()
        try:
            started = time.monotonic()
            while self.sent < len(self.pairs) and not self.stopping.is_set():
                due = min(len(self.pairs), int((time.monotonic() - started) * self.rate) + 1)
                for key, value in self.pairs[self.sent : due]:
                    await producer.send(self.settings.topic_raw, value, key=key, headers=[("source", b"synthetic")])
                self.sent = due
                await producer.flush()
                await asyncio.sleep(0.05)
        finally:
            await producer.stop()


def missing_alert_rows(settings: Settings, records: list[Any]) -> str:
    """Which alert messages have no row in ``alerts_by_city``, with their partitions and offsets."""
    cluster, session = connect_settings(settings)
    try:
        stored = {(r.alert_id, r.seq) for r in session.execute(
            f"SELECT alert_id, seq FROM {settings.keyspace}.alerts_by_city", timeout=60)}  # fmt: skip
    finally:
        cluster.shutdown()
    missing = []
    for r in records:
        alert = Alert.loads(r.value)
        if (alert.alert_id, alert.seq) not in stored:
            missing.append(f"{alert.alert_id} seq {alert.seq} (partition {r.partition} offset {r.offset})")
    return "alert messages without a row: " + ", ".join(missing)


def check_outcome(settings: Settings, pairs: list[tuple[bytes, bytes]],
                  count_raw: Callable[[], int] | None = None) -> dict[str, int]:  # fmt: skip
    """Raw rows, aggregates and alerts against what the input must give; returns the figures. ``count_raw``
    counts the raw rows (default: one COUNT over the table, which times out at hundreds of thousands)."""
    observations = accepted(pairs)
    distinct = len({(o.city_id, o.observed_at) for o in observations})
    count = count_raw or (lambda: count_rows(settings, "observations_by_city_day"))
    rows = wait_for("raw rows", count, distinct, timeout_s=600)
    assert rows == distinct, f"{rows} raw rows for {distinct} distinct inputs"
    invalid = len(pairs) - len(observations)

    def origin(r: Any) -> tuple[bytes, bytes]:
        return dict(r.headers)["ws-partition"], dict(r.headers)["ws-offset"]

    letters = read_topic(settings, settings.topic_deadletter, expect=invalid, settle_s=3, distinct=origin)
    origins = {origin(r) for r in letters}
    # exactly the invalid inputs (a valid observation lost as "too late" after a crash would show up here)
    assert len(origins) == invalid, sorted(dict(r.headers)["ws-reason"] for r in letters)

    aggregates = compare(settings, expected_aggregates(oracle_input(observations), settings.allowed_lateness_s))

    want = expected_alerts(settings, observations)
    # The workload ends now, so what it raises depends on the time of day: 19-22 alerts for the 6,000-event
    # one (48 half-hour steps through a day), 63-69 for 20,000 events (12 random times and seeds).
    assert len(want) >= 15, "the workload should raise alerts"
    records = read_topic(settings, settings.topic_alerts, expect=len(want), timeout_s=300, settle_s=4,
                         distinct=lambda r: (Alert.loads(r.value).alert_id, Alert.loads(r.value).seq))  # fmt: skip
    got: dict[tuple[str, int], tuple[Any, ...]] = {}
    for r in records:
        alert = Alert.loads(r.value)
        key = (alert.alert_id, alert.seq)
        assert got.setdefault(key, alert_fields(alert)) == alert_fields(alert), f"two different alerts share id {key}"
    assert set(got) - set(want) == set(), "alerts the engine does not give for this input (a re-opened incident?)"
    assert set(want) - set(got) == set(), "alerts missing"
    assert got == want
    try:
        stored = wait_for("alert rows", lambda: count_rows(settings, "alerts_by_city"), len(want), timeout_s=300)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {missing_alert_rows(settings, records)}") from None
    assert stored == len(want), missing_alert_rows(settings, records)
    opens = Counter(a for a, _ in got)
    return {
        "events": len(pairs),
        "raw_rows": rows,
        "distinct_inputs": distinct,
        "rows_lost": distinct - rows,
        "dead_letters": len(origins),
        "aggregate_messages": len(aggregates),
        "aggregates": len({(a.city_id, a.window_id, a.revision) for _, a in aggregates}),
        "alerts": len(want),
        "incidents": len(opens),
        "alert_messages": len(records),
        "alert_repeats": len(records) - len(got),
    }


@pytest.mark.timeout(3000)
def test_crash_loop_loses_nothing(settings: Settings, start_worker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert settings.partitions >= 8
    seed = int(os.environ.get("WEATHERSTREAM_CHAOS_SEED", str(random.randrange(1_000_000))))
    rng = random.Random(seed)
    print(f"\ncrash loop: {EVENTS} events, {KILLS} kills, seed {seed} (WEATHERSTREAM_CHAOS_SEED repeats its choices)",
          flush=True)  # fmt: skip
    pairs = workload(EVENTS, seed=seed % 1000)
    asyncio.run(create_namespace_topics(settings))
    workers = {name: start_worker(name=name, **WORKER_ENV) for name in ("a", "b")}
    # Spread the stream over the kills: each kill cycle (random wait, restart, take-over) takes ~25 s.
    sender = Sender(settings, pairs, rate=min(2000.0, EVENTS / (KILLS * 25.0)))
    sender.start()
    started = time.monotonic()
    wiped = 0
    for kill in range(1, KILLS + 1):
        time.sleep(rng.uniform(1.0, 12.0))
        name = rng.choice(sorted(workers))
        victim = workers[name]
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait()
        wipe = kill % 3 == 2  # every third kill also loses the worker's RocksDB folder
        if wipe:
            shutil.rmtree(tmp_path / f"{name}-data")
            wiped += 1
        print(f"kill {kill}/{KILLS}: worker {name} at {time.monotonic() - started:.0f} s, "
              f"{sender.sent} events sent{', RocksDB folder deleted' if wipe else ''}", flush=True)  # fmt: skip
        workers[name] = start_worker(name=f"{name}{kill}", data=name, **WORKER_ENV)
    sender.join(timeout=1200)
    assert sender.error is None, sender.error
    figures = check_outcome(settings, pairs)
    for worker in workers.values():
        worker.assert_healthy()
    figures.update(kills=KILLS, rocksdb_folders_deleted=wiped, partitions=settings.partitions, seed=seed,
                   seconds=round(time.monotonic() - started))  # fmt: skip
    print("\nCHAOS " + orjson.dumps(figures).decode(), flush=True)


def test_deleted_rocksdb_folder_is_rebuilt_from_the_changelog(settings: Settings, start_worker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pairs = workload(6000, seed=3)
    half = len(pairs) // 2
    asyncio.run(create_namespace_topics(settings))
    first = start_worker(name="w", **WORKER_ENV)
    send(settings, pairs[:half])
    wait_for("raw rows", lambda: count_rows(settings, "observations_by_city_day"), len(accepted(pairs[:half])))
    first.stop()
    shutil.rmtree(tmp_path / "w-data")  # the worker's disk is lost; only Kafka's changelog topics remain
    restarted = start_worker(name="w2", data="w", **WORKER_ENV)
    send(settings, pairs[half:])
    figures = check_outcome(settings, pairs)
    restarted.assert_healthy()
    print("\nLOST STATE " + orjson.dumps(figures).decode(), flush=True)


def test_pipeline_agent_crashes_lose_nothing(settings: Settings, start_worker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """faust restarts a crashed agent on the same stream: the restarted pipeline takes the stream over and fetches
    what the crashed run held again (a failed changelog send after a broker kill once stalled it for good).
    Two workers; each fails its pipeline agent's batches four times, in pairs three batches apart
    (tests/integration/faults): crashes before a batch is handled, and Kafka errors from its changelog send."""
    pairs = workload(6000, seed=11)
    asyncio.run(create_namespace_topics(settings))
    faults = {"PYTHONPATH": str(Path(__file__).parent / "faults"), "WEATHERSTREAM_TEST_CRASH_EVERY": "100",
              "WEATHERSTREAM_TEST_CRASHES": "4"}  # fmt: skip
    workers = [start_worker(name=name, **WORKER_ENV, **faults) for name in ("a", "b")]
    started = time.monotonic()
    sender = Sender(settings, pairs, rate=300.0)
    sender.start()
    sender.join(timeout=600)
    assert not sender.is_alive() and sender.error is None, sender.error
    figures = check_outcome(settings, pairs)
    restarts = 0
    for worker in workers:
        log = worker.log()
        assert worker.alive(), log[-3000:]
        crashes = set(re.findall(r"injected crash \d+/\d+", log))
        started_again = log.count("the agent started again on its stream")
        assert len(crashes) >= 2 and started_again == len(crashes), log[-3000:]
        assert "did not reach the brokers (InjectedSendFailure" in log, "the send failure is handled in place"
        restarts += started_again
    figures.update(agent_restarts=restarts, seconds=round(time.monotonic() - started))
    print("\nAGENT CRASHES " + orjson.dumps(figures).decode(), flush=True)
