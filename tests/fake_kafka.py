"""Stand-ins for the producers of faust and aiokafka, for unit tests of code that sends batches
(:mod:`weatherstream.outgoing`): records are kept as sent; a send can be made to fail."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka.errors import KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner
from faust.types import TP


class FakeBuilder:
    """aiokafka's ``BatchBuilder`` as the sender uses it: takes ``limit`` records, then refuses (returns None)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
        self.closed = False

    def append(self, *, timestamp: Any, key: bytes | None, value: bytes | None, headers: Any) -> object | None:
        if self.closed or len(self.records) >= self.limit:
            return None
        self.records.append((key, value, list(headers)))
        return object()

    def close(self) -> None:
        self.closed = True

    def record_count(self) -> int:
        return len(self.records)


class FakeKafkaProducer:
    """aiokafka's producer as :mod:`weatherstream.outgoing` uses it. ``batches``: (topic, partition, records) in the
    order they were handed over; ``fail_at``: from that many batches on, ``send_batch`` raises; ``deliver``: False
    leaves the batches' futures pending (``futures``) for the test to settle."""

    def __init__(self, partitions: int = 4, batch_records: int = 1000) -> None:
        self.partitions = set(range(partitions))
        self.batch_records = batch_records
        self.batches: list[tuple[str, int, list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]]] = []
        self.futures: list[asyncio.Future[Any]] = []
        self.fail_at: int | None = None
        self.deliver = True
        self.next_offset: dict[tuple[str, int], int] = {}
        self.partitioner = DefaultPartitioner()

    def create_batch(self) -> FakeBuilder:
        return FakeBuilder(self.batch_records)

    async def send_batch(self, builder: FakeBuilder, topic: str, *, partition: int) -> asyncio.Future[Any]:
        if self.fail_at is not None and len(self.batches) >= self.fail_at:
            raise KafkaTimeoutError("the broker is unreachable")
        self.batches.append((topic, partition, list(builder.records)))
        offset = self.next_offset.get((topic, partition), 0)
        self.next_offset[topic, partition] = offset + builder.record_count()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.deliver:
            future.set_result(SimpleNamespace(topic_partition=TP(topic, partition), offset=offset))
        self.futures.append(future)
        return future

    async def partitions_for(self, topic: str) -> set[int]:
        return set(self.partitions)

    @property
    def _partitioner(self) -> DefaultPartitioner:  # what weatherstream.internals.key_partitioner reads
        return self.partitioner

    @property
    def _metadata(self) -> SimpleNamespace:
        return SimpleNamespace(partitions_for_topic=lambda topic: set(self.partitions),
                               available_partitions_for_topic=lambda topic: set(self.partitions))  # fmt: skip

    def sent(self) -> list[tuple[str, int, bytes | None, bytes | None]]:
        """Every record handed over: (topic, partition, key, value)."""
        return [(topic, partition, key, value) for topic, partition, records in self.batches
                for key, value, _ in records]  # fmt: skip


class FakeFaustProducer:
    """faust's producer as far as :func:`weatherstream.internals.kafka_producer` looks at it."""

    def __init__(self, kafka: FakeKafkaProducer, started: bool = True) -> None:
        self._producer = kafka
        self.started = started
