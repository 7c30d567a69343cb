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
from aiokafka.errors import KafkaTimeoutError

from agents.statetable import StateTable
from tests.fake_kafka import FakeFaustProducer, FakeKafkaProducer
from weatherstream import internals
from weatherstream.app import create_app
from weatherstream.core.codec import CityRecord, encode_record, encode_slice, record_key, slice_key
from weatherstream.core.slices import Slice
from weatherstream.settings import load_settings


class PersistedOffsets:
    """Stands in for the table's store: keeps the persisted offsets it is told."""

    def __init__(self) -> None:
        self.offsets: dict[Any, int] = {}

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        self.offsets[tp] = offset


def cached_table(tmp_path: Path, partitions: int = 4) -> tuple[StateTable, FakeFaustProducer, FakeKafkaProducer]:
    app = create_app(load_settings(store="memory://", namespace="unit", data_dir=tmp_path))
    kafka = FakeKafkaProducer(partitions)
    producer = FakeFaustProducer(kafka)
    app.producer = producer  # type: ignore[assignment]
    table = app.Table("probe", default=None, key_type=str, partitions=partitions)
    cached = StateTable(app, table, record_entries=10, slice_entries=10)
    return cached, producer, kafka


def written(cached: StateTable, *keys: str) -> None:
    """Note writes the way the table's hooks do (a partition each, a delete for a key starting with '-')."""
    for key in keys:
        if key.startswith("-"):
            cached.table.on_key_del(key[1:])  # type: ignore[attr-defined]
        else:
            cached.table.on_key_set(key, [key])  # type: ignore[attr-defined]


def test_records_go_in_write_order_one_batch_per_partition_and_set_the_persisted_offset(tmp_path: Path) -> None:
    cached, _, kafka = cached_table(tmp_path)
    cached.table.partition_for_key = lambda key: 2 if key in ("a", "b", "c") else 3  # type: ignore[method-assign]
    store = PersistedOffsets()
    cached.table.data.set_persisted_offset = store.set_persisted_offset  # type: ignore[attr-defined]

    async def scenario() -> None:
        written(cached, "a", "x", "b", "-c")
        sends = await cached.send_changelog()
        await asyncio.gather(*sends)
        written(cached, "y")
        await asyncio.gather(*await cached.send_changelog())

    asyncio.run(scenario())
    name = cached.table.changelog_topic.get_topic_name()  # type: ignore[attr-defined]
    assert [(partition, [(k, v) for k, v, _ in records]) for _, partition, records in kafka.batches] == [
        (2, [(b'"a"', b'["a"]'), (b'"b"', b'["b"]'), (b'"c"', None)]),
        (3, [(b'"x"', b'["x"]')]),
        (3, [(b'"y"', b'["y"]')]),
    ]  # fmt: skip
    assert {(tp.topic, tp.partition): offset for tp, offset in store.offsets.items()} == {(name, 2): 2, (name, 3): 1}


def test_records_a_failed_send_left_are_kept_in_order_for_the_next_call(tmp_path: Path) -> None:
    cached, _, kafka = cached_table(tmp_path)
    cached.table.partition_for_key = lambda key: 2 if key != "b" else 1  # type: ignore[method-assign]

    async def scenario() -> None:
        written(cached, "a", "b", "-c")
        kafka.fail_at = 1
        with pytest.raises(KafkaTimeoutError, match="unreachable"):
            await cached.send_changelog()
        assert len(cached.outgoing) == 1  # partition 2's batch went out; partition 1's waits
        written(cached, "d")
        kafka.fail_at = None
        sends = await cached.send_changelog()
        assert len(sends) == 2 and len(cached.outgoing) == 0

    asyncio.run(scenario())
    assert [(partition, key, value) for _, partition, key, value in kafka.sent()] == [
        (2, b'"a"', b'["a"]'), (2, b'"c"', None), (1, b'"b"', b'["b"]'), (2, b'"d"', b'["d"]'),
    ]  # fmt: skip


def test_a_rebalance_sends_what_is_left_before_the_partitions_go(tmp_path: Path) -> None:
    cached, _, kafka = cached_table(tmp_path)
    cached.table.partition_for_key = lambda key: 1  # type: ignore[method-assign]

    async def scenario() -> None:
        written(cached, "a")
        cached.records.put(1, None)
        cached.slices.put((1, 3600), None)
        await cached.app.on_partitions_revoked.send(set())  # as faust's rebalance does, after its own flush
        assert len(cached.outgoing) == 0 and len(cached.records) == len(cached.slices) == 0

    asyncio.run(scenario())
    assert [key for _, _, key, _ in kafka.sent()] == [b'"a"']


