"""The order of a batch's steps: each city's outputs are queued once its state is written, and an alert goes out
before the next city is applied (not behind the rest of the batch)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agents import pipeline
from agents.pipeline import CitySends
from weatherstream.app import create_app
from weatherstream.settings import load_settings


class Message:
    partition = 0


class Event:
    message = Message()


class Output:
    def __init__(self, sends: CitySends) -> None:
        self.sends = sends

    def to_send(self) -> CitySends:
        return self.sends


def test_an_alert_is_sent_before_the_next_city_is_applied(tmp_path: Path) -> None:
    settings = load_settings(store="memory://", namespace="unit", data_dir=tmp_path)
    app = create_app(settings)
    steps = pipeline.register(app, settings, app.weather_topics).pipeline
    log: list[str] = []
    alert = {"id": "a1"}
    batch = {city: [(Event(), None)] for city in (1, 2, 3)}

    async def group_by_city(events: Any) -> dict[int, list[Any]]:
        return batch

    def apply_city(city_id: int, items: Any) -> Output:
        log.append(f"apply {city_id}")
        return Output(CitySends([], [], [], [alert] if city_id == 2 else []))

    def queue_outputs(city_id: int, out: CitySends) -> list[Any]:
        log.append(f"queue {city_id}")
        return []

    async def send_outputs(events: Any) -> None:
        log.append("send")

    async def send_changelog() -> list[Any]:
        return []

    steps.group_by_city = group_by_city  # type: ignore[method-assign]
    steps.apply_city = apply_city  # type: ignore[assignment,method-assign]
    steps.write_city = lambda city_id, partition, out: None  # type: ignore[assignment,method-assign]
    steps.queue_outputs = queue_outputs  # type: ignore[method-assign]
    steps.send_outputs = send_outputs  # type: ignore[method-assign]
    steps.state.send_changelog = send_changelog  # type: ignore[method-assign]
    steps.tables_closing = lambda: False  # type: ignore[method-assign]

    asyncio.run(steps.handle_batch([event for items in batch.values() for event, _ in items]))

    assert log == ["apply 1", "queue 1", "apply 2", "queue 2", "send", "apply 3", "queue 3", "send"]
