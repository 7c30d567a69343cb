"""Faust agents: one module per agent, each saying in its header what it consumes and emits."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agents.pipeline import PipelineParts
    from weatherstream.app import WeatherStreamApp


def register_all(app: WeatherStreamApp) -> PipelineParts | None:
    """Register the agents of the worker's role (``WEATHERSTREAM_WORKER_ROLE``) on ``app``; returns the
    pipeline's parts (None for a sink-only worker)."""
    from agents import pipeline, sink

    role = app.ws_settings.worker_role
    parts = None
    if role in ("all", "pipeline"):
        parts = pipeline.register(app, app.ws_settings, app.ws_topics)
        app.ws_pipeline = parts.agent  # type: ignore[attr-defined]  # for faust's agent test context
    if role in ("all", "sink"):
        sink.register(app)
    return parts
