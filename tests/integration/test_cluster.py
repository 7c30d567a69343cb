"""Failover on a real cluster: three Kafka brokers (KRaft, each also a controller) and three Cassandra nodes on
loopback (``weatherstream stack up --kafka-brokers 3 --cassandra-nodes 3``, in a folder and on ports of its
own), topics with replication 3 and ``min.insync.replicas`` 2, the keyspace with replication 3 and
``LOCAL_QUORUM``.

Each scenario streams a workload with known answers through two workers while something fails, then checks
what the chaos tests check: every distinct input is one raw row, nothing else is a dead letter, every final
aggregate equals the oracle, every alert the anomaly engine gives is there once under its id. It prints its
figures (``CLUSTER {...}``), among them how long the pipeline's lag took to come back to where it was before
the failure and to zero at the end.

`make cluster-test` runs them, each outage ``WEATHERSTREAM_CLUSTER_DOWN_S`` (60 there) long: the broker that
coordinates the pipeline's consumer group killed together with a Cassandra node stopped, then each failure in
a run of its own (the coordinator broker killed, the active KRaft controller killed, a Cassandra node stopped,
a worker killed and another added). `make test` runs the first scenario (20 s outages) and the migration test.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from tests.integration.test_chaos import Sender, accepted, check_outcome, workload
from weatherstream import kafka_clients
from weatherstream.settings import Settings, load_settings
from weatherstream.stack import LocalStack
from weatherstream.topics import create_namespace_topics, delete_namespace_topics

#: The cluster's ports: the main stack's plus 20,000 (the secure stack has plus 10,000), brokers 2 and 3
#: another 100 and 200 on top (Kafka and JMX).
CLUSTER_PORTS = {
    "stack_kafka_port": 29092,
    "stack_kafka_controller_port": 29093,
    "cassandra_port": 29042,
    "stack_cassandra_storage_port": 27000,
    "stack_cassandra_jmx_port": 27199,
}
DOWN_S = float(os.environ.get("WEATHERSTREAM_CLUSTER_DOWN_S", "20"))
EVENTS = int(os.environ.get("WEATHERSTREAM_CLUSTER_EVENTS", "6000"))
SESSION_TIMEOUT_S = 10
WORKER_ENV = {
    "WEATHERSTREAM_IDLE_TIMEOUT_S": "1000000000",  # windows close on event time only: the oracle's rule
    "WEATHERSTREAM_BROKER_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S),
}


#: No test here drops its keyspace (the cluster's data goes with it at the module's end). A keyspace dropped while
#: a restarted node still received the hints it missed left that node on a schema of its own for good: the hints
#: for the dropped tables reached its commit log, and its next schema change that dropped a table failed on them
#: ("Unknown CF" in ``CommitLog.forceRecycleAllSegments``, Cassandra 5.0.6). Its connections then timed out and
#: the module's later tests failed (docs/scaling.md).
KEEP_KEYSPACES = True

#: cassandra-driver logs a traceback for each connection it loses or cannot open to a stopped node (the
#: control connection, a host's pool, a schema refresh under way), then handles it itself.
DRIVER_RECOVERS = ("cassandra",)


def cluster_settings(**overrides: Any) -> Settings:
    """Settings that reach the test cluster: its folder and ports, and what `weatherstream stack env` gives."""
    base: dict[str, Any] = {
        "stack_dir": load_settings().stack_dir.resolve() / "cluster-test-stack",
        "stack_kafka_brokers": 3,
        "stack_cassandra_nodes": 3,
        **CLUSTER_PORTS,
    }
    env = LocalStack(load_settings(**base)).client_settings()
    clients = {k.removeprefix("WEATHERSTREAM_").lower(): v for k, v in env.items()}
    return load_settings(**{**base, **clients, **overrides})


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalStack]:
    """The three-broker, three-node cluster, started for this module and stopped (data deleted, the servers'
    logs kept) after it, so that the rest of the suite does not share the machine with six more JVMs."""
    stack = LocalStack(cluster_settings())
    started = time.monotonic()
    statuses = stack.up(timeout_s=600)
    memory = sum(s.rss_bytes or 0 for s in statuses)
    print(f"\ncluster up in {time.monotonic() - started:.0f} s, {memory / 2**30:.1f} GiB resident", flush=True)
    yield stack
    stack.down(wipe=True)  # the data; the servers' logs stay (appended to by each run)
    print(f"\nthe cluster's server logs: {stack.stack_dir / 'logs'}", flush=True)


@pytest.fixture
def settings(cluster: LocalStack, run_id: str) -> Iterator[Settings]:
    """This test's namespace and keyspace on the cluster (topics deleted afterwards)."""
    s = cluster_settings(namespace=f"c{run_id}", keyspace=f"c{run_id}")
    yield s
    if not os.environ.get("WEATHERSTREAM_TEST_KEEP_TOPICS"):
        asyncio.run(delete_namespace_topics(s))


