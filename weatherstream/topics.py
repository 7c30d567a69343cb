"""Create and remove a namespace's Kafka topics explicitly (never by broker auto-creation).

Faust requires a table's source topic and its changelog to have the same partition count, so the
project creates its topics itself with ``WEATHERSTREAM_PARTITIONS`` partitions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from weatherstream import kafka_clients
from weatherstream.errors import WeatherStreamError
from weatherstream.settings import Settings

#: Largest Kafka message the worker sends: a city's state (one changelog record) holds the windows a joined
#: batch closes for it until their delivery is confirmed (up to ~1,000 aggregates at an hourly cadence),
#: more than the broker's 1 MB default.
STATE_MESSAGE_MAX_BYTES = 8 * 1024 * 1024
CHANGELOG_CONFIGS = {"cleanup.policy": "compact", "max.message.bytes": str(STATE_MESSAGE_MAX_BYTES)}

logger = logging.getLogger(__name__)

#: The topics every run owns, as suffixes of its namespace.
TOPIC_SUFFIXES = ("raw", "observations", "aggregates", "alerts", "deadletter", "ticks")


class TopicAdminError(WeatherStreamError):
    """Creating, listing or deleting topics failed."""


async def _admin(settings: Settings) -> AIOKafkaAdminClient:
    """A started admin client.

    Raises:
        weatherstream.kafka_clients.KafkaUnavailableError: no connection (the message says why).
    """
    client = kafka_clients.admin(settings, request_timeout_ms=15000)
    await kafka_clients.start(client, settings)
    return client


async def create_topics(
    settings: Settings,
    names: Iterable[str],
    partitions: int | None = None,
    wait_s: float = 30.0,
    configs: dict[str, str] | None = None,
) -> list[str]:
    """Create ``names`` with ``partitions`` (default: the setting) partitions; existing ones are kept.

    Returns only when every new partition has a leader, so producers can use the topics at once.

    Returns:
        The topics that were newly created.
    """
    count = partitions or settings.partitions
    topic_configs = dict(configs or {})
    if settings.topic_min_insync_replicas is not None:
        topic_configs["min.insync.replicas"] = str(settings.topic_min_insync_replicas)
    admin = await _admin(settings)
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                name=n,
                num_partitions=count,
                replication_factor=settings.topic_replication_factor,
                topic_configs=dict(topic_configs),
            )
            for n in names
            if n not in existing
        ]
        if new:
            response = await admin.create_topics(new)
            for topic, code, *rest in getattr(response, "topic_errors", []):
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise TopicAdminError(f"creating topic {topic} failed with Kafka error {code}: {rest}")
            created = [t.name for t in new]
            await _wait_until_ready(admin, created, count, wait_s)
            logger.info("created topics %s with %d partitions", created, count)
    finally:
        await admin.close()
    return created


async def _wait_until_ready(admin: AIOKafkaAdminClient, topics: list[str], partitions: int, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        described = await admin.describe_topics(topics)
        ready = {
            d["topic"]
            for d in described
            if d.get("error_code", 0) == 0
            and len(d.get("partitions", [])) == partitions
            and all(p.get("leader", -1) >= 0 for p in d["partitions"])
        }
        if ready >= set(topics):
            return
        if time.monotonic() > deadline:
            raise TopicAdminError(
                f"topics {sorted(set(topics) - ready)} have no leader {wait_s:.0f} s after creation; "
                "check the broker log"
            )
        await asyncio.sleep(0.2)


async def create_namespace_topics(settings: Settings) -> list[str]:
    """Create every topic of the settings' namespace (``{ns}.raw`` ... ``{ns}.deadletter``)."""
    return await create_topics(settings, [settings.topic(s) for s in TOPIC_SUFFIXES])


async def create_changelog_topics(settings: Settings, names: Iterable[str]) -> list[str]:
    """Create tables' changelog topics (compacted, one partition per source partition) before faust
    starts, so a table's first write never races the topic's creation."""
    return await create_topics(settings, names, configs=CHANGELOG_CONFIGS)


async def delete_namespace_topics(settings: Settings, wait_s: float = 30.0) -> list[str]:
    """Delete every topic whose name starts with ``{namespace}.``; returns the deleted names."""
    admin = await _admin(settings)
    try:
        prefix = f"{settings.namespace}."
        doomed = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed)
            # Deletion finishes asynchronously; wait so a caller can recreate the same names at once.
            deadline = time.monotonic() + wait_s
            while set(await admin.list_topics()) & set(doomed):
                if time.monotonic() > deadline:
                    raise TopicAdminError(
                        f"topics {doomed} were still listed {wait_s:.0f} s after deletion; check the broker log"
                    )
                await asyncio.sleep(0.2)
            logger.info("deleted topics %s", doomed)
        return doomed
    finally:
        await admin.close()


async def namespace_topic_counts(settings: Settings) -> dict[str, dict[str, int]]:
    """Per topic of the namespace: its partition count and how many messages it holds now."""
    from aiokafka import TopicPartition

    admin = await _admin(settings)
    try:
        prefix = f"{settings.namespace}."
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        described = await admin.describe_topics(names) if names else []
    finally:
        await admin.close()
    partitions = {d["topic"]: [p["partition"] for p in d.get("partitions", [])] for d in described}
    consumer = kafka_clients.consumer(settings, enable_auto_commit=False)
    await kafka_clients.start(consumer, settings)
    try:
        tps = [TopicPartition(t, p) for t, ps in partitions.items() for p in ps]
        begin = await consumer.beginning_offsets(tps) if tps else {}
        end = await consumer.end_offsets(tps) if tps else {}
    finally:
        await consumer.stop()
    result: dict[str, dict[str, int]] = {}
    for topic, ps in partitions.items():
        messages = sum(end[TopicPartition(topic, p)] - begin[TopicPartition(topic, p)] for p in ps)
        result[topic] = {"partitions": len(ps), "messages": messages}
    return result
