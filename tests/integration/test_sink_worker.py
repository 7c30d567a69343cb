"""The Cassandra sink through the real broker, worker and node: one row per distinct input, replays add
none, aggregates and alerts stored, the schema CLI, and `weatherstream query`."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import requests
from prometheus_client.parser import text_string_to_metric_families

from models import Aggregate, Alert, city_key
from tests.integration.conftest import WorkerProcess, cli, read_topic, settings_env
from weatherstream import kafka_clients
from weatherstream.core.normalize import InvalidPayload, normalize
from weatherstream.db import connect_settings
from weatherstream.settings import Settings
from weatherstream.sinks.schema import migrations
from weatherstream.sources.synthetic import SyntheticConfig, generate


def count_rows(settings: Settings, table: str) -> int:
    cluster, session = connect_settings(settings)
    try:
        return int(session.execute(f"SELECT COUNT(*) FROM {settings.keyspace}.{table}", timeout=60).one()[0])
    finally:
        cluster.shutdown()


def wait_for(what: str, probe: Callable[[], int], expect: int, timeout_s: float = 240, settle_s: float = 3) -> int:
    """Poll ``probe`` until it returns ``expect`` (then once more after ``settle_s``, to catch extras)."""
    deadline = time.monotonic() + timeout_s
    value = -1
    while time.monotonic() < deadline:
        try:
            value = probe()
        except Exception:  # noqa: BLE001 - the keyspace may not exist yet
            value = -1
        if value >= expect:
            time.sleep(settle_s)
            return probe()
        time.sleep(1)
    raise AssertionError(f"{what}: {value} after {timeout_s:.0f} s, expected {expect}")


def _valid(payload: bytes) -> bool:
    try:
        normalize(payload, now=time.time())
    except InvalidPayload:
        return False
    return True


def replay_file(tmp_path: Path) -> tuple[Path, int, int]:
    """A multi-city JSON-lines file with repeats; returns it, its line count and its distinct (city, dt)."""
    cfg = SyntheticConfig(cities=20, count=2400, anomalies=8, seed=11, start=float(int(time.time()) - 2400 // 20 * 600))
    records = [r for r in generate(cfg) if _valid(r.payload)]  # injected impossible values are dead letters
    rng = random.Random(3)
    repeats = rng.sample(records, 150)  # the same (city, dt) again, with another temperature
    lines = [r.payload for r in records]
    for r in repeats:
        body = orjson.loads(r.payload)
        body["main"]["temp"] = float(body["main"]["temp"]) + 0.5
        lines.insert(rng.randrange(len(lines)), orjson.dumps(body))
    distinct = {(orjson.loads(line)["id"], orjson.loads(line)["dt"]) for line in lines}
    path = tmp_path / "cities.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, len(lines), len(distinct)


def test_replay_stores_each_distinct_observation_once_and_a_replay_adds_none(
    settings: Settings,
    start_worker,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    path, n_lines, n_distinct = replay_file(tmp_path)
    worker = start_worker()
    env = settings_env(settings)
    done = subprocess.run(cli("produce", "--source", "replay", "--file", str(path)), env=env, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0 and f"sent {n_lines}, failed 0" in done.stderr, done.stderr
    rows = wait_for("observation rows", lambda: count_rows(settings, "observations_by_city_day"), n_distinct)
    assert rows == n_distinct

    # Every aggregate and alert message on the topics is one row (corrections are rows of their own).
    aggregate_msgs = [Aggregate.loads(r.value) for r in read_topic(settings, settings.topic_aggregates, 1)]
    aggregates = {(a.city_id, a.kind, a.window_start, a.revision) for a in aggregate_msgs}
    alerts = {
        (a.alert_id, a.seq) for a in (Alert.loads(r.value) for r in read_topic(settings, settings.topic_alerts, 1))
    }
    assert len(aggregates) > 100 and len(alerts) > 0
    assert wait_for("aggregate rows", lambda: count_rows(settings, "aggregates_by_city"), len(aggregates)) == len(
        aggregates
    )
    assert wait_for("alert rows", lambda: count_rows(settings, "alerts_by_city"), len(alerts)) == len(alerts)
    assert count_rows(settings, "alerts_by_day") == len(alerts)

    # latest_by_city: one row per city, its newest observation (the sink writes only a batch's newest per city).
    newest: dict[int, int] = {}
    for line in path.read_bytes().splitlines():
        doc = orjson.loads(line)
        newest[doc["id"]] = max(newest.get(doc["id"], 0), doc["dt"])
    cluster, session = connect_settings(settings)
    try:
        latest = {r.city_id: r.observed_at.replace(tzinfo=dt.timezone.utc).timestamp() for r in session.execute(
            f"SELECT city_id, observed_at FROM {settings.keyspace}.latest_by_city WHERE bucket = 0")}  # fmt: skip
    finally:
        cluster.shutdown()
    assert latest == {city: float(t) for city, t in newest.items()}

    # The same file again: every line is a duplicate (or too late); not one row more.
    again = subprocess.run(cli("produce", "--source", "replay", "--file", str(path)), env=env, capture_output=True,
                           text=True, timeout=300, check=False)  # fmt: skip
    assert again.returncode == 0, again.stderr
    read_topic(settings, settings.topic_deadletter, expect=(n_lines - n_distinct) + n_lines, settle_s=3)
    assert count_rows(settings, "observations_by_city_day") == n_distinct
    assert count_rows(settings, "aggregates_by_city") == len(aggregates)
    worker.assert_healthy()

    # Read back one city through the CLI: its rows, newest first, with aware UTC times.
    city = orjson.loads(path.read_bytes().splitlines()[0])["id"]
    expected = {d for c, d in {(orjson.loads(x)["id"], orjson.loads(x)["dt"]) for x in path.read_bytes().splitlines()}
                if c == city}  # fmt: skip
    shown = subprocess.run(cli("query", "observations", "--city", str(city), "--from", str(min(expected)),
                               "--to", str(max(expected) + 1), "--json"),
                           env=env, capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    items = [json.loads(line) for line in shown.stdout.splitlines()]
    assert len(items) == len(expected)
    assert items[0]["observed_at"].endswith("+00:00") and items[0]["observed_at"] > items[-1]["observed_at"]
    assert all(item["payload_json"] for item in items)


def test_db_migrate_is_idempotent_and_status_tells_the_version(settings: Settings) -> None:
    env = settings_env(settings)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cli("db", *args), env=env, capture_output=True, text=True, timeout=120, check=False)

    early = subprocess.run(cli("query", "observations", "--city", "1"), env=env, capture_output=True, text=True,
                           timeout=120, check=False)  # fmt: skip
    assert early.returncode == 1 and "weatherstream db migrate" in early.stderr and "Traceback" not in early.stderr
    before = run("status")
    assert before.returncode == 1 and "does not exist" in before.stdout and "pending  0001_initial" in before.stdout
    first = run("migrate")
    latest = len(migrations())
    assert first.returncode == 0, first.stderr
    assert f"schema version {latest} ({latest} migration(s) applied now)" in first.stdout
    second = run("migrate")
    assert second.returncode == 0 and "(0 migration(s) applied now)" in second.stdout
    status = run("status", "--json")
    assert status.returncode == 0
    assert json.loads(status.stdout)["version"] == latest and json.loads(status.stdout)["pending"] == []
    from tests.integration.conftest import drop_keyspace

    drop_keyspace(settings)


def test_unreachable_cassandra_is_a_clear_error(settings: Settings) -> None:
    env = {**settings_env(settings), "WEATHERSTREAM_CASSANDRA_PORT": "1"}
    done = subprocess.run(cli("db", "status"), env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "cannot reach Cassandra at 127.0.0.1:1" in done.stderr and "weatherstream stack up" in done.stderr
    assert "Traceback" not in done.stderr


def test_sink_dead_letters_a_record_that_is_not_one_and_writes_the_rest(
    settings: Settings,
    start_worker,  # type: ignore[no-untyped-def]
) -> None:
    """A sink-only worker (its own consumer, not a faust agent): a record it cannot read becomes a bad_type
    dead letter with its bytes and origin; the good record beside it is written."""
    worker = start_worker(WEATHERSTREAM_WORKER_ROLE="sink")
    payload = next(iter(generate(SyntheticConfig(cities=1, count=1, anomalies=0, seed=5, start=time.time() - 600))))
    good = normalize(payload.payload, now=time.time()).dumps()
    bad = b'{"city_id": "not a record"'

    async def send() -> None:
        producer = kafka_clients.producer(settings)
        await kafka_clients.start(producer, settings)
        try:
            for value in (bad, good):
                await producer.send_and_wait(settings.topic_observations, value, key=b"1")
        finally:
            await producer.stop()

    asyncio.run(send())
    letters = read_topic(settings, settings.topic_deadletter, expect=1)
    assert [(r.value, dict(r.headers)["ws-reason"], dict(r.headers)["ws-topic"]) for r in letters] == [
        (bad, b"bad_type", settings.topic_observations.encode())
    ]
    assert wait_for("observation rows", lambda: count_rows(settings, "observations_by_city_day"), 1) == 1
    worker.assert_healthy()


OBSERVATIONS = "observations_by_city_day"


def sink_metrics(worker: WorkerProcess) -> tuple[float, float]:
    """(partitions the worker's sink reads now, observation rows it wrote so far), from its /metrics."""
    text = requests.get(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=5).text
    partitions = rows = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "weatherstream_sink_partitions":
                partitions = sample.value
            elif sample.name == "weatherstream_sink_rows_total" and sample.labels["table"] == OBSERVATIONS:
                rows = sample.value
    return partitions, rows


def test_an_all_and_a_sink_worker_share_the_partitions_and_write_each_row_once(
    settings: Settings,
    start_worker,  # type: ignore[no-untyped-def]
) -> None:
    """Both roles read the sink's topics as one consumer group: each takes part of the partitions, and every
    observation is written by exactly one of them (their row counters add up to the input, not twice it)."""
    workers = [start_worker("all"), start_worker("sink", WEATHERSTREAM_WORKER_ROLE="sink")]
    total = 3 * settings.partitions  # observations, aggregates, alerts
    deadline = time.monotonic() + 90
    while True:
        shares = [sink_metrics(w)[0] for w in workers]
        if sum(shares) == total and all(shares):
            break
        assert time.monotonic() < deadline, f"the two sinks read {shares} of {total} partitions after 90 s"
        time.sleep(1)

    cfg = SyntheticConfig(cities=24, count=960, anomalies=0, seed=7, start=float(int(time.time()) - 40 * 600))
    observations = [normalize(r.payload, now=time.time()) for r in generate(cfg) if _valid(r.payload)]

    async def send() -> None:
        producer = kafka_clients.producer(settings)
        await kafka_clients.start(producer, settings)
        try:
            sent = [await producer.send(settings.topic_observations, obs.dumps(), key=city_key(obs.city_id))
                    for obs in observations]  # fmt: skip
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    asyncio.run(send())
    rows = wait_for("observation rows", lambda: count_rows(settings, OBSERVATIONS), len(observations))
    assert rows == len(observations)
    written = [sink_metrics(w)[1] for w in workers]
    assert sum(written) == len(observations) and all(written), written
    for worker in workers:
        worker.assert_healthy()
