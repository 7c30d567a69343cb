"""Fixtures for tests that run real worker processes against the local stack, or against the secure stack:
a second local stack on ports of its own, with Kafka over SASL_PLAINTEXT (SCRAM) and Cassandra with
PasswordAuthenticator."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Generator, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from aiokafka.structs import ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families

from weatherstream import kafka_clients
from weatherstream.settings import Settings, load_settings
from weatherstream.stack import LocalStack

READY_MARKER = "[^Worker]: Ready"

#: The secure stack's ports (the main stack's plus 10,000).
SECURE_PORTS = {
    "stack_kafka_port": 19092,
    "stack_kafka_controller_port": 19093,
    "cassandra_port": 19042,
    "stack_cassandra_storage_port": 17000,
    "stack_cassandra_jmx_port": 17199,
}
#: The secure stack's Kafka user; the password is new in every test session (the stack is formatted anew).
KAFKA_USER = "ws_client"
KAFKA_PASSWORD = f"kafka-pw-{uuid.uuid4().hex[:16]}"


def secure_settings(**overrides: Any) -> Settings:
    """Settings that reach the secure stack: its ports, folder and SASL credentials."""
    values: dict[str, Any] = {
        "stack_dir": load_settings().stack_dir.resolve() / "secure-test-stack",
        "stack_cassandra_auth": True,
        "stack_kafka_sasl": True,
        "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl_mechanism": "SCRAM-SHA-256",
        "kafka_username": KAFKA_USER,
        "kafka_password": KAFKA_PASSWORD,
        **SECURE_PORTS,
    }
    return load_settings(**{**values, **overrides})


def limited_role(stack: LocalStack, keyspace: str, role: str, password: str) -> None:
    """Create ``keyspace`` and a login ``role`` that holds every permission on it and on nothing else (as the
    secure stack's superuser, as an admin would)."""
    from weatherstream.db import connect
    from weatherstream.stack.cassandra import CassandraServer

    user, superuser_password = CassandraServer.SUPERUSER
    cluster, session = connect(["127.0.0.1"], stack.settings.cassandra_port, username=user,
                               password=superuser_password)  # fmt: skip
    try:
        session.execute(f"CREATE ROLE IF NOT EXISTS {role} WITH PASSWORD = '{password}' AND LOGIN = true")
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {keyspace} "
            "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        session.execute(f"GRANT ALL PERMISSIONS ON KEYSPACE {keyspace} TO {role}")
    finally:
        cluster.shutdown()


def secure_test_settings(stack: LocalStack, name: str, role: str, password: str) -> Iterator[Settings]:
    """For a ``settings`` fixture: namespace and keyspace ``name`` on the secure stack, logging in to Kafka
    over SASL and to Cassandra as ``role``, limited to that keyspace; its topics are deleted afterwards."""
    from weatherstream.topics import delete_namespace_topics

    s = secure_settings(namespace=name, keyspace=name, cassandra_username=role, cassandra_password=password)
    limited_role(stack, s.keyspace, role, password)
    yield s
    if not os.environ.get("WEATHERSTREAM_TEST_KEEP_TOPICS"):  # kept for a post-mortem of a failed run
        asyncio.run(delete_namespace_topics(s))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "secure_stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def _secure_stack_folder() -> Iterator[LocalStack]:
    """The secure stack, wiped before first use and after the session.

    Its folder sits inside the main stack folder, so if a run is killed before it stops them, the next
    run finds its servers by their recorded pids (and stops them) instead of finding their ports taken.
    """
    stack = LocalStack(secure_settings())
    stack.down(wipe=True)  # leftovers of an interrupted run
    yield stack
    stack.down(wipe=True)


@pytest.fixture
def secure_stack(_secure_stack_folder: LocalStack) -> LocalStack:
    """The secure stack, running (started for the first test that needs it, stopped after the last one of a
    run of such tests, so its JVMs do not compete with later tests for the CPU)."""
    _secure_stack_folder.up()
    return _secure_stack_folder


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    result = yield  # the test's own fixtures are torn down first (they may still need the stack)
    uses = "secure_stack" in getattr(item, "fixturenames", ())
    if uses and nextitem is not None and "secure_stack" not in getattr(nextitem, "fixturenames", ()):
        LocalStack(secure_settings()).down(wipe=True)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed  # the worker fixture dumps its workers' stacks then
    return report


CALL_FAILED = pytest.StashKey[bool]()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes a `weatherstream` process use ``settings`` (``extra`` wins)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEATHERSTREAM_")}
    env.update(
        WEATHERSTREAM_BROKER=settings.broker,
        WEATHERSTREAM_NAMESPACE=settings.namespace,
        WEATHERSTREAM_KEYSPACE=settings.keyspace,
        WEATHERSTREAM_PARTITIONS=str(settings.partitions),
        WEATHERSTREAM_CASSANDRA_PORT=str(settings.cassandra_port),
        WEATHERSTREAM_STACK_DIR=str(settings.stack_dir),
        WEATHERSTREAM_STACK_KAFKA_PORT=str(settings.stack_kafka_port),
        WEATHERSTREAM_STACK_KAFKA_CONTROLLER_PORT=str(settings.stack_kafka_controller_port),
        WEATHERSTREAM_STACK_CASSANDRA_STORAGE_PORT=str(settings.stack_cassandra_storage_port),
        WEATHERSTREAM_STACK_CASSANDRA_JMX_PORT=str(settings.stack_cassandra_jmx_port),
        WEATHERSTREAM_STACK_CASSANDRA_AUTH="1" if settings.stack_cassandra_auth else "0",
        WEATHERSTREAM_STACK_KAFKA_SASL="1" if settings.stack_kafka_sasl else "0",
        WEATHERSTREAM_KAFKA_SECURITY_PROTOCOL=settings.kafka_security_protocol,
        WEATHERSTREAM_KAFKA_SASL_MECHANISM=settings.kafka_sasl_mechanism,
        WEATHERSTREAM_STACK_KAFKA_BROKERS=str(settings.stack_kafka_brokers),
        WEATHERSTREAM_STACK_CASSANDRA_NODES=str(settings.stack_cassandra_nodes),
        WEATHERSTREAM_TOPIC_REPLICATION_FACTOR=str(settings.topic_replication_factor),
        WEATHERSTREAM_CASSANDRA_HOSTS=",".join(settings.cassandra_hosts),
        WEATHERSTREAM_CASSANDRA_LOCAL_DC=settings.cassandra_local_dc,
        WEATHERSTREAM_CASSANDRA_REPLICATION=settings.cassandra_replication,
        WEATHERSTREAM_CASSANDRA_CONSISTENCY=settings.cassandra_consistency,
    )
    if settings.topic_min_insync_replicas is not None:
        env["WEATHERSTREAM_TOPIC_MIN_INSYNC_REPLICAS"] = str(settings.topic_min_insync_replicas)
    if settings.cassandra_username and settings.cassandra_password:
        env["WEATHERSTREAM_CASSANDRA_USERNAME"] = settings.cassandra_username
        env["WEATHERSTREAM_CASSANDRA_PASSWORD"] = settings.cassandra_password.get_secret_value()
    if settings.kafka_username and settings.kafka_password:
        env["WEATHERSTREAM_KAFKA_USERNAME"] = settings.kafka_username
        env["WEATHERSTREAM_KAFKA_PASSWORD"] = settings.kafka_password.get_secret_value()
    if settings.kafka_ssl_ca_file:
        env["WEATHERSTREAM_KAFKA_SSL_CA_FILE"] = str(settings.kafka_ssl_ca_file)
    env.update(extra)
    return env


def drop_keyspace(settings: Settings) -> None:
    """Drop the test's keyspace (the workers' sink created it)."""
    from weatherstream.db import connect_settings

    cluster, session = connect_settings(settings)
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.keyspace}", timeout=60)
    finally:
        cluster.shutdown()


