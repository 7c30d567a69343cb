"""Read the alerts topic as a subscriber: follow it live, or read everything it holds now."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from models import Alert
from weatherstream import kafka_clients
from weatherstream.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertFilter:
    city_id: int | None = None
    kinds: frozenset[str] = frozenset()

    def __call__(self, alert: Alert) -> bool:
        return (self.city_id is None or alert.city_id == self.city_id) and (not self.kinds or alert.kind in self.kinds)


async def _consumer(settings: Settings, topic: str, from_beginning: bool) -> AIOKafkaConsumer:
    """A started consumer of ``topic``.

    Raises:
        weatherstream.kafka_clients.KafkaUnavailableError: no connection (the message says why).
    """
    consumer = kafka_clients.consumer(
        settings,
        topic,
        group_id=f"{settings.namespace}.subscriber.{uuid.uuid4().hex[:8]}",  # a fresh reader: no shared offsets
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )
    await kafka_clients.start(consumer, settings)
    return consumer


async def follow_alerts(settings: Settings, *, from_beginning: bool = False,
                        accept: Callable[[Alert], bool] = AlertFilter()) -> AsyncIterator[Alert]:  # fmt: skip
    """Yield alerts as they arrive (forever; cancel to stop)."""
    consumer = await _consumer(settings, settings.topic_alerts, from_beginning)
    try:
        async for record in consumer:
            try:
                alert = Alert.loads(record.value)
            except Exception as exc:  # noqa: BLE001 - a foreign record on the topic is skipped, not fatal
                logger.warning("skipping a record on %s that is not an alert: %s", record.topic, exc)
                continue
            if accept(alert):
                yield alert
    finally:
        await consumer.stop()


async def read_all_alerts(settings: Settings) -> list[Alert]:
    """Every alert on the topic up to its current end."""
    consumer = await _consumer(settings, settings.topic_alerts, from_beginning=True)
    out: list[Alert] = []
    try:
        while not consumer.assignment():
            await asyncio.sleep(0.05)
        partitions = list(consumer.assignment())
        end = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(Alert.loads(r.value) for r in records)
            for tp in list(remaining):
                if await consumer.position(TopicPartition(tp.topic, tp.partition)) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return out


def format_alert(alert: Alert) -> str:
    """One readable line (a historical alert's message says so itself)."""
    when = dt.datetime.fromtimestamp(alert.observed_at, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%MZ")
    city = f"{alert.city_name or '?'} ({alert.city_id})"
    return f"{when}  {alert.state.upper():8} {alert.severity:8} {city:28} {alert.kind:15} {alert.message}"
