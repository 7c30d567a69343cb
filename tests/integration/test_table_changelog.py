"""The pipeline's state table sends its changelog records itself (agents/statetable.py): the same records
faust's own changelog path sends, a tombstone for a delete, and the persisted offset recorded."""

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiokafka import AIOKafkaConsumer
from faust.tables.base import Collection
from faust.types import TP

from agents.statetable import StateTable
from weatherstream import internals
from weatherstream.app import create_app
from weatherstream.settings import Settings
from weatherstream.topics import create_changelog_topics

PARTITION = 3


class Event:
    """What a table write takes its partition from: the RocksDB store reads it from the event being handled."""

    message = SimpleNamespace(topic="probe-source", partition=PARTITION)


EVENT: Any = Event()
KEY, VALUE = b"s:7:1795550400", b"\x02\x92\xce\x6a\xfa\xc5\x00\x90"


def test_the_state_table_sends_what_fausts_changelog_would(settings: Settings, tmp_path: Path) -> None:
    app = create_app(settings.model_copy(update={"data_dir": tmp_path}))
    table = app.Table("probe", default=None, key_type=bytes, value_type=bytes, partitions=settings.partitions,
                      options=app.table_options())  # fmt: skip
    cached = StateTable(app, table, record_entries=10, slice_entries=10)
    # faust checks the event's topic against the changelog's partition count, with a running consumer
    table.partition_for_key = lambda key: PARTITION  # type: ignore[method-assign]
    changelog = table.changelog_topic.get_topic_name()

    async def scenario() -> list[tuple[int, Any, Any, list[Any]]]:
        await create_changelog_topics(settings, [changelog])
        await app.producer.start()
        try:
            # faust's own path: a write, then a delete, as its Table.on_key_set and on_key_del send them
            theirs = [
                Collection.send_changelog(table, PARTITION, KEY, VALUE),
                Collection.send_changelog(table, PARTITION, KEY, None, value_serializer="raw"),
            ]
            await app.producer.flush()
            await asyncio.gather(*theirs)
            assert len(cached.outgoing) == 0  # faust's path bypasses the cache's hooks
            with internals.acting_for(EVENT):  # the cache's path: the table's hooks note the writes...
                table[KEY] = VALUE
                del table[KEY]
            assert len(cached.outgoing) == 2
            ours = await cached.send_changelog()  # ...and this sends them, as one producer batch
            assert len(cached.outgoing) == 0 and len(ours) == 1
            (batch,) = await asyncio.gather(*ours)  # the metadata of the batch's first record
        finally:
            await app.producer.stop()
        # the persisted offset is the batch's last record's (the delete)
        assert table.data.persisted_offset(TP(changelog, PARTITION)) == batch.offset + 1  # type: ignore[attr-defined]
        consumer = AIOKafkaConsumer(changelog, bootstrap_servers=settings.bootstrap_servers,
                                    auto_offset_reset="earliest", group_id=f"{settings.namespace}-test")  # fmt: skip
        await consumer.start()
        got: list[tuple[int, Any, Any, list[Any]]] = []
        try:
            async with asyncio.timeout(60):
                while len(got) < 4:
                    for records in (await consumer.getmany(timeout_ms=1000)).values():
                        got.extend((r.partition, r.key, r.value, list(r.headers)) for r in records)
        finally:
            await consumer.stop()
        return sorted(got, key=lambda r: r[0])

    got = asyncio.run(scenario())
    faust_set, faust_delete, our_set, our_delete = got
    assert our_set == faust_set and our_delete == faust_delete  # partition, key, value bytes, headers
    assert our_set[0] == PARTITION and our_set[1] == KEY and our_set[2] == VALUE
    assert our_delete[2] is None  # a tombstone, so compaction removes the key