def cli(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "weatherstream"), *args]


def _without_library_tracebacks(lines: list[str], libraries: tuple[str, ...]) -> list[str]:
    """``lines`` less each traceback whose every frame is in one of ``libraries`` (by package name)."""
    if not libraries:
        return lines
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("Traceback"):
            out.append(lines[i])
            i += 1
            continue
        end = i + 1
        while end < len(lines) and lines[end].startswith(" "):
            end += 1
        files = [line.split('"')[1] for line in lines[i + 1 : end] if line.lstrip().startswith('File "')]
        prefixes = tuple(f"{lib}/" for lib in libraries)  # frames of compiled modules name no folder
        installed = tuple(f"/site-packages/{lib}/" for lib in libraries)
        in_library = files and all(f.startswith(prefixes) or any(p in f for p in installed) for f in files)
        if not in_library:
            out.extend(lines[i:end])
        i = end
    return out


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path
    web_port: int

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def assert_healthy(self, library_ok: tuple[str, ...] = ()) -> None:
        """The worker still runs and never logged a crash or a traceback, apart from tracebacks that lie wholly
        inside the libraries named in ``library_ok`` (e.g. ``"cassandra"``: how cassandra-driver logs a node
        that went away, which it then handles itself)."""
        text = self.log()
        assert self.alive(), f"the worker exited with {self.proc.returncode}:\n{text[-3000:]}"
        checked = "\n".join(_without_library_tracebacks(text.splitlines(), library_ok))
        for marker in ("Traceback", "Crashed", "crashed"):
            assert marker not in checked, f"worker log contains {marker!r}:\n{text[-3000:]}"

    def metric(self, name: str, **labels: str) -> float:
        """The value of the sample ``name`` with ``labels`` on the worker's /metrics (0 when it has none yet)."""
        text = requests.get(f"http://127.0.0.1:{self.web_port}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0

    def dump_stacks(self) -> None:
        """Have the worker write every thread's and task's stack to its log (mode's SIGUSR1 handler), and
        print where that log is: what a hung worker was waiting for."""
        if self.alive():
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(2)
            print(f"\nworker {self.proc.pid}: stacks at the end of the failed test in {self.log_path}")

    def stop(self, timeout_s: float = 30) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def start_worker(settings: Settings, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator:  # type: ignore[type-arg]
    """Start `weatherstream worker` processes for this test's namespace; all are stopped afterwards."""
    workers: list[WorkerProcess] = []
    ports: dict[str, int] = {}

    def start(name: str = "worker", data: str | None = None, timeout_s: float = 120.0, loglevel: str = "info",
              **env: str) -> WorkerProcess:  # fmt: skip
        """``data`` reuses the RocksDB folder of an earlier worker of that name (a restart)."""
        port = free_port() if data is None else ports[data]
        ports[name] = port
        log_path = tmp_path / f"{name}-{len(workers)}.log"
        full_env = settings_env(
            settings,
            WEATHERSTREAM_DATA_DIR=str(tmp_path / f"{data or name}-data"),
            WEATHERSTREAM_WEB_PORT=str(port),
            **env,
        )
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cli("worker", "--loglevel", loglevel), stdout=log, stderr=subprocess.STDOUT,
                                    env=full_env, start_new_session=True)  # fmt: skip
        worker = WorkerProcess(proc, log_path, port)
        workers.append(worker)
        deadline = time.monotonic() + timeout_s
        while READY_MARKER not in worker.log():
            if not worker.alive():
                raise AssertionError(f"the worker exited before it was ready:\n{worker.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the worker was not ready after {timeout_s:.0f} s:\n{worker.log()[-3000:]}")
            time.sleep(0.3)
        return worker

    yield start
    if request.node.stash.get(CALL_FAILED, False):
        for worker in workers:
            worker.dump_stacks()
    for worker in workers:
        worker.stop()
    if workers and not getattr(request.module, "KEEP_KEYSPACES", False):
        drop_keyspace(settings)


def read_topic(settings: Settings, topic: str, expect: int, timeout_s: float = 120.0, settle_s: float = 3.0,
               distinct: Callable[[ConsumerRecord], Hashable] | None = None) -> list[ConsumerRecord]:  # fmt: skip
    """Every message of ``topic`` from the beginning: waits until ``expect`` arrived, then ``settle_s``
    more to catch any extra (duplicates). With ``distinct``, ``expect`` counts distinct ``distinct(record)``
    values: after a crash, repeats arrive too and must not end the wait before the last new record."""

    async def read() -> list[ConsumerRecord]:
        consumer = kafka_clients.consumer(settings, topic, auto_offset_reset="earliest", enable_auto_commit=False,
                                          group_id=None)  # fmt: skip
        await consumer.start()
        records: list[ConsumerRecord] = []
        keys: set[Hashable] = set()
        try:
            deadline = time.monotonic() + timeout_s
            settle_until: float | None = None
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                for recs in batch.values():
                    records.extend(recs)
                    if distinct is not None:
                        keys.update(distinct(r) for r in recs)
                now = time.monotonic()
                seen = len(records) if distinct is None else len(keys)
                if seen >= expect and settle_until is None:
                    settle_until = now + settle_s
                if (settle_until is not None and now >= settle_until) or now > deadline:
                    return records
        finally:
            await consumer.stop()

    return asyncio.run(read())
