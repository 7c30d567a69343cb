"""The worker's read-only web API, health checks and Prometheus endpoint (faust's web server).

``/api/cities/{id}`` and its aggregates are answered by the worker that owns the city's partition (its
RocksDB tables hold the live open windows): any other worker forwards the request there. Closed windows,
alerts and the list of cities come from Cassandra. No endpoint changes state; every response carries
security headers (faust's built-in pages and error answers too); nothing here sends a wildcard CORS header.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from faust.exceptions import SameNode
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest

from weatherstream.app import WeatherStreamApp
from weatherstream.core import aggregator as windows
from weatherstream.core.aggregate import Row
from weatherstream.db import connect_settings
from weatherstream.settings import Settings
from weatherstream.sinks.cassandra import read_aggregates, read_alerts, read_latest
from weatherstream.times import parse_utc

logger = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}
#: the dashboard's files (in the package: it works offline, nothing comes from a CDN)
STATIC = {"index.html": "text/html", "city.html": "text/html", "dashboard.js": "application/javascript",
          "style.css": "text/css"}  # fmt: skip
MAX_AGE_LABELS = 1000  # cities exported with their own label, at most (bounded label set)

CITY_AGE = Gauge("weatherstream_city_last_observation_age_seconds",
                 "Seconds since the newest observation of each city this worker owns.", ["city_id"])  # fmt: skip
TABLE_KEYS = Gauge("weatherstream_table_keys", "Keys in this worker's active table partitions (estimate).", ["table"])
CONSUMER_LAG = Gauge("weatherstream_consumer_lag_messages", "Messages not yet consumed, by topic and partition.",
                     ["topic", "partition"])  # fmt: skip


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


def _clean(value: Any) -> Any:
    """JSON-safe: aware datetimes as ISO 8601, dates as ISO, non-finite floats as null."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def respond(view: View, body: Any, status: int = 200) -> Response:
    """``body`` as JSON (the security headers come from the response hook, as on every response)."""
    return view.json(_clean(body), status=status)


def _time(text: str | None, default: dt.datetime) -> dt.datetime:
    return parse_utc(text) if text else default


async def _add_security_headers(request: Any, response: Any) -> None:
    """aiohttp's ``on_response_prepare`` hook: the security headers on every response, also faust's built-in
    pages (``/router/``, ``/table/``) and the server's own 404 and 405 answers."""
    for header, value in SECURITY_HEADERS.items():
        response.headers.setdefault(header, value)


