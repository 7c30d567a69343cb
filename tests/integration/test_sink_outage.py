"""The sink against the secure stack (a second local stack of its own, so stopping its servers disturbs no
other test): Kafka over SASL_PLAINTEXT with SCRAM, Cassandra with PasswordAuthenticator and a role limited to
one keyspace; Cassandra stopped for 60 s and the broker restarted in the middle of a stream, with no row lost
and no crash."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cassandra import Unauthorized
from cassandra.cluster import NoHostAvailable

from tests.integration.conftest import cli, drop_keyspace, secure_test_settings, settings_env
from tests.integration.test_sink_worker import count_rows, wait_for
from weatherstream.db import connect
from weatherstream.settings import Settings
from weatherstream.sinks.schema import migrations
from weatherstream.stack import LocalStack
from weatherstream.stack.process import ManagedProcess

WRITER, WRITER_PASSWORD = "ws_writer", "writer-pw-7f3a"


@pytest.fixture
def settings(secure_stack: LocalStack, run_id: str) -> Iterator[Settings]:
    """This test's namespace and keyspace on the secure stack; the worker logs in to Kafka over SASL and to
    Cassandra as a role that holds permissions on this keyspace only."""
    yield from secure_test_settings(secure_stack, f"s{run_id}", WRITER, WRITER_PASSWORD)


def test_role_limited_to_its_keyspace(secure_stack: LocalStack, settings: Settings) -> None:
    env = settings_env(settings)
    migrated = subprocess.run(cli("db", "migrate"), env=env, capture_output=True, text=True, timeout=120, check=False)
    assert migrated.returncode == 0 and f"schema version {len(migrations())}" in migrated.stdout, migrated.stderr
    cluster, session = connect(["127.0.0.1"], settings.cassandra_port, username=WRITER, password=WRITER_PASSWORD)
    try:
        session.execute(f"SELECT * FROM {settings.keyspace}.observations_by_city_day LIMIT 1")  # allowed
        with pytest.raises(Unauthorized):
            session.execute("CREATE KEYSPACE elsewhere WITH replication = {'class': 'SimpleStrategy', "
                            "'replication_factor': 1}")  # fmt: skip
        with pytest.raises(Unauthorized):
            session.execute("SELECT * FROM system_auth.roles")
    finally:
        cluster.shutdown()
    with pytest.raises(NoHostAvailable):  # no credentials: refused
        connect(["127.0.0.1"], settings.cassandra_port)

    wrong = {**env, "WEATHERSTREAM_CASSANDRA_PASSWORD": "not-the-password"}
    refused = subprocess.run(cli("db", "status"), env=wrong, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 1 and "cannot reach Cassandra" in refused.stderr
    assert "not-the-password" not in refused.stdout + refused.stderr and WRITER_PASSWORD not in refused.stderr
    drop_keyspace(settings)


def _synthetic(settings: Settings, count: int, start: int, rate: float | None = None) -> subprocess.Popen[str]:
    args = ["produce", "--source", "synthetic", "--cities", "20", "--count", str(count), "--start", str(start),
            "--step", "600"]  # fmt: skip
    if rate:
        args += ["--rate", str(rate)]
    return subprocess.Popen(cli(*args), env=settings_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def test_cassandra_outage_and_broker_restart_lose_no_row(
    secure_stack: LocalStack,
    settings: Settings,
    start_worker,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    worker = start_worker()
    start = int(time.time()) - 5 * 86400  # two runs of 50 h of event time, both in the past
    # 1. Cassandra stops for 60 s while a paced stream (about 80 s) is flowing.
    stream = _synthetic(settings, 6000, start, rate=75)
    time.sleep(10)
    cassandra = ManagedProcess("cassandra", secure_stack.stack_dir)
    assert cassandra.stop(), "could not stop the secure stack's Cassandra"
    stopped_at = time.monotonic()
    time.sleep(60)
    assert worker.alive(), worker.log()[-3000:]
    secure_stack.up()
    outage_s = time.monotonic() - stopped_at
    _, err = stream.communicate(timeout=300)
    assert stream.returncode == 0 and "sent 6000, failed 0" in err, err
    rows = wait_for("rows after the Cassandra outage", lambda: count_rows(settings, "observations_by_city_day"), 6000,
                    timeout_s=300)  # fmt: skip
    assert rows == 6000
    assert "not moving on" in worker.log()  # the sink did see the outage and waited

    # 2. The broker restarts while the worker drains a backlog.
    backlog = _synthetic(settings, 6000, start + 300 * 600 + 300)  # other times: 6,000 new distinct rows
    _, err = backlog.communicate(timeout=300)
    assert backlog.returncode == 0 and "sent 6000, failed 0" in err, err
    kafka = ManagedProcess("kafka", secure_stack.stack_dir)
    assert kafka.stop(), "could not stop the secure stack's Kafka"
    time.sleep(5)
    secure_stack.up()
    rows = wait_for("rows after the broker restart", lambda: count_rows(settings, "observations_by_city_day"), 12000,
                    timeout_s=300)  # fmt: skip
    assert rows == 12000
    assert worker.alive(), worker.log()[-3000:]
    assert "Crashed" not in worker.log() and "crashed" not in worker.log()
    print(f"\nCassandra was down {outage_s:.0f} s; broker restarted; rows {rows} of 12000")
