"""A bounded write-through cache in front of a table that only this worker's agent writes.

Reading a table is a RocksDB get plus a JSON decode; the pipeline reads the same city state and the
same panes over and over (a 24 h window closes every hour and reads 96 panes). Every write goes to the
table first and then to the cache, so the cache never holds anything the table does not. It is
emptied whenever partitions are assigned or revoked: after a rebalance the table may have been
changed by another worker (and recovered from the changelog), and the cache knows nothing of that.
Values are shared, not copied: the rules in :mod:`weatherstream.core` never mutate their inputs.

It also sends the table's changelog records itself. faust sends one per write through its producer buffer,
each wrapped in a pending-message future with sensor and offset callbacks; under live input a batch
writes about two table keys per event (the city's state and a pane), and that wrapping cost more than the
write (a drain in 20-event batches: see docs/benchmarks.md). Here a write only notes its partition, key and
value; :meth:`CachedTable.send_changelog` serializes them as faust would (the same bytes) and hands them
to the producer, and records the table's persisted offset (what a restarted worker reads the changelog
from) once per partition instead of once per record. Records a failed send or a failed batch left behind go
out with the next call, or, at a rebalance, before the partitions go. (faust's own table statistics, its
``/stats/`` page, no longer count these writes; nothing in the project reads them.)

A batch's input offsets may be committed only once the table changes it made are in the changelog, so
the caller waits for the futures :meth:`CachedTable.send_changelog` returns. (faust commits after a
producer flush that can return while table writes still wait in its buffer; a crash then lost those writes
for every copy rebuilt from the changelog, a standby, a new owner, a worker whose RocksDB folder was lost,
while their input was never delivered again.)
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from faust.types import AppT, TableT
from faust.types.enums import ProcessingGuarantee

logger = logging.getLogger(__name__)

_MISSING = object()
_DELETED = object()


class CachedTable:
    """Write-through cache of at most ``max_entries`` keys of ``table`` (least recently used go first)."""

    def __init__(self, app: AppT, table: TableT, max_entries: int) -> None:
        if app.conf.processing_guarantee == ProcessingGuarantee.EXACTLY_ONCE or table.use_partitioner:
            raise ValueError(
                f"table {table.name}: CachedTable sends changelog records itself, for at-least-once processing "
                "and tables partitioned like their source topic; use a plain faust table for anything else"
            )
        self.table = table
        self.max_entries = max_entries
        self.entries: OrderedDict[Any, Any] = OrderedDict()
        self.app = app
        self.pending: list[tuple[int | None, Any, Any]] = []  # (partition, key, value or _DELETED)

        def on_key_set(key: Any, value: Any) -> None:  # replaces faust's, which sends a record per write
            self.pending.append((table.partition_for_key(key), key, value))

        def on_key_del(key: Any) -> None:
            self.pending.append((table.partition_for_key(key), key, _DELETED))

        table.on_key_set = on_key_set  # type: ignore[method-assign]
        table.on_key_del = on_key_del  # type: ignore[method-assign]
        app.on_partitions_assigned.connect(self._forget)
        app.on_partitions_revoked.connect(self._revoked)

    async def _forget(self, *args: Any, **kwargs: Any) -> None:
        logger.info("rebalance: forgetting %d cached entries of table %s", len(self.entries), self.table.name)
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

    async def send_changelog(self) -> list[Any]:
        """Send the changelog records of the writes since the last call, in write order; returns their
        futures (done once the broker has them, raising if it never does).

        Records whose send raises stay for the next call (or the next rebalance). Without a running producer
        (faust's agent test context never produces) nothing is sent.
        """
        producer = self.app.producer
        if not self.pending or not producer.started:
            return []
        pending, self.pending = self.pending, []
        table: Any = self.table  # faust's TableT and ChannelT declare less than Table and Topic have
        topic: Any = table.changelog_topic
        name = topic.get_topic_name()
        sends = []
        last: dict[int | None, Any] = {}  # never None: the constructor refuses partitioner tables
        for i, (partition, key, value) in enumerate(pending):
            try:
                key_bytes, headers = topic.prepare_key(key, table.key_serializer, None, {})
                if value is _DELETED:  # a tombstone, as faust's on_key_del sends it (a JSON null is a value)
                    value_bytes, headers = topic.prepare_value(None, "raw", None, headers)
                else:
                    value_bytes, headers = topic.prepare_value(value, table.value_serializer, None, headers)
                sent = await producer.send(name, key_bytes, value_bytes, partition, None, headers)
            except BaseException:
                self.pending[:0] = pending[i:]  # kept in order, ahead of any written since
                raise
            sends.append(sent)
            last[partition] = sent
        for sent in last.values():
            sent.add_done_callback(self._persisted)
        return sends

    def _persisted(self, sent: Any) -> None:
        """The broker has the partition's newest record of a batch: a restarted worker whose RocksDB has it
        need not read the changelog up to it (faust reads the offset back at recovery)."""
        if sent.cancelled() or sent.exception() is not None:
            return  # the batch fails and is handled again; the offset stays where it was
        metadata = sent.result()
        self.table.data.set_persisted_offset(metadata.topic_partition, metadata.offset)  # type: ignore[attr-defined]

    def clear(self) -> None:
        self.entries.clear()

    def _remember(self, key: Any, value: Any) -> None:
        self.entries[key] = value
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    def get(self, key: Any) -> Any:
        value = self.entries.get(key, _MISSING)
        if value is _MISSING:
            value = self.table.get(key)
            self._remember(key, value)
        else:
            self.entries.move_to_end(key)
        return value

    def set(self, key: Any, value: Any) -> None:
        self.table[key] = value
        self._remember(key, value)

    def delete(self, key: Any) -> None:
        """Delete ``key`` from the table (a no-op if the cache knows it is absent)."""
        if self.entries.get(key, _MISSING) is not None and key in self.table:
            del self.table[key]
        self._remember(key, None)
