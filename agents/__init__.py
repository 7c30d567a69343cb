"""Faust agents: one module per agent, each saying in its header what it consumes and emits."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from weatherstream.app import WeatherStreamApp


def register_all(app: WeatherStreamApp) -> None:
    """Register the agents of the worker's role (``WEATHERSTREAM_WORKER_ROLE``) on ``app``."""
    from agents import pipeline, sink

    role = app.ws_settings.worker_role
    if role in ("all", "pipeline"):
        pipeline.register(app)
    if role in ("all", "sink"):
        sink.register(app)
