"""Anomaly agent.

Consumes: ``{ns}.observations`` (:class:`models.Observation`, key = city id) and ``{ns}.ticks``
(idle ticks, key = city id, co-partitioned).
Emits: ``{ns}.alerts`` (:class:`models.Alert`, key = city id): one ``open`` per incident, ``update`` when
its severity rises, one ``resolved``.
Table: ``anomaly_state`` (city id -> baselines per local hour, recent history, open incidents, outbox),
RocksDB-backed and changelogged, so baselines and running incidents survive restarts.

The detectors and the lifecycle are in :mod:`weatherstream.core.anomaly`; this module only does the I/O.
A timer ticks cities that went quiet, so a silent live station is reported while it is silent.
"""

from __future__ import annotations

import logging
import time

import orjson
from faust.types import EventT, StreamT

from agents.outbox import OutboxSender
from agents.resilience import handle_with_retries
from models import Alert, Observation, city_key
from weatherstream import metrics
from weatherstream.app import WeatherStreamApp
from weatherstream.core.anomaly.baseline import HourlyBaseline
from weatherstream.core.anomaly.detectors import QualityDetector, RateDetector, StatisticalDetector
from weatherstream.core.anomaly.engine import AnomalyEngine, EngineConfig, Verdict, confirm, outbox_id
from weatherstream.settings import Settings

logger = logging.getLogger(__name__)

ALERT_FIELDS = set(Alert._options.fields)


def engine_config(settings: Settings) -> EngineConfig:
    """The detector settings the settings describe."""
    return EngineConfig(
        statistical=StatisticalDetector(
            baseline=HourlyBaseline(min_samples=settings.anomaly_warmup_samples),
            warning_z=settings.anomaly_warning_z,
            critical_z=settings.anomaly_critical_z,
        ),
        rate=RateDetector(pressure_fall_hpa=settings.pressure_fall_hpa, temp_change_c=settings.temp_change_c),
        quality=QualityDetector(stuck_after=settings.stuck_after, silent_factor=settings.silent_factor),
        clear_after=settings.anomaly_clear_after,
        historical_after_s=settings.historical_after_s,
        suppress_historical=settings.suppress_historical_alerts,
        default_cadence_s=settings.default_cadence_s,
    )


def register(app: WeatherStreamApp) -> None:
    """Declare the anomaly state table, the anomaly agent and its silence timer on ``app``."""
    settings = app.ws_settings
    topics = app.ws_topics
    engine = AnomalyEngine(engine_config(settings))
    states = app.Table("anomaly_state", default=None, key_type=int, partitions=settings.partitions,
                       options=app.table_options(), help="Per city: baselines, history, open incidents.")  # fmt: skip
    source = app.topic(settings.topic_observations, settings.topic_ticks, key_serializer="raw",
                       value_serializer="raw", partitions=settings.partitions)  # fmt: skip
    outbox = OutboxSender(
        topics.alerts, lambda a: Alert(**{k: v for k, v in a.items() if k in ALERT_FIELDS}), outbox_id, "alerts"
    )

    async def handle(event: EventT) -> None:
        msg = event.message
        now = time.time()
        if msg.topic == settings.topic_ticks:
            city_id = int(msg.key or b"0")
            state = states.get(city_id)
            outcome = engine.tick(state, city_id, wall_now=now)
        else:
            try:
                obs = Observation.loads(event.value)
            except Exception:  # noqa: BLE001 - the aggregator dead-letters unreadable records
                return
            city_id = int(obs.city_id)
            state = states.get(city_id)
            outcome = engine.apply(state, obs, msg.offset, wall_now=now)
            if outcome.verdict is Verdict.DUPLICATE:
                metrics.DUPLICATE_OBSERVATIONS.inc()
        new_state = confirm(outcome.state, outbox.delivered(outcome.state["outbox"]))
        if new_state != state or outcome.verdict is Verdict.REDELIVERED:
            states[city_id] = new_state
        for alert in outcome.alerts:
            metrics.ALERTS.labels(alert["kind"], alert["severity"], alert["state"]).inc()
        await outbox.send(city_id, new_state["outbox"])

    @app.agent(source, name="anomaly")
    async def detect(stream: StreamT) -> None:
        """Judge every observation; keep incidents; emit their lifecycle."""
        async for event in stream.events():
            await handle_with_retries("anomaly", event, handle, topics.deadletter)

    @app.timer(interval=settings.tick_interval_s)
    async def silence_ticks() -> None:
        """Tick cities quiet for longer than their silence limit, and cities with unsent alerts."""
        now = time.time()
        for city_id, state in list(states.items()):
            if not state:
                continue
            quiet = (
                state.get("last_wall") is not None
                and "silent_station" not in state.get("incidents", {})
                and (now - state["last_wall"] > settings.silent_factor * engine.cadence_s(state))
            )
            if quiet or outbox.unsent(state.get("outbox", ())):
                await topics.ticks.send(key=city_key(int(city_id)), value=orjson.dumps({"sent_at": now}))

    app.ws_anomaly = detect  # type: ignore[attr-defined]
