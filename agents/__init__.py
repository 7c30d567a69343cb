"""Faust agents: one module per agent, each saying in its header what it consumes and emits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agents.pipeline import PipelineParts
    from agents.sink import SinkParts
    from weatherstream.app import WeatherStreamApp


@dataclass(frozen=True)
class WorkerParts:
    """What a worker of this role runs: the pipeline's parts and the sink's (None where the role has none)."""

    pipeline: PipelineParts | None
    sink: SinkParts | None


def register_all(app: WeatherStreamApp) -> WorkerParts:
    """Register the agents of the worker's role (``WEATHERSTREAM_WORKER_ROLE``) on ``app``."""
    from agents import pipeline, sink

    settings, topics = app.settings, app.weather_topics
    role = settings.worker_role
    return WorkerParts(
        pipeline=pipeline.register(app, settings, topics) if role in ("all", "pipeline") else None,
        sink=sink.register(app, settings, topics) if role in ("all", "sink") else None,
    )
