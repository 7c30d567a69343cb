"""Records the worker sends, handed to the producer as one batch per topic partition.

aiokafka's ``send`` makes a future per record and runs its partitioner (in Python) and accumulator for each;
its batch API (``create_batch``, ``send_batch``) does that once per batch: about 19 against 2 us of CPU per
record in a one-off measurement (50,000 records of 450 bytes to the local broker, one process); a drain of the
pipeline went from 474 to 415 us per event with this and two smaller changes (docs/benchmarks.md). The
pipeline sends an observation for every input event and a changelog record for every city a batch changes, so
it gathers them here and sends them in batches: :meth:`RecordBatches.add` serializes a record into the open
producer batch of its partition, :meth:`RecordBatches.send` hands every partition's batch to the producer
(more than one if the records pass its batch size) and returns them.

A record goes to the partition ``producer.send`` would give it (the producer's partitioner, remembered per key
for at most :data:`REMEMBERED_KEYS` keys; the topic's partition count in the producer's metadata is looked up
at each send, and the keys are forgotten when it changes, so a topic that gains partitions uses them from the
batch after), unless the caller names one. Records of one partition keep the order they were
added in, also across calls. A batch the producer refuses (its buffer full, a timeout) stays, with everything
after it, for the next call, which sends them first. A record added with ``track=True`` gets a future of its
own, done once its batch is.

Without a running producer (faust's agent test context never starts one), records added with a faust topic go
one by one through the topic's own ``send`` (which the test context captures); others wait for a producer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from faust.types import AppT

from weatherstream import internals

logger = logging.getLogger(__name__)

#: keys whose partition is remembered per topic (a few MB at most; a worker of 100,000 stations misses some)
REMEMBERED_KEYS = 20_000


@dataclass
class _Record:
    topic: Any  # a topic name (key and value are bytes), or a faust topic while there is no producer
    key: Any
    value: Any
    headers: Any
    partition: int | None
    tracked: asyncio.Future[Any] | None


@dataclass
class SentBatch:
    """One batch handed to the producer: its topic partition, how many records, and its future (the first
    record's metadata once the broker has the batch; raises if it never does)."""

    topic: str
    partition: int
    records: int
    future: asyncio.Future[Any]

    def last_offset(self) -> int:
        """The offset of the batch's last record (once its future is done without error)."""
        return int(self.future.result().offset) + self.records - 1


@dataclass
class _Built:
    topic: str
    partition: int
    builder: Any
    tracked: list[asyncio.Future[Any]] = field(default_factory=list)


class RecordBatches:
    """Records gathered during a batch and sent as one producer batch per partition (see the module docstring).

    ``what`` names them in the log (e.g. ``pipeline outputs``).
    """

    def __init__(self, app: AppT, what: str) -> None:
        self.app = app
        self.what = what
        self.pending: list[_Record] = []  # not in a producer batch yet: no producer, or the topic's partitions unknown
        self.building: dict[tuple[str, int], _Built] = {}  # the open producer batch of each partition
        self.unsent: list[_Built] = []  # producer batches in the order they were opened, not handed over yet
        self.partitions: dict[str, tuple[int, dict[Any, int]]] = {}  # topic -> (partition count, key -> partition)
        self.choosers: dict[str, Callable[[Any], int]] = {}  # topic -> the producer's choice of a key's partition
        self.used: set[str] = set()  # topics whose records were given a partition since the last send
        self.waiting_bytes = 0  # keys and values added since the last send

    def __len__(self) -> int:
        return len(self.pending) + sum(built.builder.record_count() for built in self.unsent)

    def add(self, topic: Any, key: Any, value: Any, *, partition: int | None = None, headers: Any = None,
            track: bool = False) -> asyncio.Future[Any] | None:  # fmt: skip
        """Add a record for the next :meth:`send`. ``topic``: a faust topic (key and value are serialized with its
        schema) or a topic name (key and value are bytes). With ``track``, returns a future done once the broker
        has the record (raising if it never does)."""
        tracked = asyncio.get_running_loop().create_future() if track else None
        producer = internals.kafka_producer(self.app)
        if producer is None:  # kept as given, for the topic's own send
            self.pending.append(_Record(topic, key, value, headers, partition, tracked))
            return tracked
        name, key, value, headers = self._serialized(topic, key, value, headers)
        if partition is None:
            if name not in self.partitions:  # the topic's partitions are looked up by send()
                self.pending.append(_Record(name, key, value, headers, None, tracked))
                return tracked
            partition = self._partition_of(producer, name, key)
            self.used.add(name)
        self._append(producer, name, partition, key, value, headers, tracked)
        return tracked

    def _append(self, producer: Any, topic: str, partition: int, key: bytes | None, value: bytes | None,
                headers: list[tuple[str, bytes]], tracked: asyncio.Future[Any] | None) -> None:  # fmt: skip
        self.waiting_bytes += len(key or b"") + len(value or b"")
        built = self.building.get((topic, partition))
        if built is None or built.builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
            if built is not None:
                built.builder.close()
            built = self.building[topic, partition] = _Built(topic, partition, producer.create_batch())
            self.unsent.append(built)
            built.builder.append(timestamp=None, key=key, value=value, headers=headers)  # the first always fits
        if tracked is not None:
            built.tracked.append(tracked)

    async def send(self) -> list[SentBatch]:
        """Hand what was added (and what an earlier call could not send) to the producer; the batches sent."""
        producer = internals.kafka_producer(self.app)
        if producer is None:
            await self._send_one_by_one()
            return []
        for topic in self.used | {record.topic for record in self.pending if record.partition is None}:
            await self._check_partitions(producer, topic)
        self.used.clear()
        pending, self.pending = self.pending, []
        for record in pending:
            partition = record.partition
            if partition is None:
                partition = self._partition_of(producer, record.topic, record.key)
            self._append(producer, record.topic, partition, record.key, record.value, record.headers, record.tracked)
        for built in self.building.values():
            built.builder.close()  # nothing else goes into it; the producer sends it without lingering
        self.building.clear()
        self.waiting_bytes = 0
        sent: list[SentBatch] = []
        while self.unsent:
            built = self.unsent[0]
            future = await producer.send_batch(built.builder, built.topic, partition=built.partition)
            self.unsent.pop(0)
            batch = SentBatch(built.topic, built.partition, built.builder.record_count(), future)
            future.add_done_callback(functools.partial(self._settled, batch=batch, tracked=built.tracked))
            sent.append(batch)
        return sent

    @staticmethod
    def _serialized(topic: Any, key: Any, value: Any, headers: Any) -> tuple[str, Any, Any, list[tuple[str, bytes]]]:
        """(topic name, key bytes, value bytes, headers) of a record for ``topic`` (a faust topic, or a name)."""
        if isinstance(topic, str):
            name = topic
        else:
            headers = topic.prepare_headers(headers)
            key, headers = topic.prepare_key(key, None, None, headers)
            value, headers = topic.prepare_value(value, None, None, headers)
            name = topic.get_topic_name()
        if isinstance(headers, Mapping):
            headers = list(headers.items())
        return name, _compact(key), _compact(value), headers or []

    async def _check_partitions(self, producer: Any, topic: str) -> None:
        """Forget the partitions chosen for ``topic``'s keys if its partition count changed (e.g. partitions were
        added to scale out): the producer now chooses differently."""
        partitions = await producer.partitions_for(topic)  # waits for the topic's metadata if need be
        count, _ = self.partitions.get(topic, (0, {}))
        if len(partitions) != count:
            self.partitions[topic] = (len(partitions), {})
        self.choosers[topic] = internals.key_partitioner(producer, topic)

    def _partition_of(self, producer: Any, topic: str, key: bytes | None) -> int:
        _, known = self.partitions[topic]
        partition = known.get(key)
        if partition is None:
            if len(known) >= REMEMBERED_KEYS:
                known.clear()
            partition = known[key] = self.choosers[topic](key)
        return partition

    def _settled(self, future: asyncio.Future[Any], batch: SentBatch, tracked: list[asyncio.Future[Any]]) -> None:
        exc: BaseException | None = asyncio.CancelledError() if future.cancelled() else future.exception()
        if exc is not None:
            logger.warning("%s: a batch of %d records for %s[%d] was not delivered: %s: %s", self.what,
                           batch.records, batch.topic, batch.partition, type(exc).__name__, exc)  # fmt: skip
        for one in tracked:
            if one.done():
                continue
            if exc is None:
                one.set_result(future.result())
            else:
                one.set_exception(exc)

    async def _send_one_by_one(self) -> None:
        """Without a running producer: each record through its topic's own send (see the module docstring)."""
        pending, self.pending = self.pending, []
        for i, record in enumerate(pending):
            if isinstance(record.topic, str):
                self.pending.append(record)  # serialized while the producer ran: kept for when it runs again
                continue
            try:
                extra = {} if record.headers is None else {"headers": record.headers}
                sent = await record.topic.send(key=record.key, value=record.value, **extra)
            except BaseException:
                self.pending.extend(pending[i:])
                raise
            if record.tracked is not None and not record.tracked.done():
                if isinstance(sent, asyncio.Future):
                    sent.add_done_callback(functools.partial(_copy_outcome, target=record.tracked))
                else:
                    record.tracked.set_result(sent)


def _compact(data: Any) -> Any:
    """``data`` in a bytes object of its own size: orjson 3.13 (faust's JSON serializer) leaves about 4 KiB
    allocated behind every bytes object it returns: 40 MB for 10,000 keys held until a batch is sent."""
    return memoryview(data).tobytes() if isinstance(data, bytes) else data


def _copy_outcome(source: asyncio.Future[Any], target: asyncio.Future[Any]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())  # type: ignore[arg-type]
    else:
        target.set_result(source.result())
