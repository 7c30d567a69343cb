"""Aggregator agent.

Consumes: ``{ns}.observations`` (:class:`models.Observation`, key = city id) and ``{ns}.ticks`` (idle
ticks, key = city id; co-partitioned, so a city's state always lives in one partition).
Emits: ``{ns}.aggregates`` (:class:`models.Aggregate`, key = city id): one final aggregate per window
when the city's watermark passes its end, and corrected ones (revision + 1) for late data;
``{ns}.deadletter`` for observations too late to correct anything (reason ``too_late``).
Tables: ``window_heads`` (city id -> header: watermark, open windows, outbox) and ``window_panes``
(``"city:pane start"`` -> the pane's observation rows), both RocksDB-backed and changelogged.

The windowing rules are in :mod:`weatherstream.core.aggregator`; this module only does the I/O.
A timer sends a tick for every city that has been silent longer than the idle timeout, so quiet
cities' windows still close, and for every city whose outbox holds unconfirmed aggregates.
"""

from __future__ import annotations

import logging
import time

import orjson
from faust.types import EventT, StreamT

from agents.deadletters import send_dead_letter
from agents.outbox import OutboxSender
from agents.resilience import handle_with_retries
from models import Aggregate, Observation, Reason, city_key
from weatherstream import metrics
from weatherstream.app import WeatherStreamApp
from weatherstream.core.aggregate import Row, make_row
from weatherstream.core.aggregator import Aggregator, AggregatorConfig, Verdict, confirm
from weatherstream.core.windows import WindowSpec
from weatherstream.settings import Settings

logger = logging.getLogger(__name__)


def config_from(settings: Settings) -> AggregatorConfig:
    """The windowing rules the settings describe."""
    return AggregatorConfig(
        spec=WindowSpec(
            tumbling_s=tuple(settings.window_tumbling_s),
            local_day=settings.window_local_day,
            hopping_size_s=settings.window_hopping_size_s,
            hopping_step_s=settings.window_hopping_step_s,
        ),
        lateness_s=settings.allowed_lateness_s,
        idle_timeout_s=settings.idle_timeout_s,
        retention_s=settings.correction_horizon_s,
        default_cadence_s=settings.default_cadence_s,
    )


def observation_row(obs: Observation, offset: int) -> Row:
    """The pane row of an observation read at ``offset``."""
    return make_row(
        obs.observed_at, offset, obs.timezone_offset_s or 0,
        temp_c=obs.temp_c, feels_like_c=obs.feels_like_c, humidity_pct=obs.humidity_pct,
        pressure_hpa=obs.pressure_hpa, wind_speed_ms=obs.wind_speed_ms, wind_gust_ms=obs.wind_gust_ms,
        rain_1h_mm=obs.rain_1h_mm, snow_1h_mm=obs.snow_1h_mm, condition=obs.condition_main,
    )  # fmt: skip


def pane_key(city_id: int, start: int) -> str:
    return f"{city_id}:{start}"


AGGREGATE_FIELDS = set(Aggregate._options.fields)


def register(app: WeatherStreamApp) -> None:
    """Declare the window tables, the aggregator agent and the idle-tick timer on ``app``."""
    settings = app.ws_settings
    topics = app.ws_topics
    aggregator = Aggregator(config_from(settings))
    heads = app.Table("window_heads", default=None, key_type=int, partitions=settings.partitions,
                      options=app.table_options(), help="Per city: watermark, open windows, outbox.")  # fmt: skip
    panes = app.Table("window_panes", default=None, key_type=str, partitions=settings.partitions,
                      options=app.table_options(), help="Per city and pane: observation rows.")  # fmt: skip
    source = app.topic(settings.topic_observations, settings.topic_ticks, key_serializer="raw",
                       value_serializer="raw", partitions=settings.partitions)  # fmt: skip
    outbox = OutboxSender(
        topics.aggregates,
        lambda entry: Aggregate(**{k: v for k, v in entry.items() if k in AGGREGATE_FIELDS}),
        lambda entry: entry["eid"],
        "aggregates",
    )

    async def handle(event: EventT) -> None:
        msg = event.message
        now = time.time()
        if msg.topic == settings.topic_ticks:
            city_id = int(msg.key or b"0")
            header = heads.get(city_id)
            step = aggregator.tick(city_id, header, lambda s: panes.get(pane_key(city_id, s)), wall_now=now)
            obs = None
        else:
            metrics.EVENTS_IN.labels("observations").inc()
            try:
                obs = Observation.loads(event.value)
                city_id = int(obs.city_id)
                row = observation_row(obs, msg.offset)
            except Exception as exc:  # noqa: BLE001 - a foreign record must not stop the agent
                await send_dead_letter(topics.deadletter, event, Reason.BAD_TYPE,
                                       f"not an Observation record: {type(exc).__name__}: {exc}")  # fmt: skip
                return
            header = heads.get(city_id)
            step = aggregator.apply(city_id, header, row, lambda s: panes.get(pane_key(city_id, s)),
                                    wall_now=now, event_ts=msg.timestamp)  # fmt: skip
        if step.verdict is Verdict.TOO_LATE and obs is not None:
            message = (f"city {obs.city_id} observation at {obs.observed_at:.0f} is more than "
                       f"{settings.correction_horizon_s:.0f} s behind the city's watermark")  # fmt: skip
            await send_dead_letter(topics.deadletter, event, Reason.TOO_LATE, message, obs.source)
        elif step.verdict is Verdict.DUPLICATE:
            metrics.DUPLICATE_OBSERVATIONS.inc()
        for start, rows in step.pane_writes.items():
            panes[pane_key(city_id, start)] = rows
        for start in step.pane_deletes:
            key = pane_key(city_id, start)
            if key in panes:
                del panes[key]
        new_header = confirm(step.header, outbox.delivered(step.header["outbox"]))
        if new_header != header or step.verdict is Verdict.REDELIVERED:
            heads[city_id] = new_header  # after a redelivery: heals a changelog that missed the last write
        for entry in step.emissions:
            (metrics.WINDOWS_CORRECTED if entry["revision"] > 1 else metrics.WINDOWS_FINALIZED).labels(
                entry["kind"]
            ).inc()
        await outbox.send(city_id, new_header["outbox"])

    @app.agent(source, name="aggregator")
    async def aggregate(stream: StreamT) -> None:
        """Maintain per-city windows and emit final and corrected aggregates."""
        async for event in stream.events():
            await handle_with_retries("aggregator", event, handle, topics.deadletter)

    @app.timer(interval=settings.tick_interval_s)
    async def idle_ticks() -> None:
        """Tick silent cities (windows must close) and cities with unconfirmed aggregates."""
        now = time.time()
        for city_id, header in list(heads.items()):
            if not header:
                continue
            silent = header.get("last_wall") is not None and now - header["last_wall"] > settings.idle_timeout_s
            has_open = any(header.get("open", {}).values())
            pending = outbox.unsent(header.get("outbox", ()))
            if (silent and has_open) or pending:
                await topics.ticks.send(key=city_key(int(city_id)), value=orjson.dumps({"sent_at": now}))

    app.ws_aggregator = aggregate  # type: ignore[attr-defined]
    app.ws_window_tables = (heads, panes)  # type: ignore[attr-defined]
