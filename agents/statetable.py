"""The pipeline's state table: one RocksDB-backed faust table of bytes, with bounded caches of decoded values.

The table holds each city's record (``c:{city}``) and its cold slices (``s:{city}:{start}``) in the binary
format of :mod:`weatherstream.core.codec`. Keeping both in one table puts them in one changelog partition, in
the order they were written, which is what the state machine's crash safety relies on
(:mod:`weatherstream.core.aggregator`). Two bounded caches (least recently used go first) keep decoded
records and slices, so a busy city is decoded once and not per batch. Every write goes to the table first
and then to its cache, so a cache never holds anything the table does not; both are emptied whenever
partitions are assigned or revoked (another worker may have changed the table meanwhile). Cached values are
shared, not copied: the pipeline never changes a value it read (:class:`~weatherstream.core.aggregator.CityWindows`
works on a copy).

A record is cached when its city is written a second time within the last ``record_entries`` writes of
records that were not cached (a city already cached stays so). A city that comes round less often than that
would be evicted before its next batch anyway: with 100,000 stations every write evicted a record written about
a thousand cities before, and freeing it (its memory no longer in the CPU's caches) took 5.6 µs per event in
the profile; the garbage collector also scanned and promoted records that were gone soon after.

Inside a batch it reads and writes the stored bytes in the partition's RocksDB database directly
(:func:`weatherstream.internals.partition_db`): faust's path to one value cost about four times the read.
Outside a batch (the web views) and with a memory store (tests) it goes through the table.

It also sends the table's changelog records itself. faust sends one per write through its producer buffer,
each wrapped in a pending-message future with sensor and offset callbacks, which cost more than the write.
Here a write only adds its record (the bytes faust would send) to the table's outgoing records
(:mod:`weatherstream.outgoing`); :meth:`StateTable.send_changelog` hands them to the producer as one batch per
partition and records the table's persisted offset (what a restarted worker reads the changelog from) once per
partition instead of once per record. Records a failed send or a failed batch left behind go out with the next
call, or, at a rebalance, before the partitions go.

A batch's input offsets may be committed only once the table changes it made are in the changelog, so
the caller waits for the futures :meth:`StateTable.send_changelog` returns. (faust commits after a
producer flush that can return while table writes still wait in its buffer; a crash then lost those writes
for every copy rebuilt from the changelog, while their input was never delivered again.)
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from faust.types import AppT, TableT
from faust.types.enums import ProcessingGuarantee

from weatherstream import internals
from weatherstream.core.codec import (
    RECORD_PREFIX,
    CityRecord,
    city_of_record_key,
    decode_record,
    decode_slice,
    encode_record,
    encode_slice,
    record_key,
    slice_key,
)
from weatherstream.core.slices import Slice
from weatherstream.outgoing import RecordBatches, SentBatch

logger = logging.getLogger(__name__)

_MISSING = object()
K = TypeVar("K")
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    """At most ``max_entries`` values; the least recently used go first."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[K, V | None] = OrderedDict()

    def __len__(self) -> int:
        return len(self.entries)

    def peek(self, key: K) -> object:
        """The cached value (None: known to be absent), or ``_MISSING``; not counted as a use."""
        return self.entries.get(key, _MISSING)

    def take(self, key: K) -> bool:
        """Remove ``key``; whether it was there."""
        return self.entries.pop(key, _MISSING) is not _MISSING

    def get(self, key: K, load: Callable[[], V | None]) -> V | None:
        value = self.entries.get(key, _MISSING)
        if value is _MISSING:
            value = load()
            self.put(key, value)
        else:
            self.entries.move_to_end(key)
        return value  # type: ignore[return-value]

    def put(self, key: K, value: V | None) -> None:
        self.entries[key] = value
        self.entries.move_to_end(key)
        if len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    def clear(self) -> None:
        self.entries.clear()