def test_without_a_running_producer_nothing_is_sent_or_dropped(tmp_path: Path) -> None:
    cached, producer, kafka = cached_table(tmp_path)
    cached.table.partition_for_key = lambda key: 0  # type: ignore[method-assign]
    producer.started = False
    written(cached, "a")
    assert asyncio.run(cached.send_changelog()) == []
    assert len(cached.outgoing) == 1 and kafka.batches == []


def test_a_table_partitioned_by_the_producer_is_refused(tmp_path: Path) -> None:
    app = create_app(load_settings(store="memory://", namespace="unit", data_dir=tmp_path))
    table = app.Table("probe", default=None, key_type=str, partitions=4, use_partitioner=True)
    with pytest.raises(ValueError, match="partitioned like their source topic"):
        StateTable(app, table, record_entries=10, slice_entries=10)


class Event:
    """An event of partition 2 (a class: the acting event is held by a weak reference)."""

    message = SimpleNamespace(topic="t", partition=2)


def test_inside_a_batch_values_go_straight_to_the_partitions_database_and_faust_reads_them_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A RocksDB store: reads and writes in a batch use the partition's database directly; faust's own path (the
    web views' reads, outside a batch) finds the same bytes, and the changelog gets what faust's hooks note."""
    settings = load_settings(namespace="unit", data_dir=tmp_path)
    app = create_app(settings)
    table = app.Table("probe-direct", default=None, key_type=bytes, value_type=bytes, partitions=4,
                      options=app.table_options())  # fmt: skip
    cached = StateTable(app, table, record_entries=10, slice_entries=10)
    table.data._db_for_partition(2)  # type: ignore[attr-defined]  # opened at recovery in a worker
    assert internals.partition_db(table, 2) is not None, "the partition's database is open"
    record = CityRecord(gen=5, newest=1.5e9, latest=b"\x80")
    piece = Slice(3600)
    event = Event()

    def faust_path(*args: Any) -> None:
        raise AssertionError("faust's store path taken inside a batch")

    with monkeypatch.context() as patched, internals.acting_for(event):
        for name in ("_get", "_set", "_del", "_contains"):
            patched.setattr(table.data, name, faust_path)
        cached.put_record(7, record)
        cached.put_slice(7, 3600, piece)
        cached.delete_slice(7, 7200)  # absent: no tombstone
        cached.clear()
        assert cached.record(7) == record and cached.slice(7, 3600) == piece
        cached.delete_slice(7, 3600)
        assert cached.slice(7, 3600) is None
    cached.clear()
    assert table.get(record_key(7)) == encode_record(record), "faust's path reads what was written directly"
    assert cached.record(7) == record and table.get(slice_key(7, 3600)) is None
    topic: Any = table.changelog_topic
    assert all(r.topic == topic.get_topic_name() for r in cached.outgoing.pending)
    for stored in (b"c:7", encode_record(record)):  # faust's hooks would note the same bytes
        assert topic.prepare_key(stored, table.key_serializer, None, {}) == (stored, {})  # type: ignore[attr-defined]
        assert topic.prepare_value(stored, table.value_serializer, None, {}) == (stored, {})  # type: ignore[attr-defined]
    assert [(r.key, r.value, r.partition) for r in cached.outgoing.pending] == [
        (b"c:7", encode_record(record), 2),
        (b"s:7:3600", encode_slice(piece), 2),
        (b"s:7:3600", None, 2),
    ]


def test_a_record_is_cached_once_its_city_comes_round_within_the_caches_size(tmp_path: Path) -> None:
    """Written once, a city's record stays out of the cache; written again within ``record_entries`` uncached
    writes, it goes in, and from then on every write replaces the cached record (never one the table lacks)."""
    app = create_app(load_settings(store="memory://", namespace="unit", data_dir=tmp_path))
    table = app.Table("probe-admit", default=None, key_type=bytes, value_type=bytes, partitions=4)
    cached = StateTable(app, table, record_entries=3, slice_entries=3)
    table.partition_for_key = lambda key: 0  # type: ignore[method-assign]
    first, second, third = CityRecord(gen=1), CityRecord(gen=2), CityRecord(gen=3)

    cached.put_record(7, first)
    assert cached.record_to_change(7) == (first, True), "not cached: read from the table, the caller's own"
    cached.put_record(7, second)
    assert cached.record_to_change(7) == (second, False), "came round: cached, shared"
    cached.put_record(7, third)
    assert cached.record_to_change(7)[0] is third, "a cached city's record is replaced at every write"

    for city in (1, 2, 3, 4, 1):  # city 1 comes round after four other uncached writes: too late for a cache of 3
        cached.put_record(city, first)
    assert cached.record_to_change(1)[1], "evicted from the cities written once before it came round"
    cached.put_record(4, second)
    assert cached.record_to_change(4) == (second, False)
    cached.clear()
    cached.put_record(4, third)
    assert cached.record_to_change(4) == (third, True), "a rebalance forgets the cities written once too"
