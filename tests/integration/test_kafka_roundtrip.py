"""A message produced to a fresh topic on the real local broker is consumed back."""

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from weatherstream.settings import Settings
from weatherstream.topics import create_namespace_topics, create_topics, delete_namespace_topics


def test_message_round_trip_through_a_fresh_topic(settings: Settings) -> None:
    topic = settings.topic("roundtrip")

    async def scenario() -> list[tuple[bytes | None, bytes | None]]:
        assert await create_topics(settings, [topic], partitions=3) == [topic]
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
        await producer.start()
        try:
            for i in range(5):
                await producer.send_and_wait(topic, key=b"2950159", value=f'{{"n": {i}}}'.encode())
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=settings.bootstrap_servers,
            auto_offset_reset="earliest",
            group_id=f"{settings.namespace}-test",
        )
        await consumer.start()
        got = []
        try:
            async with asyncio.timeout(30):
                while len(got) < 5:
                    batch = await consumer.getmany(timeout_ms=1000)
                    for records in batch.values():
                        got.extend((r.key, r.value) for r in records)
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(scenario())
    assert got == [(b"2950159", f'{{"n": {i}}}'.encode()) for i in range(5)]  # one key: one partition, in order


def test_namespace_topics_are_created_with_the_partition_count_and_removed(settings: Settings) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    async def scenario() -> tuple[set[str], dict[str, int], list[str], set[str]]:
        created = set(await create_namespace_topics(settings))
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
        await admin.start()
        try:
            described = await admin.describe_topics(sorted(created))
            counts = {d["topic"]: len(d["partitions"]) for d in described}
        finally:
            await admin.close()
        deleted = await delete_namespace_topics(settings)
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
        await admin.start()
        try:
            remaining = {t for t in await admin.list_topics() if t.startswith(settings.namespace + ".")}
        finally:
            await admin.close()
        return created, counts, deleted, remaining

    created, counts, deleted, remaining = asyncio.run(scenario())
    assert created == {
        settings.topic(s) for s in ("raw", "observations", "aggregates", "alerts", "deadletter", "ticks")
    }
    assert set(counts.values()) == {settings.partitions}
    assert set(deleted) == created
    assert remaining == set()