class LagWatch(threading.Thread):
    """Samples, once a second, how many raw records the pipeline's consumer group has not committed yet
    (None while the brokers cannot say)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.samples: list[tuple[float, int | None]] = []
        self.by_partition: list[tuple[float, dict[int, tuple[int, int]]]] = []  # (committed, end) per partition
        self.stopping = threading.Event()

    def run(self) -> None:
        asyncio.run(self._watch())

    async def _watch(self) -> None:
        admin = kafka_clients.admin(self.settings, request_timeout_ms=5000)
        await kafka_clients.start(admin, self.settings)
        consumer = kafka_clients.consumer(self.settings, group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            while not self.stopping.is_set():
                self.samples.append((time.monotonic(), await self._lag(admin, consumer)))
                await asyncio.sleep(1.0)
        finally:
            await consumer.stop()
            await admin.close()

    async def _lag(self, admin: Any, consumer: Any) -> int | None:
        from aiokafka import TopicPartition

        try:
            parts = [TopicPartition(self.settings.topic_raw, p) for p in range(self.settings.partitions)]
            ends = await asyncio.wait_for(consumer.end_offsets(parts), 5)
            done = await asyncio.wait_for(admin.list_consumer_group_offsets(self.settings.app_id), 5)
            committed = {tp.partition: (done[tp].offset if tp in done else 0, ends[tp]) for tp in parts}
            self.by_partition.append((time.monotonic(), committed))
            return sum(end - at for at, end in committed.values())
        except Exception:  # noqa: BLE001 - a broker is down or the group is moving: unknown for now
            return None

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)

    def longest_stall_s(self) -> tuple[float, int | None, float | None]:
        """The longest time any partition's committed offset stood still while it had records to handle, that
        partition, and when (monotonic) the stall began."""
        longest, which, began = 0.0, None, None
        still_since: dict[int, float] = {}
        last: dict[int, int] = {}
        for t, parts in self.by_partition:
            for p, (at, end) in parts.items():
                if at >= end or last.get(p) != at:
                    still_since[p] = t  # caught up, or it moved: a stall could start only from here
                elif t - still_since[p] > longest:
                    longest, which, began = t - still_since[p], p, still_since[p]
                last[p] = at
        return round(longest, 1), which, began

    def longest_blind_s(self) -> float:
        """The longest time without an answer about the group's offsets (a broker down, the group moving)."""
        times = [t for t, _ in self.by_partition]
        return round(max((b - a for a, b in itertools.pairwise(times)), default=0.0), 1)

    def figures(self, failed_at: float) -> dict[str, float | None]:
        """Seconds from the failure until the lag was back to at most what it was before it (steady input
        keeps some lag), the largest lag after it, and the last sample's lag."""
        before = [lag for t, lag in self.samples if t < failed_at and lag is not None]
        usual = max(before, default=0)
        after = [(t, lag) for t, lag in self.samples if t >= failed_at]
        bad = [t for t, lag in after if lag is None or lag > usual]
        back = next((t for t, lag in after if t > (bad[-1] if bad else failed_at) and lag is not None), None)
        return {
            "usual_lag": usual,
            "largest_lag_after": max((lag for _, lag in after if lag is not None), default=None),
            "lag_back_s": round(back - failed_at, 1) if back is not None else None,
            "final_lag": self.samples[-1][1] if self.samples else None,
        }


