"""Records sent in batches (weatherstream/outgoing.py): partitions as the producer chooses them, order per
partition, tracked records, refused batches kept for the next call, and the test context's way without a producer.

(That the broker gets the same records as from faust's own send is checked in
tests/integration/test_output_topic.py.)
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from tests.fake_kafka import FakeFaustProducer, FakeKafkaProducer
from weatherstream import outgoing
from weatherstream.app import WeatherStreamApp, create_app
from weatherstream.outgoing import RecordBatches
from weatherstream.settings import load_settings


def app_with(tmp_path: Path, kafka: FakeKafkaProducer, started: bool = True) -> WeatherStreamApp:
    app = create_app(load_settings(store="memory://", namespace="unit", data_dir=tmp_path))
    app.producer = FakeFaustProducer(kafka, started)  # type: ignore[assignment]
    return app


def test_records_go_to_the_producers_partition_in_order_one_batch_per_partition(tmp_path: Path) -> None:
    kafka = FakeKafkaProducer(partitions=4)
    app = app_with(tmp_path, kafka)
    batches = RecordBatches(app, "test")
    keys = [str(city).encode() for city in (7, 8, 9, 7, 10, 8, 7)]

    async def scenario() -> list[Any]:
        for i, key in enumerate(keys):
            batches.add(app.weather_topics.deadletter, key, b"v%d" % i)
        return await batches.send()

    sent = asyncio.run(scenario())
    ordered = [0, 1, 2, 3]
    want = {}
    for i, key in enumerate(keys):
        want.setdefault(kafka.partitioner(key, ordered, ordered), []).append((key, b"v%d" % i))
    got = {partition: [(k, v) for k, v, _ in records] for _, partition, records in kafka.batches}
    assert got == want and len(kafka.batches) == len(want)  # one batch per partition, records in the order added
    assert [(b.topic, b.partition, b.records) for b in sent] == [
        ("unit.deadletter", partition, len(records)) for _, partition, records in kafka.batches
    ]
    assert len(batches) == 0


def test_topic_records_are_serialized_with_the_topics_schema(tmp_path: Path) -> None:
    kafka = FakeKafkaProducer(partitions=1)
    app = app_with(tmp_path, kafka)
    batches = RecordBatches(app, "test")

    async def scenario() -> None:
        batches.add(app.weather_topics.observations, 2950159, {"city_id": 2950159, "temp_c": 3.5})
        batches.add("unit.raw-bytes", b"k", b"v", partition=0, headers=[("source", b"test")])
        await batches.send()

    asyncio.run(scenario())
    assert sorted(kafka.batches) == [  # (the order of different partitions' batches is not kept)
        ("unit.observations", 0, [(b"2950159", b'{"city_id":2950159,"temp_c":3.5}', [])]),
        ("unit.raw-bytes", 0, [(b"k", b"v", [("source", b"test")])]),
    ]


def test_a_full_builder_starts_another_batch_for_the_same_partition(tmp_path: Path) -> None:
    kafka = FakeKafkaProducer(partitions=1, batch_records=2)
    app = app_with(tmp_path, kafka)
    batches = RecordBatches(app, "test")

    async def scenario() -> list[Any]:
        for i in range(5):
            batches.add("t", b"k", b"%d" % i, partition=0)
        return await batches.send()

    sent = asyncio.run(scenario())
    assert [[v for _, v, _ in records] for *_, records in kafka.batches] == [[b"0", b"1"], [b"2", b"3"], [b"4"]]
    assert [b.last_offset() for b in sent] == [1, 3, 4]


def test_a_refused_batch_and_the_ones_after_it_go_first_next_time(tmp_path: Path) -> None:
    kafka = FakeKafkaProducer(partitions=1, batch_records=1)
    app = app_with(tmp_path, kafka)
    batches = RecordBatches(app, "test")

    async def scenario() -> None:
        for value in (b"a", b"b", b"c"):
            batches.add("t", b"k", value, partition=0)
        kafka.fail_at = 1
        with pytest.raises(KafkaTimeoutError):
            await batches.send()
        assert len(batches) == 2
        batches.add("t", b"k", b"d", partition=0)
        kafka.fail_at = None
        assert len(await batches.send()) == 3

    asyncio.run(scenario())
    assert [value for *_, value in kafka.sent()] == [b"a", b"b", b"c", b"d"]


def test_a_tracked_record_is_done_with_its_batch_and_a_lost_batch_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kafka = FakeKafkaProducer(partitions=2)
    kafka.deliver = False
    app = app_with(tmp_path, kafka)
    batches = RecordBatches(app, "test outputs")

    async def scenario() -> tuple[asyncio.Future[Any], asyncio.Future[Any]]:
        ok = batches.add("t", b"a", b"1", partition=0, track=True)
        lost = batches.add("t", b"b", b"2", partition=1, track=True)
        assert ok is not None and lost is not None
        await batches.send()
        assert not ok.done() and not lost.done()  # sent, not yet confirmed by the broker
        kafka.futures[0].set_result(type("Metadata", (), {"offset": 41})())
        kafka.futures[1].set_exception(KafkaTimeoutError("no broker answered"))
        await asyncio.sleep(0)  # the done callbacks run
        return ok, lost

    with caplog.at_level(logging.WARNING, logger="weatherstream.outgoing"):
        ok, lost = asyncio.run(scenario())
    assert ok.result().offset == 41 and isinstance(lost.exception(), KafkaTimeoutError)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["test outputs: a batch of 1 records for t[1] was not delivered: KafkaTimeoutError: "
                        "KafkaTimeoutError: no broker answered"]  # fmt: skip


def test_partitions_are_chosen_again_when_a_topic_gains_partitions(tmp_path: Path) -> None:
    kafka = FakeKafkaProducer(partitions=2)
    app = app_with(tmp_path, kafka)
    batches = RecordBatches(app, "test")
    keys = [str(city).encode() for city in range(40)]

    async def send_all() -> None:
        for key in keys:
            batches.add("t", key, b"v")
        await batches.send()

    asyncio.run(send_all())
    kafka.partitions = set(range(8))  # as the producer's metadata has it from now on
    asyncio.run(send_all())  # records added before this send looked at the metadata: the old partitions
    kafka.batches.clear()
    asyncio.run(send_all())
    ordered = list(range(8))
    assert sorted((partition, key) for _, partition, key, _ in kafka.sent()) == sorted(
        (kafka.partitioner(key, ordered, ordered), key) for key in keys
    )


def test_the_partitions_it_remembers_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outgoing, "REMEMBERED_KEYS", 10)
    kafka = FakeKafkaProducer(partitions=3)
    app = app_with(tmp_path, kafka)
    batches = RecordBatches(app, "test")

    async def scenario() -> None:
        for city in range(35):
            batches.add("t", str(city).encode(), b"v")
        await batches.send()

    asyncio.run(scenario())
    assert 0 < len(batches.partitions["t"][1]) <= 10
    ordered = [0, 1, 2]
    assert all(partition == kafka.partitioner(key, ordered, ordered) for _, partition, key, _ in kafka.sent())


def test_without_a_running_producer_topic_records_go_through_the_topics_send_and_bytes_wait(tmp_path: Path) -> None:
    kafka = FakeKafkaProducer()
    app = app_with(tmp_path, kafka, started=False)
    batches = RecordBatches(app, "test")
    captured: list[dict[str, Any]] = []

    async def send(**kwargs: Any) -> None:
        captured.append(kwargs)

    app.weather_topics.alerts.send = send  # type: ignore[method-assign]

    async def scenario() -> asyncio.Future[Any] | None:
        tracked = batches.add(app.weather_topics.alerts, b"7", b"alert", track=True)
        batches.add("unit.changelog", b"k", b"waits", partition=0)
        assert await batches.send() == []
        return tracked

    tracked = asyncio.run(scenario())
    assert captured == [{"key": b"7", "value": b"alert"}] and kafka.batches == []
    assert tracked is not None and tracked.done()
    assert [r.value for r in batches.pending] == [b"waits"]  # records given as bytes wait for a producer