class StateTable:
    """City records and cold slices in ``table`` (bytes keys and values), cached decoded.

    Reads and writes inside a batch go to the partition of the event being handled (see
    ``weatherstream.internals.acting_for``); reads outside one (the web views) find the key in any partition open here.
    """

    def __init__(self, app: AppT, table: TableT, *, record_entries: int, slice_entries: int) -> None:
        if app.conf.processing_guarantee == ProcessingGuarantee.EXACTLY_ONCE or table.use_partitioner:
            raise ValueError(
                f"table {table.name}: StateTable sends changelog records itself, for at-least-once processing "
                "and tables partitioned like their source topic; use a plain faust table for anything else"
            )
        self.table = table
        self.app = app
        self.records: LRUCache[int, CityRecord] = LRUCache(record_entries)
        self.written_once: LRUCache[int, None] = LRUCache(record_entries)  # cities written lately and not cached
        self.slices: LRUCache[tuple[int, int], Slice] = LRUCache(slice_entries)
        self.outgoing = RecordBatches(app, f"table {table.name} changelog")  # the writes' records, until sent

        def on_key_set(key: Any, value: Any) -> None:  # replaces faust's, which sends a record per write
            self._changed(key, value, self.table.value_serializer)  # type: ignore[attr-defined]

        def on_key_del(key: Any) -> None:  # a tombstone, as faust's on_key_del sends it (a JSON null is a value)
            self._changed(key, None, "raw")

        table.on_key_set = on_key_set  # type: ignore[method-assign]
        table.on_key_del = on_key_del  # type: ignore[method-assign]
        app.on_partitions_assigned.connect(self._forget)
        app.on_partitions_revoked.connect(self._revoked)

    # -- reads ----------------------------------------------------------------------------------------
    def record(self, city_id: int) -> CityRecord | None:
        def load() -> CityRecord | None:
            value = self._get(record_key(city_id))
            return decode_record(value) if value is not None else None

        return self.records.get(city_id, load)

    def record_to_change(self, city_id: int) -> tuple[CityRecord | None, bool]:
        """The city's record for a batch that changes it, and whether the record is the caller's own: read from the
        database and not cached (a batch that fails half way leaves nothing changed behind; writing it caches the
        new one), or the cached one, shared (copy before changing it)."""
        cached = self.records.peek(city_id)
        if cached is not _MISSING:
            return cached, False  # type: ignore[return-value]
        value = self._get(record_key(city_id))
        return (decode_record(value) if value is not None else None), True

    def slice(self, city_id: int, start: int) -> Slice | None:
        def load() -> Slice | None:
            value = self._get(slice_key(city_id, start))
            return decode_slice(value) if value is not None else None

        return self.slices.get((city_id, start), load)

    def records_in(self, partition: int) -> Iterator[tuple[int, bytes]]:
        """(city, encoded record) of every city in ``partition`` of this worker (read from RocksDB, uncached)."""
        for key, value in internals.partition_items(self.table, partition, RECORD_PREFIX):
            yield city_of_record_key(key), value

    # -- writes (inside a batch) ------------------------------------------------------------------------
    def put_record(self, city_id: int, record: CityRecord) -> None:
        self._set(record_key(city_id), encode_record(record))
        if self.records.peek(city_id) is not _MISSING or self._admitted(city_id):
            self.records.put(city_id, record)

    def _admitted(self, city_id: int) -> bool:
        """Whether the written record of a city that is not cached goes into the cache: only if the city was written
        within the last ``record_entries`` such writes (see the module's docstring)."""
        if self.written_once.take(city_id):
            return True
        self.written_once.put(city_id, None)
        return False

    def put_slice(self, city_id: int, start: int, s: Slice) -> None:
        self._set(slice_key(city_id, start), encode_slice(s))
        self.slices.put((city_id, start), s)

    def delete_slice(self, city_id: int, start: int) -> None:
        self._delete(slice_key(city_id, start))
        self.slices.put((city_id, start), None)

    # -- the stored bytes ---------------------------------------------------------------------------------
    # Inside a batch, straight from and to the partition's database (faust's path costs more than the read);
    # anywhere else (the web views, a memory store in tests) through the table.
    def _get(self, key: bytes) -> bytes | None:
        db, _ = self._acting_db()
        value: bytes | None = db.get(key) if db is not None else self.table.get(key)
        return value

    def _set(self, key: bytes, value: bytes) -> None:
        db, partition = self._acting_db()
        if db is None:
            self.table[key] = value  # the table's on_key_set notes the changelog record
            return
        db[key] = value
        self._noted(key, value, partition)

    def _delete(self, key: bytes) -> None:
        db, partition = self._acting_db()
        if db is None:
            if key in self.table:
                del self.table[key]  # the table's on_key_del notes the tombstone
            return
        if db.get(key) is not None:
            db.delete(key)
            self._noted(key, None, partition)

    def _acting_db(self) -> tuple[Any, int | None]:
        """The database of the partition of the event being handled (None: use the table), and that partition."""
        partition = internals.acting_partition()
        return internals.partition_db(self.table, partition), partition

    # -- rebalances and the changelog ---------------------------------------------------------------------
    async def _forget(self, *args: Any, **kwargs: Any) -> None:
        logger.info("rebalance: forgetting %d cached records and %d cached slices of table %s", len(self.records),
                    len(self.slices), self.table.name)  # fmt: skip
        self.clear()

    async def _revoked(self, *args: Any, **kwargs: Any) -> None:
        """Before the partitions go, send what a batch that failed half way left unsent (faust flushes its
        producer at this point for the same reason): later, it would land behind the next owner's records."""
        try:
            await asyncio.gather(*await self.send_changelog())
        except Exception as exc:  # noqa: BLE001 - the batch was never committed: its input is handled again
            logger.warning("rebalance: changelog records of table %s not sent (%s: %s); the next owner handles "
                           "their input again", self.table.name, type(exc).__name__, exc)  # fmt: skip
        await self._forget()

    def clear(self) -> None:
        self.records.clear()
        self.slices.clear()
        self.written_once.clear()

    def _changed(self, key: Any, value: Any, value_serializer: Any) -> None:
        """Note the changelog record of a write, serialized as faust would send it, in write order."""
        table: Any = self.table  # faust's TableT and ChannelT declare less than Table and Topic have
        topic: Any = table.changelog_topic
        key_bytes, headers = topic.prepare_key(key, table.key_serializer, None, {})
        value_bytes, headers = topic.prepare_value(value, value_serializer, None, headers)
        self.outgoing.add(topic.get_topic_name(), key_bytes, value_bytes, partition=table.partition_for_key(key),
                          headers=headers)  # fmt: skip

    def _noted(self, key: bytes, value: bytes | None, partition: int | None) -> None:
        """Note the changelog record of a direct write to ``partition``: the stored bytes themselves, which is what
        faust's serializers make of bytes keys and values (see :meth:`_changed`)."""
        self.outgoing.add(self.changelog_name, key, value, partition=partition)

    @functools.cached_property
    def changelog_name(self) -> str:
        return str(self.table.changelog_topic.get_topic_name())

    async def send_changelog(self) -> list[Any]:
        """Send the changelog records of the writes since the last call, in write order, one producer batch per
        partition (:mod:`weatherstream.outgoing`); returns their futures (done once the broker has them, raising
        if it never does).

        Records whose send raises stay for the next call (or the next rebalance). Without a running producer
        (faust's agent test context never produces) nothing is sent, and nothing dropped.
        """
        batches = await self.outgoing.send()
        last: dict[int, SentBatch] = {}
        for batch in batches:
            last[batch.partition] = batch
        for batch in last.values():
            batch.future.add_done_callback(functools.partial(self._persisted, batch))
        return [batch.future for batch in batches]

    def _persisted(self, batch: SentBatch, _: Any = None) -> None:
        """The broker has the partition's newest records of a batch: a restarted worker whose RocksDB has them
        need not read the changelog up to them (faust reads the offset back at recovery)."""
        sent = batch.future
        if sent.cancelled() or sent.exception() is not None:
            return  # the batch fails and is handled again; the offset stays where it was
        tp = sent.result().topic_partition
        self.table.data.set_persisted_offset(tp, batch.last_offset())  # type: ignore[attr-defined]