async def coordinator_and_leaders(settings: Settings) -> tuple[int, dict[int, list[int]]]:
    """The node id coordinating the pipeline's consumer group, and the raw partitions each broker leads."""
    admin = kafka_clients.admin(settings, request_timeout_ms=10000)
    await kafka_clients.start(admin, settings)
    try:
        coordinator = await admin.find_coordinator(settings.app_id)
        leads: dict[int, list[int]] = {}
        for topic in await admin.describe_topics([settings.topic_raw]):
            for p in topic["partitions"]:
                leads.setdefault(p["leader"], []).append(p["partition"])
        return coordinator, leads
    finally:
        await admin.close()


def wait_for_zero_lag(watch: LagWatch, timeout_s: float = 300) -> float:
    """Seconds until the pipeline has committed every raw record (the input is complete by then)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if watch.samples and watch.samples[-1][1] == 0:
            return round(time.monotonic() - started, 1)
        time.sleep(1.0)
    raise AssertionError(f"the pipeline's lag did not reach zero in {timeout_s:.0f} s: {watch.samples[-10:]}")


@contextlib.contextmanager
def running(*threads: Any) -> Iterator[None]:
    """Start ``threads`` (each with a ``stop()``), in order, and stop them however the block ends: one left running
    after a failed check would go on using a cluster that is gone, and its clients' errors would land in later
    tests."""
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        for thread in threads:
            thread.stop()


def run_scenario(settings: Settings, start_worker: Any, name: str, fail: Any, seed: int) -> None:
    """Stream the workload through two workers, call ``fail(stack_time)`` a few seconds in, check the outcome."""
    pairs = workload(EVENTS, seed=seed)
    asyncio.run(create_namespace_topics(settings))
    workers = {w: start_worker(name=w, **WORKER_ENV) for w in ("a", "b")}
    watch, sender = LagWatch(settings), Sender(settings, pairs, rate=EVENTS / (DOWN_S + 40.0))
    with running(watch, sender):
        time.sleep(10)
        failed_at = time.monotonic()
        notes = fail(workers)
        sender.join(timeout=900)
        assert sender.error is None, sender.error
        input_done = time.monotonic()
        to_zero = wait_for_zero_lag(watch)
        figures: dict[str, Any] = {"scenario": name, **notes, "down_s": DOWN_S}
        figures.update(check_outcome(settings, pairs))
    figures.update(watch.figures(failed_at), lag_zero_after_input_s=to_zero,
                   seconds=round(time.monotonic() - failed_at), input_s=round(input_done - failed_at))  # fmt: skip
    for worker in workers.values():
        if worker.alive():
            worker.assert_healthy(library_ok=DRIVER_RECOVERS)
    print("\nCLUSTER " + orjson.dumps(figures).decode(), flush=True)


def kill_coordinator(cluster: LocalStack, settings: Settings) -> dict[str, Any]:
    coordinator, leads = asyncio.run(coordinator_and_leaders(settings))
    victim = f"kafka-{coordinator}"
    assert leads.get(coordinator), f"{victim} leads no raw partition: {leads}"
    cluster.kill(victim)
    print(f"killed {victim} (group coordinator, leader of raw partitions {leads[coordinator]})", flush=True)
    return {"killed_broker": victim, "it_led_partitions": len(leads[coordinator])}


def restart(cluster: LocalStack, what: str) -> float:
    started = time.monotonic()
    cluster.up(timeout_s=300)
    took = time.monotonic() - started
    print(f"{what} back after {took:.0f} s", flush=True)
    return round(took, 1)


@pytest.mark.timeout(1800)
def test_coordinator_broker_killed_and_cassandra_node_stopped(cluster: LocalStack, settings: Settings,
                                                              start_worker: Any) -> None:  # fmt: skip
    def fail(workers: dict[str, Any]) -> dict[str, Any]:
        notes = kill_coordinator(cluster, settings)
        cluster.process("cassandra-2").stop()
        print("stopped cassandra-2", flush=True)
        time.sleep(DOWN_S)
        notes["restart_s"] = restart(cluster, "kafka and cassandra-2")
        return notes

    run_scenario(settings, start_worker, "coordinator broker killed + cassandra node stopped", fail, seed=11)


def test_workers_migrating_at_once_through_other_nodes_create_each_table_once(
    cluster: LocalStack, settings: Settings
) -> None:
    from weatherstream.db import connect
    from weatherstream.sinks.schema import migrate, migrations

    hosts = [n.host for n in cluster.cassandra_nodes]
    sessions = [connect([h], settings.cassandra_port, only_contact_points=True) for h in hosts]
    start = threading.Barrier(len(sessions))
    errors: list[BaseException] = []

    def migrate_through(session: Any) -> None:
        try:
            start.wait(timeout=30)
            migrate(session, settings)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=migrate_through, args=(s,)) for _, s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    try:
        assert not errors, errors
        expected, added = {}, set()
        for m in migrations():
            for statement in m.statements(settings.keyspace):
                if statement.startswith("CREATE TABLE"):
                    expected[statement.split(".")[1].split()[0]] = statement.rsplit("id = ", 1)[1]
                elif match := re.match(r"ALTER TABLE \w+\.(\w+) ADD IF NOT EXISTS (\w+) ", statement):
                    added.add((match[1], match[2]))
        assert added, "no migration adds a column: the check below would check nothing"
        for host, (_, session) in zip(hosts, sessions, strict=True):
            rows = session.execute("SELECT table_name, id FROM system_schema.tables WHERE keyspace_name = %s",
                                   (settings.keyspace,))  # fmt: skip
            found = {r.table_name: str(r.id) for r in rows if r.table_name in expected}
            assert found == expected, f"node {host} knows other tables or ids"
            columns = session.execute("SELECT table_name, column_name FROM system_schema.columns "
                                      "WHERE keyspace_name = %s", (settings.keyspace,))  # fmt: skip
            assert added <= {(r.table_name, r.column_name) for r in columns}, f"node {host} lacks an added column"
    finally:
        for cluster_, _ in sessions:
            cluster_.shutdown()


def test_sink_requests_are_coordinated_by_a_node_that_owns_every_partition_in_them(
    cluster: LocalStack, settings: Settings
) -> None:
    """With one replica per partition, each request the sink makes (a packed batch of one-row partitions, a
    station's observation each, or the rows of one partition) goes to the node that holds all its partitions,
    not to any node."""
    from weatherstream.sinks import rows
    from weatherstream.sinks.writer import CassandraWriter, RowWrite

    one_copy = cluster_settings(namespace=settings.namespace, keyspace=settings.keyspace,
                                cassandra_replication="NetworkTopologyStrategy:datacenter1=1")  # fmt: skip
    writer = CassandraWriter(one_copy)
    writer.open()
    assert writer.session is not None and writer.cluster is not None
    t0 = 1_700_000_000.0
    stations = [{"city_id": 1000 + i, "observed_at": t0, "temp_c": 1.0, "payload_json": "{}"} for i in range(300)]
    one_station = [{"city_id": 7, "observed_at": t0 + 600 * k, "temp_c": 2.0} for k in range(20)]
    writes = [RowWrite(rows.OBSERVATIONS, rows.row(rows.OBSERVATIONS, r)) for r in stations + one_station]
    try:
        requests = list(writer._grouped([(w, writer._bind(w)) for w in writes]))
        assert len(requests) < len(stations), f"{len(requests)} requests for {len(stations)} one-row partitions"
        packed = 0
        for chunk, statement in requests:
            keys = {writer._bind(w).routing_key for w in chunk}
            owners = {r.address for k in keys for r in writer.cluster.metadata.get_replicas(one_copy.keyspace, k)}
            response = writer.session.execute_async(statement)
            response.result()
            coordinator = response.coordinator_host  # a Host (an "address:port" string in older drivers)
            assert owners == {getattr(coordinator, "address", str(coordinator).split(":")[0])}, (
                f"a request for partitions held by {owners} was coordinated by {response.coordinator_host}"
            )
            packed += len(keys) > 1
        assert packed, "no request held more than one partition: packing was not checked"
        stored = writer.session.execute(f"SELECT COUNT(*) FROM {one_copy.keyspace}.observations_by_city_day")
        assert stored.one()[0] == len(writes)
    finally:
        writer.close()


# --- make cluster-test: one failure per run, DOWN_S long (60 s there) ---------------------------------


@pytest.mark.cluster_full
@pytest.mark.timeout(1800)
def test_coordinator_broker_killed(cluster: LocalStack, settings: Settings, start_worker: Any) -> None:
    def fail(workers: dict[str, Any]) -> dict[str, Any]:
        notes = kill_coordinator(cluster, settings)
        time.sleep(DOWN_S)
        notes["restart_s"] = restart(cluster, notes["killed_broker"])
        return notes

    run_scenario(settings, start_worker, "coordinator broker killed", fail, seed=12)


@pytest.mark.cluster_full
@pytest.mark.timeout(1800)
def test_active_controller_killed(cluster: LocalStack, settings: Settings, start_worker: Any) -> None:
    def fail(workers: dict[str, Any]) -> dict[str, Any]:
        victim = cluster.active_controller()
        assert victim is not None, "no broker knows the KRaft quorum's leader"
        cluster.kill(victim)
        print(f"killed {victim} (active KRaft controller)", flush=True)
        time.sleep(5)
        successor = cluster.active_controller()
        time.sleep(max(0.0, DOWN_S - 5))
        notes: dict[str, Any] = {"killed_controller": victim, "next_controller": successor}
        notes["restart_s"] = restart(cluster, victim)
        return notes

    run_scenario(settings, start_worker, "active controller killed", fail, seed=13)


@pytest.mark.cluster_full
@pytest.mark.timeout(1800)
def test_cassandra_node_stopped(cluster: LocalStack, settings: Settings, start_worker: Any) -> None:
    def fail(workers: dict[str, Any]) -> dict[str, Any]:
        cluster.process("cassandra-3").stop()
        print("stopped cassandra-3", flush=True)
        time.sleep(DOWN_S)
        return {"stopped_node": "cassandra-3", "restart_s": restart(cluster, "cassandra-3")}

    run_scenario(settings, start_worker, "cassandra node stopped", fail, seed=14)


@pytest.mark.cluster_full
@pytest.mark.timeout(1800)
def test_worker_killed_and_another_added(cluster: LocalStack, settings: Settings, start_worker: Any) -> None:
    def fail(workers: dict[str, Any]) -> dict[str, Any]:
        victim = workers.pop("a")
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait()
        print("killed worker a", flush=True)
        started = time.monotonic()
        workers["c"] = start_worker(name="c", **WORKER_ENV)
        return {"killed_worker": "a", "added_worker": "c", "new_worker_ready_s": round(time.monotonic() - started, 1)}

    run_scenario(settings, start_worker, "worker killed, another added", fail, seed=15)


# --- make soak: an hour at 200 events/s, a worker restarted every five minutes ---------------------------

SOAK_MINUTES = float(os.environ.get("WEATHERSTREAM_SOAK_MINUTES", "60"))
SOAK_RATE = float(os.environ.get("WEATHERSTREAM_SOAK_RATE", "200"))
RESTART_EVERY_S = float(os.environ.get("WEATHERSTREAM_SOAK_RESTART_S", "300"))


class RssWatch(threading.Thread):
    """Samples the resident memory of every running worker every 10 s: (time, worker name, bytes)."""

    def __init__(self, workers: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.workers = workers
        self.samples: list[tuple[float, str, int]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        from weatherstream.stack.process import process_rss_bytes

        while not self.stopping.wait(10.0):
            for name, worker in list(self.workers.items()):
                rss = process_rss_bytes(worker.proc.pid) if worker.alive() else None
                if rss:
                    self.samples.append((time.monotonic(), name, rss))

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)

    def growth(self, started: float, minutes: float) -> float:
        """The workers' median RSS in the last quarter of the run over the second quarter's (the first is
        warm-up): 1.0 is flat."""
        quarter = minutes * 60 / 4

        def median_in(lo: float, hi: float) -> float:
            values = sorted(rss for t, _, rss in self.samples if lo <= t - started < hi)
            return float(values[len(values) // 2]) if values else float("nan")

        return median_in(3 * quarter, 4 * quarter) / median_in(quarter, 2 * quarter)


def partition_counter(settings: Settings, pairs: list[tuple[bytes, bytes]]) -> Callable[[], int]:
    """Counts observations_by_city_day partition by partition, 32 at a time: one COUNT over an hour's 720,000
    rows timed out on this cluster (LOCAL_QUORUM, small heaps) and failed the first full soak's check."""
    from cassandra.concurrent import execute_concurrent_with_args

    from weatherstream.db import connect_settings

    keys = sorted({(o.city_id, dt.datetime.fromtimestamp(o.observed_at, tz=dt.timezone.utc).date())
                   for o in accepted(pairs)})  # fmt: skip

    def count() -> int:
        cluster, session = connect_settings(settings)
        try:
            statement = session.prepare(f"SELECT COUNT(*) FROM {settings.keyspace}.observations_by_city_day "
                                        "WHERE city_id = ? AND day = ?")  # fmt: skip
            statement.timeout = 60
            done = execute_concurrent_with_args(session, statement, keys, concurrency=32, raise_on_first_error=True)
            return sum(int(result.result_or_exc.one()[0]) for result in done)
        finally:
            cluster.shutdown()

    return count


@pytest.mark.soak
@pytest.mark.timeout(int(SOAK_MINUTES * 60 + 3600))
def test_soak_with_a_worker_restarted_every_five_minutes(cluster: LocalStack, settings: Settings,
                                                         start_worker: Any) -> None:  # fmt: skip
    events = int(SOAK_RATE * SOAK_MINUTES * 60)
    pairs = workload(events, seed=16)
    asyncio.run(create_namespace_topics(settings))
    workers = {w: start_worker(name=w, **WORKER_ENV) for w in ("a", "b")}
    lag, rss, sender = LagWatch(settings), RssWatch(workers), Sender(settings, pairs, rate=SOAK_RATE)
    with running(lag, rss, sender):
        started = time.monotonic()
        restarts = 0
        while sender.is_alive():
            sender.join(timeout=RESTART_EVERY_S)
            if not sender.is_alive():
                break
            name = "ab"[restarts % 2]
            workers[name].stop()  # SIGTERM: leaves the group, a rebalance
            workers[name] = start_worker(name=f"{name}{restarts}", data=name, **WORKER_ENV)
            restarts += 1
            print(f"{time.monotonic() - started:5.0f} s: worker {name} restarted ({sender.sent} events sent)",
                  flush=True)  # fmt: skip
        assert sender.error is None, sender.error
        to_zero = wait_for_zero_lag(lag, timeout_s=600)
    stall_s, stalled, stall_began = lag.longest_stall_s()
    growth = rss.growth(started, SOAK_MINUTES)
    figures: dict[str, Any] = {
        "scenario": "soak",
        "minutes": SOAK_MINUTES,
        "rate": SOAK_RATE,
        "restarts": restarts,
        "longest_stall_s": stall_s,
        "stalled_partition": stalled,
        # to set against the restarts' times printed above
        "stall_began_s": round(stall_began - started, 1) if stall_began is not None else None,
        "longest_unanswered_lag_read_s": lag.longest_blind_s(),
        "lag_zero_after_input_s": to_zero,
        "worker_rss_growth": round(growth, 3),
        "worker_rss_mb_max": round(max((b for _, _, b in rss.samples), default=0) / 2**20),
    }
    print("\nSOAK " + orjson.dumps(figures).decode(), flush=True)  # before the checks, which can take long
    figures.update(check_outcome(settings, pairs, count_raw=partition_counter(settings, pairs)))
    print("\nCLUSTER " + orjson.dumps(figures).decode(), flush=True)
    for worker in workers.values():
        worker.assert_healthy(library_ok=DRIVER_RECOVERS)
    folders = sorted({str(w.log_path.parent) for w in workers.values()})
    print(f"worker logs (pytest keeps them for its next three runs): {folders}")
    assert stall_s <= 60, f"partition {stalled} was not consumed for {stall_s} s while it had records"
    assert growth <= 1.10, f"worker memory grew {growth:.2f}x between the second and the last quarter"
