"""Shared fixtures.

Tests marked ``stack`` run against the real local Kafka broker and Cassandra node. The session
fixture :func:`local_stack` calls the same code as ``weatherstream stack up``: it reuses a running
stack or starts one, and fails (never skips) with the reason when that is impossible.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest

from weatherstream.db import connect
from weatherstream.settings import Settings, load_settings
from weatherstream.stack import LocalStack
from weatherstream.topics import delete_namespace_topics


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Any test that uses the real stack is marked, so `-m "not stack"` gives the fast unit suite.
    for item in items:
        if "local_stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)


@pytest.fixture
def no_weatherstream_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No WEATHERSTREAM_* variable of the caller's shell leaks into the test's settings."""
    for key in list(os.environ):
        if key.startswith("WEATHERSTREAM_"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def local_stack() -> LocalStack:
    """The running local stack (started here if `make test` has not started it already)."""
    stack = LocalStack(load_settings())
    stack.up()
    return stack


@pytest.fixture
def run_id() -> str:
    """A short unique id for names owned by one test."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def settings(local_stack: LocalStack, run_id: str) -> Iterator[Settings]:
    """Settings with a namespace and keyspace of this test alone; its topics are deleted afterwards."""
    s = load_settings(namespace=f"t{run_id}", keyspace=f"t{run_id}", stack_dir=local_stack.settings.stack_dir)
    yield s
    if not os.environ.get("WEATHERSTREAM_TEST_KEEP_TOPICS"):  # kept for a post-mortem of a failed run
        asyncio.run(delete_namespace_topics(s))


@pytest.fixture
def cassandra_session(local_stack: LocalStack, settings: Settings) -> Iterator[object]:
    """A driver session to the local node, using this test's keyspace (created, then dropped)."""
    cluster, session = connect(settings.cassandra_hosts, settings.cassandra_port)
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {settings.keyspace} "
        "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    session.set_keyspace(settings.keyspace)
    try:
        yield session
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.keyspace}")
        cluster.shutdown()
