"""Faust agents: one module per agent, each saying in its header what it consumes and emits."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from weatherstream.app import WeatherStreamApp


def register_all(app: WeatherStreamApp) -> None:
    """Register every agent of weatherstream on ``app``."""
    from agents import pipeline, sink

    pipeline.register(app)
    sink.register(app)
