"""The state table's own changelog path: what happens to records when a send fails, and at a rebalance.

(That the records are the ones faust would send is checked against the broker in
tests/integration/test_table_changelog.py.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from agents.statetable import StateTable
from weatherstream.app import create_app
from weatherstream.settings import load_settings


class Producer:
    """Takes records until told to fail; a record it takes is delivered at once."""

    started = True

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        self.fail_at: int | None = None

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                   timestamp: float | None, headers: Any) -> asyncio.Future[Any]:  # fmt: skip
        if self.fail_at is not None and len(self.records) >= self.fail_at:
            raise RuntimeError("the broker is unreachable")
        self.records.append((topic, key, value, partition))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(SimpleNamespace(topic_partition=TP(topic, partition or 0), offset=len(self.records) - 1))
        return done


def cached_table(tmp_path: Path) -> tuple[StateTable, Producer]:
    app = create_app(load_settings(store="memory://", namespace="unit", data_dir=tmp_path), register_agents=False)
    producer = Producer()
    app.producer = producer  # type: ignore[assignment]
    table = app.Table("probe", default=None, key_type=str, partitions=4)
    cached = StateTable(app, table, record_entries=10, slice_entries=10)
    return cached, producer


def written(cached: StateTable, *keys: str) -> None:
    """Note writes the way the table's hooks do (a partition each, a delete for a key starting with '-')."""
    for key in keys:
        if key.startswith("-"):
            cached.table.on_key_del(key[1:])  # type: ignore[attr-defined]
        else:
            cached.table.on_key_set(key, [key])  # type: ignore[attr-defined]


def test_records_a_failed_send_left_are_kept_in_order_for_the_next_call(tmp_path: Path) -> None:
    cached, producer = cached_table(tmp_path)
    cached.table.partition_for_key = lambda key: 2  # type: ignore[method-assign]

    async def scenario() -> None:
        written(cached, "a", "b", "-c")
        producer.fail_at = 1
        with pytest.raises(RuntimeError, match="unreachable"):
            await cached.send_changelog()
        assert [key for _, key, _ in cached.pending] == ["b", "c"]  # "a" went out; "b" failed; "c" waits
        written(cached, "d")
        producer.fail_at = None
        sends = await cached.send_changelog()
        assert len(sends) == 3 and cached.pending == []

    asyncio.run(scenario())
    assert [(key, value) for _, key, value, _ in producer.records] == [
        (b'"a"', b'["a"]'), (b'"b"', b'["b"]'), (b'"c"', None), (b'"d"', b'["d"]'),
    ]  # fmt: skip
    assert {partition for *_, partition in producer.records} == {2}


def test_a_rebalance_sends_what_is_left_before_the_partitions_go(tmp_path: Path) -> None:
    cached, producer = cached_table(tmp_path)
    cached.table.partition_for_key = lambda key: 1  # type: ignore[method-assign]

    async def scenario() -> None:
        written(cached, "a")
        cached.records.put(1, None)
        cached.slices.put((1, 3600), None)
        await cached.app.on_partitions_revoked.send(set())  # as faust's rebalance does, after its own flush
        assert cached.pending == [] and len(cached.records) == len(cached.slices) == 0

    asyncio.run(scenario())
    assert [key for _, key, _, _ in producer.records] == [b'"a"']


def test_without_a_running_producer_nothing_is_sent_or_dropped(tmp_path: Path) -> None:
    cached, producer = cached_table(tmp_path)
    cached.table.partition_for_key = lambda key: 0  # type: ignore[method-assign]
    producer.started = False
    written(cached, "a")
    assert asyncio.run(cached.send_changelog()) == []
    assert len(cached.pending) == 1 and producer.records == []


def test_a_table_partitioned_by_the_producer_is_refused(tmp_path: Path) -> None:
    app = create_app(load_settings(store="memory://", namespace="unit", data_dir=tmp_path), register_agents=False)
    table = app.Table("probe", default=None, key_type=str, partitions=4, use_partitioner=True)
    with pytest.raises(ValueError, match="partitioned like their source topic"):
        StateTable(app, table, record_entries=10, slice_entries=10)
