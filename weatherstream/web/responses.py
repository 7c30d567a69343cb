"""How the web views answer: JSON bodies made safe for JSON, error bodies, and the Cassandra reads they wait on."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Callable
from typing import Any

from faust.web import Response, View

from weatherstream.db import connect_settings
from weatherstream.settings import Settings


class CassandraReader:
    """A lazily opened Cassandra session for the views; queries run in a thread (the driver blocks)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.session: Any = None
        self.lock = asyncio.Lock()

    async def run(self, query: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        async with self.lock:
            if self.session is None:
                _, self.session = await loop.run_in_executor(None, connect_settings, self.settings)
        return await loop.run_in_executor(None, query, self.session, self.settings.keyspace, *args)


def clean(value: Any) -> Any:
    """JSON-safe: aware datetimes as ISO 8601, dates as ISO, non-finite floats as null."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def respond(view: View, body: Any, status: int = 200) -> Response:
    """``body`` as JSON (the security headers come from the response hook, as on every response)."""
    return view.json(clean(body), status=status)


def problem(view: View, status: int, message: str) -> Response:
    return respond(view, {"error": message}, status)


def unreachable(view: View, exc: Exception) -> Response:
    """The answer when Cassandra could not be read."""
    return problem(view, 503, f"Cassandra is not reachable: {type(exc).__name__}")
