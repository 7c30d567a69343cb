"""Output topics (weatherstream/app.py): a record the broker never takes is logged, as faust's send logs it."""

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from weatherstream.app import OutputTopic, create_app
from weatherstream.settings import load_settings


class Producer:
    """Stands in for the worker's producer: keeps what it was given, and the futures it returned."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []
        self.futures: list[asyncio.Future[Any]] = []

    async def send(self, *args: Any) -> asyncio.Future[Any]:
        self.sent.append(args)
        self.futures.append(asyncio.get_running_loop().create_future())
        return self.futures[-1]


def test_a_record_the_broker_never_took_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(load_settings(store="memory://", namespace="unit", data_dir=tmp_path))
    producer = Producer()

    async def started() -> Producer:
        return producer

    app.maybe_start_producer = started  # type: ignore[method-assign]
    topic = app.weather_topics.deadletter
    assert isinstance(topic, OutputTopic)

    async def scenario() -> tuple[Any, Any]:
        ok = await topic.send(key=b"7", value=b"fine")
        lost = await topic.send(key=b"8", value=b"lost")
        producer.futures[0].set_result("metadata")
        producer.futures[1].set_exception(KafkaTimeoutError("no broker answered"))
        await asyncio.sleep(0)  # the done callbacks run
        return ok, lost

    with caplog.at_level(logging.WARNING, logger="weatherstream.app"):
        ok, lost = asyncio.run(scenario())
    assert ok.result() == "metadata" and isinstance(lost.exception(), KafkaTimeoutError)
    assert [args[:3] for args in producer.sent] == [
        ("unit.deadletter", b"7", b"fine"),
        ("unit.deadletter", b"8", b"lost"),
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "a record for unit.deadletter was not delivered: KafkaTimeoutError: KafkaTimeoutError: no broker answered"
    ]
