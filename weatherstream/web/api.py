"""The worker's read-only web API, health checks and Prometheus endpoint (faust's web server).

``/api/cities/{id}`` and its aggregates are answered by the worker that owns the city's partition (its
RocksDB tables hold the live open windows): any other worker forwards the request there. Closed windows,
alerts, the station list, the overview and the map come from Cassandra (:mod:`weatherstream.web.network`).
No endpoint changes state; every response carries security headers (faust's built-in pages and error answers
too); nothing here sends a wildcard CORS header.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from faust.exceptions import SameNode
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest

from models import city_key
from weatherstream import internals
from weatherstream.app import WeatherStreamApp
from weatherstream.core.codec import decode_latest
from weatherstream.queries import read_aggregates
from weatherstream.times import parse_utc
from weatherstream.web.alertquery import city_id_of
from weatherstream.web.network import NetworkViews
from weatherstream.web.pages import StaticFiles
from weatherstream.web.responses import CassandraReader, problem, respond, unreachable

if TYPE_CHECKING:
    from agents import WorkerParts
    from agents.pipeline import PipelineParts
    from agents.sink import SinkProgress
    from weatherstream.core.codec import CityRecord

logger = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}
#: the edges of the freshness buckets of weatherstream_stations (seconds since a station's newest observation)
AGE_EDGES_S = (3600.0, 6 * 3600.0, 24 * 3600.0)
AGE_LABELS = ("under_1h", "1h_to_6h", "6h_to_24h", "over_24h")
STATIONS = Gauge("weatherstream_stations", "Stations this worker owns, by the age of their newest observation.",
                 ["age"])  # fmt: skip
OLDEST_AGE = Gauge("weatherstream_station_oldest_observation_age_seconds",
                   "Seconds since the newest observation of this worker's station silent longest.")  # fmt: skip
TABLE_KEYS = Gauge("weatherstream_table_keys", "Keys in this worker's active table partitions (RocksDB's estimate).",
                   ["table"])  # fmt: skip
ROCKSDB_MEMORY = Gauge("weatherstream_rocksdb_memory_bytes",
                       "Bytes of the worker's shared RocksDB block cache and memtables in use.")  # fmt: skip
CONSUMER_LAG = Gauge("weatherstream_consumer_lag_messages", "Messages not yet consumed, by topic and partition.",
                     ["topic", "partition"])  # fmt: skip


def _time(text: str | None, default: dt.datetime) -> dt.datetime:
    return parse_utc(text) if text else default


async def _add_security_headers(request: Any, response: Any) -> None:
    """aiohttp's ``on_response_prepare`` hook: the security headers on every response, also faust's built-in
    pages (``/router/``, ``/table/``) and the server's own 404 and 405 answers."""
    for header, value in SECURITY_HEADERS.items():
        response.headers.setdefault(header, value)