def register(app: WeatherStreamApp, aggregator: windows.Aggregator | None = None) -> None:
    """Add the views to ``app``. The city views need the pipeline's tables (``aggregator`` given); a sink-only
    worker serves health, readiness and metrics."""
    settings = app.ws_settings
    web_app = getattr(app.web, "web_app", None)  # the aiohttp application of faust's web driver
    if web_app is not None:
        web_app.on_response_prepare.append(_add_security_headers)
    tables = getattr(app, "ws_tables", {})
    city_states, panes = tables.get("city_state"), tables.get("window_panes")
    db = CassandraReader(settings)
    sink = getattr(app, "ws_sink_progress", None)  # the sink's own consumer (agents/sink.py), where it runs

    @app.page("/health")
    async def health(self: View, request: Request) -> Response:
        return respond(self, {"status": "ok"})

    @app.page("/ready")
    async def ready(self: View, request: Request) -> Response:
        assigned = set(app.consumer.assignment()) if app.consumer is not None else set()
        if sink is not None:
            assigned |= sink.assignment()
        if app.rebalancing or not assigned:
            return respond(self, {"ready": False, "rebalancing": bool(app.rebalancing)}, 503)
        return respond(self, {"ready": True, "partitions": len(assigned)})

    @app.page("/metrics")
    async def prometheus_metrics(self: View, request: Request) -> Response:
        now = time.time()
        if city_states is not None and panes is not None:
            CITY_AGE.clear()
            states = list(city_states.items())
            for city_id, value in sorted(states, key=lambda kv: kv[0])[:MAX_AGE_LABELS]:
                latest = (value or {}).get("latest")
                if latest:
                    CITY_AGE.labels(str(city_id)).set(max(0.0, now - float(latest["observed_at"])))
            TABLE_KEYS.labels("city_state").set(len(states))
            TABLE_KEYS.labels("window_panes").set(sum(1 for _ in panes.keys()))
        # Only the partitions this worker reads now: one that moved to another worker is reported there.
        CONSUMER_LAG.clear()
        if app.consumer is not None:
            for tp in sorted(app.consumer.assignment()):
                committed = app.consumer._committed_offset.get(tp)  # type: ignore[attr-defined]  # faust keeps it here
                try:
                    highwater = app.consumer.highwater(tp)
                except Exception as exc:  # noqa: BLE001 - not known yet (just assigned)
                    logger.debug("no highwater for %s yet: %s", tp, exc)
                    highwater = None
                if highwater is not None:
                    CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - (committed or 0)))
        if sink is not None:
            for tp, lag in sink.lag().items():
                CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
        return self.bytes(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    if city_states is None or panes is None or aggregator is None:
        return
    register_city_views(app, db, aggregator, city_states, panes)


def register_city_views(app: WeatherStreamApp, db: CassandraReader, aggregator: windows.Aggregator,
                        city_states: Any, panes: Any) -> None:  # fmt: skip
    """The JSON API over cities, windows and alerts (on workers that run the pipeline)."""

    def problem(view: View, status: int, message: str) -> Response:
        return respond(view, {"error": message}, status)

    def city_id_of(text: str) -> int | None:
        return int(text) if text.isdigit() and len(text) <= 12 else None

    async def routed(view: View, request: Request, city_id: int) -> Response | None:
        """The owner's answer if another worker owns ``city_id``; None when this worker does."""
        try:
            return await app.router.route_req(city_states.name, city_id, view.web, request)
        except SameNode:
            return None

    def open_windows(city_id: int, header: dict[str, Any] | None) -> list[dict[str, Any]]:
        """Live aggregates of the city's windows that have data and are not final yet."""
        if not header:
            return []
        out = []

        def pane(start: int) -> list[Row] | None:
            return panes.get(f"{city_id}:{start}")

        for kind, keys in header.get("open", {}).items():
            for key in keys:
                window = aggregator.spec.window(kind, key, header.get("tz", 0))
                rows = aggregator.window_rows(window, pane)
                if rows:
                    values = aggregator.aggregate(window, rows)
                    values.update(city_id=city_id, kind=kind, window_id=window.wid, final=False)
                    out.append(values)
        return sorted(out, key=lambda v: (v["kind"], v["window_start"]))

    pages = {name: resources.files("weatherstream.web").joinpath("static", name).read_bytes() for name in STATIC}

    def page(view: View, name: str) -> Response:
        return view.bytes(pages[name], content_type=STATIC[name])

    @app.page("/")
    async def dashboard(self: View, request: Request) -> Response:
        return page(self, "index.html")

    @app.page("/city/{city_id}")
    async def city_page(self: View, request: Request, city_id: str) -> Response:
        return page(self, "city.html")

    @app.page("/static/{name}")
    async def static(self: View, request: Request, name: str) -> Response:
        if name not in STATIC or name.endswith(".html"):
            return problem(self, 404, "no such file")
        return page(self, name)

    @app.page("/api/cities")
    async def cities(self: View, request: Request) -> Response:
        try:
            rows = await db.run(read_latest)
        except Exception as exc:  # noqa: BLE001 - said to the caller, not raised
            return problem(self, 503, f"Cassandra is not reachable: {type(exc).__name__}")
        now = time.time()
        for row in rows:
            row["age_s"] = round(now - row["observed_at"].timestamp(), 1) if row.get("observed_at") else None
            row.pop("bucket", None)
        return respond(self, {"cities": sorted(rows, key=lambda r: (r.get("city_name") or "", r["city_id"]))})

    async def at_owner(view: View, request: Request, text: str,
                       local: Callable[[View, Request, int], Awaitable[Response]]) -> Response:  # fmt: skip
        """Answer with ``local`` on the worker that owns the city (forwarding there if that is another one)."""
        city_id = city_id_of(text)
        if city_id is None:
            return problem(view, 400, f"city id must be a number, e.g. /api/cities/2950159, not {text[:20]!r}")
        forwarded = await routed(view, request, city_id)
        return forwarded if forwarded is not None else await local(view, request, city_id)

    @app.page("/api/cities/{city_id}")
    async def city(self: View, request: Request, city_id: str) -> Response:
        return await at_owner(self, request, city_id, city_view)

    async def city_view(self: View, request: Request, city_id: int) -> Response:
        value = city_states.get(city_id)
        if not value:
            return problem(self, 404, f"no observation of city {city_id} yet")
        anomaly = value.get("anomaly") or {}
        return respond(self, {
            "city_id": city_id,
            "latest": value.get("latest"),
            "watermark": (value.get("windows") or {}).get("wm"),
            "open_windows": open_windows(city_id, value.get("windows")),
            "open_incidents": sorted(anomaly.get("incidents", {})),
            "served_by": str(app.conf.canonical_url),
        })  # fmt: skip

    @app.page("/api/cities/{city_id}/aggregates")
    async def city_aggregates(self: View, request: Request, city_id: str) -> Response:
        return await at_owner(self, request, city_id, aggregates_view)

    async def aggregates_view(self: View, request: Request, city_id: int) -> Response:
        now = dt.datetime.now(dt.timezone.utc)
        try:
            end = _time(request.query.get("to"), now)
            start = _time(request.query.get("from"), end - dt.timedelta(days=2))
        except ValueError as exc:
            return problem(self, 400, f"from/to: {exc}")
        kind = request.query.get("kind")
        kinds = [kind] if kind else list(aggregator.spec.kinds)
        if kind and kind not in aggregator.spec.kinds:
            return problem(self, 400, f"kind must be one of {', '.join(aggregator.spec.kinds)}")
        try:
            closed = await db.run(read_aggregates, city_id, kinds, start, end)
        except Exception as exc:  # noqa: BLE001
            return problem(self, 503, f"Cassandra is not reachable: {type(exc).__name__}")
        for row in closed:
            row["final"] = True
        live = [w for w in open_windows(city_id, (city_states.get(city_id) or {}).get("windows"))
                if w["kind"] in kinds and start.timestamp() <= w["window_start"] < end.timestamp()]  # fmt: skip
        for w in live:
            w["window_start"] = dt.datetime.fromtimestamp(w["window_start"], tz=dt.timezone.utc)
            w["window_end"] = dt.datetime.fromtimestamp(w["window_end"], tz=dt.timezone.utc)
        merged = sorted(closed + live, key=lambda r: (r["kind"], r["window_start"]))
        return respond(self, {"city_id": city_id, "aggregates": merged})

    @app.page("/api/alerts")
    async def alerts(self: View, request: Request) -> Response:
        text = request.query.get("city", "")
        if not text.isdigit():
            return problem(self, 400, "give ?city=ID (and optionally &since=ISO time or epoch seconds)")
        now = dt.datetime.now(dt.timezone.utc)
        try:
            since = _time(request.query.get("since"), now - dt.timedelta(days=7))
        except ValueError as exc:
            return problem(self, 400, f"since: {exc}")
        try:
            rows = await db.run(read_alerts, int(text), since, now + dt.timedelta(days=1))
        except Exception as exc:  # noqa: BLE001
            return problem(self, 503, f"Cassandra is not reachable: {type(exc).__name__}")
        return respond(self, {"alerts": rows})
