"""The worker's output topics send records straight to the producer: the same bytes as faust's own send."""

import asyncio
import time
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer

from models import Alert, city_key
from weatherstream.app import OutputTopic, create_app
from weatherstream.core.normalize import normalize
from weatherstream.outgoing import RecordBatches
from weatherstream.settings import Settings
from weatherstream.topics import create_namespace_topics

PAYLOAD = b'{"id": 2950159, "dt": 1795550000, "name": "Berlin", "main": {"temp": 3.5, "pressure": 1012}}'


def test_an_output_topic_sends_what_fausts_send_would(settings: Settings) -> None:
    app = create_app(settings)
    observations = app.weather_topics.observations
    alerts = app.weather_topics.alerts
    assert isinstance(observations, OutputTopic) and isinstance(alerts, OutputTopic)
    obs = normalize(PAYLOAD, now=time.time(), units="metric", source="test", max_bytes=65536)
    alert = Alert(alert_id="a1", seq=1, city_id=obs.city_id, kind="heat", severity="warning", state="open",
                  observed_at=obs.observed_at, incident_start=obs.observed_at, detected_at=time.time(),
                  message="test")  # fmt: skip

    async def scenario() -> list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]:
        await create_namespace_topics(settings)
        await app.producer.start()
        try:
            sent = []
            for topic, key, value in ((observations, obs.city_id, obs), (alerts, city_key(obs.city_id), alert)):
                # faust's own send, then the output topic's: the broker must get the same record twice
                sent.append(await faust.Topic.send(topic, key=key, value=value, headers=[("source", b"test")]))
                sent.append(await topic.send(key=key, value=value, headers=[("source", b"test")]))
            metadata = await asyncio.gather(*sent)
        finally:
            await app.producer.stop()
        assert all(m.offset >= 0 for m in metadata)
        consumer = AIOKafkaConsumer(settings.topic_observations, settings.topic_alerts,
                                    bootstrap_servers=settings.bootstrap_servers, auto_offset_reset="earliest",
                                    group_id=f"{settings.namespace}-test")  # fmt: skip
        await consumer.start()
        got = []
        try:
            async with asyncio.timeout(60):
                while len(got) < 4:
                    for records in (await consumer.getmany(timeout_ms=1000)).values():
                        got.extend((r.topic, r.partition, r.key, r.value, list(r.headers)) for r in records)
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(scenario())
    by_topic: dict[str, list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]]] = {}
    for topic, partition, key, value, headers in got:
        by_topic.setdefault(topic, []).append((partition, key, value, headers))
    for name in (settings.topic_observations, settings.topic_alerts):
        faust_sent, direct_sent = by_topic[name]
        assert faust_sent == direct_sent  # partition, key, value bytes and headers
        assert faust_sent[1] == b"2950159" and faust_sent[3] == [("source", b"test")]
    assert b'"temp_c":3.5' in by_topic[settings.topic_observations][0][2]


def test_records_sent_in_batches_are_what_fausts_send_would_send(settings: Settings) -> None:
    """RecordBatches (weatherstream/outgoing.py) against the broker: same partition, key, value and headers as
    faust's own send, for cities spread over the partitions, and the offsets its batches report."""
    app = create_app(settings)
    observations = app.weather_topics.observations
    payloads = [PAYLOAD.replace(b"2950159", str(city).encode()) for city in (2950159, 2643743, 5128581, 524901)]
    cities = [normalize(p, now=time.time(), units="metric", source="test", max_bytes=65536) for p in payloads]

    async def scenario() -> tuple[list[Any], dict[tuple[int, bytes | None], list[tuple[int, bytes | None]]]]:
        await create_namespace_topics(settings)
        await app.producer.start()
        try:
            own = [await faust.Topic.send(observations, key=obs.city_id, value=obs) for obs in cities]
            await asyncio.gather(*own)
            batches = RecordBatches(app, "test")
            for obs in cities:
                batches.add(observations, obs.city_id, obs)
            sent = await batches.send()
            await asyncio.gather(*(b.future for b in sent))
        finally:
            await app.producer.stop()
        consumer = AIOKafkaConsumer(settings.topic_observations, bootstrap_servers=settings.bootstrap_servers,
                                    auto_offset_reset="earliest", group_id=f"{settings.namespace}-batches")  # fmt: skip
        await consumer.start()
        got: dict[tuple[int, bytes | None], list[tuple[int, bytes | None]]] = {}
        try:
            async with asyncio.timeout(60):
                while sum(len(v) for v in got.values()) < 2 * len(cities):
                    for records in (await consumer.getmany(timeout_ms=1000)).values():
                        for r in records:
                            got.setdefault((r.partition, r.key), []).append((r.offset, r.value))
        finally:
            await consumer.stop()
        return sent, got

    sent, got = asyncio.run(scenario())
    assert len(got) == len(cities) and len({partition for partition, _ in got}) > 1  # spread over partitions
    for (_, key), copies in got.items():
        assert len(copies) == 2 and copies[0][1] == copies[1][1], key  # the same bytes both ways
    last_offsets = {}
    for (partition, _), copies in got.items():
        last_offsets[partition] = max(last_offsets.get(partition, -1), copies[1][0])
    assert {b.partition: b.last_offset() for b in sent} == last_offsets