def register(app: WeatherStreamApp, parts: WorkerParts) -> None:
    """Add the views to ``app``. The city views need the pipeline's state (``parts.pipeline``); a sink-only
    worker serves health, readiness and metrics."""
    pipeline = parts.pipeline
    web_app = getattr(app.web, "web_app", None)  # the aiohttp application of faust's web driver
    if web_app is not None:
        web_app.on_response_prepare.append(_add_security_headers)
    sink = parts.sink.progress if parts.sink is not None else None  # the sink's own consumer, where it runs

    @app.page("/health")
    async def health(self: View, request: Request) -> Response:
        return respond(self, {"status": "ok"})

    @app.page("/ready")
    async def ready(self: View, request: Request) -> Response:
        assigned = set(app.consumer.assignment()) if app.consumer is not None else set()
        if sink is not None:
            assigned |= sink.assignment()
        recovering = pipeline is not None and not internals.tables_recovered(app)
        if app.rebalancing or not assigned or recovering:
            return respond(self, {"ready": False, "rebalancing": bool(app.rebalancing), "recovering": recovering},
                           503)  # fmt: skip
        return respond(self, {"ready": True, "partitions": len(assigned)})

    @app.page("/metrics")
    async def prometheus_metrics(self: View, request: Request) -> Response:
        update_gauges(app, pipeline, sink)
        return self.bytes(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    if pipeline is not None:
        db = CassandraReader(app.settings)
        register_city_views(app, StaticFiles(), NetworkViews(db), CityViews(app, db, pipeline))


def update_gauges(app: WeatherStreamApp, pipeline: PipelineParts | None, sink: SinkProgress | None) -> None:
    """The gauges a scrape reads, from what the worker maintains anyway: no table scan per scrape."""
    if pipeline is not None:
        now = time.time()
        for label, count in zip(AGE_LABELS, pipeline.cities.ages(now, AGE_EDGES_S), strict=True):
            STATIONS.labels(label).set(count)
        oldest = pipeline.cities.oldest_newest()
        OLDEST_AGE.set(max(0.0, now - oldest) if oldest is not None else 0.0)
        table = pipeline.state.table
        TABLE_KEYS.labels(table.name).set(internals.estimated_keys(table, set(pipeline.cities.partitions)))
    ROCKSDB_MEMORY.set(internals.rocksdb_memory_bytes())
    # Only the partitions this worker reads now: one that moved to another worker is reported there.
    CONSUMER_LAG.clear()
    if app.consumer is not None:
        for tp in sorted(app.consumer.assignment()):
            committed = internals.committed_offset(app.consumer, tp)
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


def register_city_views(app: WeatherStreamApp, files: StaticFiles, network: NetworkViews, views: CityViews) -> None:
    """The dashboard and the JSON API over stations, windows and alerts (on workers that run the pipeline)."""

    @app.page("/")
    async def overview_page(self: View, request: Request) -> Response:
        return files.page(self, "index.html")

    @app.page("/map")
    async def map_page(self: View, request: Request) -> Response:
        return files.page(self, "map.html")

    @app.page("/alerts")
    async def alerts_page(self: View, request: Request) -> Response:
        return files.page(self, "alerts.html")

    @app.page("/city/{city_id}")
    async def city_page(self: View, request: Request, city_id: str) -> Response:
        return files.page(self, "city.html")

    @app.page("/static/{name}")
    async def static(self: View, request: Request, name: str) -> Response:
        return files.static(self, name)

    @app.page("/static/vendor/{name}")
    async def vendored(self: View, request: Request, name: str) -> Response:
        return files.vendor(self, name)

    @app.page("/api/network")
    async def network_summary(self: View, request: Request) -> Response:
        return await network.summary(self, request)

    @app.page("/api/map")
    async def map_points(self: View, request: Request) -> Response:
        return await network.map_points(self, request)

    @app.page("/api/cities")
    async def cities(self: View, request: Request) -> Response:
        return await network.cities(self, request)

    @app.page("/api/alerts")
    async def alerts(self: View, request: Request) -> Response:
        return await network.alerts(self, request)

    @app.page("/api/cities/{city_id}")
    async def city(self: View, request: Request, city_id: str) -> Response:
        return await views.at_owner(self, request, city_id, views.city)

    @app.page("/api/cities/{city_id}/aggregates")
    async def city_aggregates(self: View, request: Request, city_id: str) -> Response:
        return await views.at_owner(self, request, city_id, views.aggregates)


class CityViews:
    """What the views of one city answer, from the pipeline's state (this worker's cities) and Cassandra."""

    def __init__(self, app: WeatherStreamApp, db: CassandraReader, pipeline: PipelineParts) -> None:
        self.app = app
        self.db = db
        self.state = pipeline.state
        self.aggregator = pipeline.pipeline.aggregator

    async def at_owner(self, view: View, request: Request, text: str,
                       local: Callable[[View, Request, int], Awaitable[Response]]) -> Response:  # fmt: skip
        """Answer with ``local`` on the worker that owns the city (forwarding there if that is another one)."""
        city_id = city_id_of(text)
        if city_id is None:
            return problem(view, 400, f"city id must be a number, e.g. /api/cities/2950159, not {text[:20]!r}")
        try:
            # The table's keys are raw bytes; the router hashes what it is given as the raw topic's key is.
            forwarded = await self.app.router.route_req(self.state.table.name, city_key(city_id), view.web, request)
        except SameNode:
            return await local(view, request, city_id)
        return forwarded

    async def city(self, view: View, request: Request, city_id: int) -> Response:
        record = self.state.record(city_id)
        if record is None or record.latest is None:
            return problem(view, 404, f"no observation of city {city_id} yet")
        return respond(view, {
            "city_id": city_id,
            "latest": decode_latest(record.latest),
            "watermark": record.windows.wm if record.windows is not None else None,
            "open_windows": self.open_windows(city_id, record),
            "open_incidents": sorted((record.anomaly or {}).get("incidents", {})),
            "served_by": str(self.app.conf.canonical_url),
        })  # fmt: skip

    async def aggregates(self, view: View, request: Request, city_id: int) -> Response:
        now = dt.datetime.now(dt.timezone.utc)
        try:
            end = _time(request.query.get("to"), now)
            start = _time(request.query.get("from"), end - dt.timedelta(days=2))
        except ValueError as exc:
            return problem(view, 400, f"from/to: {exc}")
        kind, known = request.query.get("kind"), self.aggregator.spec.kinds
        if kind and kind not in known:
            return problem(view, 400, f"kind must be one of {', '.join(known)}")
        kinds = [kind] if kind else list(known)
        try:
            closed = await self.db.run(read_aggregates, city_id, kinds, start, end)
        except Exception as exc:  # noqa: BLE001
            return unreachable(view, exc)
        for row in closed:
            row["final"] = True
        live = [w for w in self.open_windows(city_id, self.state.record(city_id))
                if w["kind"] in kinds and start.timestamp() <= w["window_start"] < end.timestamp()]  # fmt: skip
        for w in live:
            w["window_start"] = dt.datetime.fromtimestamp(w["window_start"], tz=dt.timezone.utc)
            w["window_end"] = dt.datetime.fromtimestamp(w["window_end"], tz=dt.timezone.utc)
        merged = sorted(closed + live, key=lambda r: (r["kind"], r["window_start"]))
        return respond(view, {"city_id": city_id, "aggregates": merged})

    def open_windows(self, city_id: int, record: CityRecord | None) -> list[dict[str, Any]]:
        """Live aggregates of the city's windows that have data and are not final yet."""
        if record is None or record.windows is None:
            return []
        out = []
        windows = self.aggregator.open_windows(record.windows, lambda start: self.state.slice(city_id, start))
        for window, values in windows:
            values.update(city_id=city_id, kind=window.kind, window_id=window.wid, final=False)
            out.append(values)
        return sorted(out, key=lambda v: (v["kind"], v["window_start"]))
