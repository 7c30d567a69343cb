"""Pipeline agent: validation, windows and anomaly detection in one pass, a batch of input at a time.

Consumes: ``{ns}.raw`` (raw payload bytes; key = city id) and ``{ns}.ticks`` (idle ticks, key = city id;
co-partitioned, so a city's state always lives in one partition).
Emits:
- ``{ns}.observations`` (:class:`models.Observation`, key = city id): every accepted observation, once
  (again after a crash, for the sinks to overwrite with equal data);
- ``{ns}.aggregates`` (:class:`models.Aggregate`): one final aggregate per window when the city's
  watermark passes its end, corrected ones (revision + 1) for late data;
- ``{ns}.alerts`` (:class:`models.Alert`): one ``open`` per incident, ``update`` when its severity
  rises, one ``resolved``;
- ``{ns}.deadletter``: every input that is not an acceptable observation, with the reason;
- ``{ns}.raw`` again for a message whose key is not its city id, re-sent with the right key.
Tables (RocksDB, changelogged): ``city_state`` (city -> ``windows``: watermark, open windows, outbox;
``anomaly``: baselines, history, incidents, outbox; ``latest``: the newest observation) and
``window_panes`` (``"city:pane start"`` -> observation rows with their input offsets). The panes are also
the memory of repeats: an observation with a city and time already in a pane (at another offset) is a
duplicate, one older than the correction horizon is too late, and one at or below the city's last
applied offset is a re-delivery.

The rules live in :mod:`weatherstream.core`; this module only does the I/O. One agent does all three
stages because every Kafka record and every table write costs the same fixed framework overhead:
re-reading observations from a topic in two more agents tripled it. A batch's events are grouped by
city; each city's state is read once, every event is applied in order, and the state is written once.
State is written before anything is sent (the outboxes), and offsets are committed only after the
batch, so a crash anywhere means a re-delivery that the recorded offsets recognise.
A timer sends a tick for every city that went quiet (its windows must still close, its silence is an
alert) and every city whose outbox holds unconfirmed records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from faust.streams import _current_event  # the context table reads and writes take their partition from
from faust.types import EventT, StreamT

from agents.batching import OffsetGuard, WorkerStopping, delivered, joined_batches, run_batch
from agents.deadletters import send_dead_letter
from agents.outbox import OutboxSender
from agents.resilience import with_retries
from agents.statecache import CachedTable
from models import Aggregate, Alert, Observation, Reason, city_key
from weatherstream import metrics
from weatherstream.app import WeatherStreamApp
from weatherstream.core import aggregator as windows
from weatherstream.core.aggregate import Row, make_row
from weatherstream.core.anomaly import engine as anomaly
from weatherstream.core.anomaly.baseline import HourlyBaseline
from weatherstream.core.anomaly.detectors import QualityDetector, RateDetector, StatisticalDetector
from weatherstream.core.normalize import InvalidPayload, normalize
from weatherstream.core.windows import WindowSpec
from weatherstream.settings import Settings

logger = logging.getLogger(__name__)

REKEY_HEADER = "ws-rekeyed-from"
#: how long a city with delivered output waits for its next input before a tick confirms the delivery
CONFIRM_WAIT_S = 1.0
AGGREGATE_FIELDS = set(Aggregate._options.fields)
ALERT_FIELDS = set(Alert._options.fields)
#: what the city state keeps of its newest observation (for the web view)
LATEST_FIELDS = ("observed_at", "city_name", "country", "timezone_offset_s", "temp_c", "feels_like_c", "humidity_pct",
                 "pressure_hpa", "wind_speed_ms", "wind_gust_ms", "rain_1h_mm", "snow_1h_mm", "condition_main",
                 "condition_description", "source")  # fmt: skip


def window_config(settings: Settings) -> windows.AggregatorConfig:
    """The windowing rules the settings describe."""
    return windows.AggregatorConfig(
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


def engine_config(settings: Settings) -> anomaly.EngineConfig:
    """The detector settings the settings describe."""
    return anomaly.EngineConfig(
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


def headers_of(event: EventT) -> dict[str, bytes]:
    raw: Any = event.headers or event.message.headers or {}
    items = raw.items() if isinstance(raw, Mapping) else raw
    return {str(k): bytes(v) if v is not None else b"" for k, v in items}


@contextlib.contextmanager
def acting_for(event: EventT) -> Iterator[None]:
    """Table reads and writes inside go to ``event``'s partition (its RocksDB and changelog partition).

    Faust takes the partition from the stream's current event, which in a batch is just the last one.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


@dataclass
class DeadLetterOut:
    event: EventT
    reason: Reason
    message: str
    source: str | None


@dataclass
class CityOutput:
    """What one city's part of a batch sends once its state is written."""

    observations: list[Observation] = field(default_factory=list)
    dead_letters: list[DeadLetterOut] = field(default_factory=list)
    header: dict[str, Any] | None = None
    state: dict[str, Any] | None = None
    city_state: dict[str, Any] | None = None  # to write once the panes are in the changelog (None: unchanged)


def register(app: WeatherStreamApp) -> None:
    """Declare the pipeline's tables, the pipeline agent and its tick timer on ``app``."""
    settings = app.ws_settings
    topics = app.ws_topics
    aggregator = windows.Aggregator(window_config(settings))
    engine = anomaly.AnomalyEngine(engine_config(settings))

    def table(name: str, key_type: type, help: str, cache_entries: int) -> CachedTable:
        faust_table = app.Table(name, default=None, key_type=key_type, partitions=settings.partitions,
                                options=app.table_options(), extra_topic_configs=app.table_topic_configs(),
                                help=help)  # fmt: skip
        return CachedTable(app, faust_table, cache_entries)

    city_states = table("city_state", int, "Per city: window header and anomaly state.", settings.state_cache_cities)
    panes = table("window_panes", str, "Per city and pane: observation rows.", settings.state_cache_panes)
    source = app.topic(settings.topic_raw, settings.topic_ticks, key_serializer="raw",
                       value_serializer="raw", partitions=settings.partitions)  # fmt: skip
    aggregates_out = OutboxSender(
        topics.aggregates,
        lambda entry: Aggregate(**{k: v for k, v in entry.items() if k in AGGREGATE_FIELDS}),
        lambda entry: entry["eid"],
        "aggregates",
    )
    alerts_out = OutboxSender(
        topics.alerts, lambda a: Alert(**{k: v for k, v in a.items() if k in ALERT_FIELDS}), anomaly.outbox_id, "alerts"
    )

    def tables_closing() -> bool:
        return bool(app.tables.should_stop or city_states.table.should_stop or panes.table.should_stop)

    def stopping() -> bool:
        return bool(app.should_stop)

    # --- stage 1: one raw message -> an observation, a dead letter or a re-keyed copy ----------------
    raw_in, ticks_in = metrics.EVENTS_IN.labels("raw"), metrics.EVENTS_IN.labels("ticks")

    async def validate(event: EventT) -> Observation | None:
        raw_in.inc()
        headers = headers_of(event)
        source = headers.get("source", b"").decode("utf-8", "replace") or None
        units = headers.get("units", b"metric").decode("utf-8", "replace") or "metric"
        payload = event.value if isinstance(event.value, bytes) else b""
        try:
            obs = normalize(
                payload, now=time.time(), units=units, source=source or "unknown", max_bytes=settings.max_payload_bytes
            )
        except InvalidPayload as exc:
            await send_dead_letter(topics.deadletter, event, exc.reason, exc.message, source)
            return None
        key = city_key(obs.city_id)
        if event.message.key != key:
            # Re-key through the same topic: the city's state must sit in the city's partition.
            rekey_headers = [(k, v) for k, v in headers.items() if k != REKEY_HEADER]
            rekey_headers.append((REKEY_HEADER, repr(event.message.key).encode()[:200]))
            await topics.raw.send(key=key, value=payload, headers=rekey_headers)
            metrics.REKEYED.inc()
            return None
        return obs

    # --- stage 2: one city's observations and ticks of the batch, against its state ------------------
    def apply_city(city_id: int, items: Sequence[tuple[EventT, Observation | None]]) -> CityOutput:
        out = CityOutput()
        before = city_states.get(city_id) or {}
        head, state, latest = before.get("windows"), before.get("anomaly"), before.get("latest")
        cache: dict[int, list[Row] | None] = {}
        first = next((event for event, obs in items if obs is not None), None)
        if head is not None and first is not None and first.message.offset > head["last_offset"]:
            # New data: the batch that wrote this header was acknowledged, so its pane deletes were delivered.
            # (After a crash, the city's first observation is a redelivery and the drops stay, to be done again.)
            head = windows.settled(head)
        written: set[int] = set()
        heal = False  # after a re-delivery: rewrite the state in case the changelog missed the last write

        def pane(start: int) -> list[Row] | None:
            if start not in cache:
                cache[start] = panes.get(pane_key(city_id, start))
            return cache[start]

        def take(step: windows.Step) -> dict[str, Any]:
            for start, rows in step.pane_writes.items():
                cache[start] = rows
                written.add(start)
            for entry in step.emissions:
                kind_metric = metrics.WINDOWS_CORRECTED if entry["revision"] > 1 else metrics.WINDOWS_FINALIZED
                kind_metric.labels(entry["kind"]).inc()
            return step.header

        for event, obs in items:
            now = time.time()
            if obs is None:  # a tick
                head = take(aggregator.tick(city_id, head, pane, wall_now=now))
                state = engine.tick(state, city_id, wall_now=now).state
                continue
            offset = event.message.offset
            step = aggregator.apply(city_id, head, observation_row(obs, offset), pane, wall_now=now,
                                    event_ts=event.message.timestamp)  # fmt: skip
            verdict = step.verdict
            if verdict in (windows.Verdict.REDELIVERED, windows.Verdict.FORGOTTEN):
                metrics.REDELIVERED.inc()
            if verdict is windows.Verdict.FORGOTTEN:
                continue
            if verdict is windows.Verdict.DUPLICATE:
                out.dead_letters.append(DeadLetterOut(
                    event, Reason.DUPLICATE, f"city {obs.city_id} dt {obs.observed_at:.0f} was already accepted",
                    obs.source))  # fmt: skip
                metrics.DUPLICATE_OBSERVATIONS.inc()
                head = step.header
                continue
            if verdict is windows.Verdict.TOO_LATE:
                out.dead_letters.append(DeadLetterOut(
                    event, Reason.TOO_LATE, f"city {obs.city_id} dt {obs.observed_at:.0f} is more than "
                    f"{settings.correction_horizon_s:.0f} s behind the city's watermark: too late to correct "
                    "its windows or to tell whether it is a repeat", obs.source))  # fmt: skip
                head = step.header
                continue
            # APPLIED, or REDELIVERED after a crash: the first send may never have left the producer. A second
            # copy is harmless: the sinks overwrite by (city, time).
            out.observations.append(obs)
            if latest is None or obs.observed_at >= latest["observed_at"]:
                latest = {name: getattr(obs, name) for name in LATEST_FIELDS}
            heal = heal or step.verdict is windows.Verdict.REDELIVERED
            head = take(step)
            outcome = engine.apply(state, obs, offset, wall_now=now)
            heal = heal or outcome.verdict is anomaly.Verdict.REDELIVERED
            state = outcome.state
            for alert in outcome.alerts:
                metrics.ALERTS.labels(alert["kind"], alert["severity"], alert["state"]).inc()

        # Write the panes now; the city state that refers to them is written by the caller once the panes'
        # changelog records are delivered (each key once per batch).
        for start in written:
            panes.set(pane_key(city_id, start), cache[start])
        if head is not None:
            head = windows.confirm(head, aggregates_out.delivered(head["outbox"]))
        if state is not None:
            state = anomaly.confirm(state, alerts_out.delivered(state["outbox"]))
        awaiting.pop(city_id, None)  # what was delivered by now is confirmed (see confirm_when_delivered)
        after = {"windows": head, "anomaly": state, "latest": latest}
        if after != before or heal:
            out.city_state = after
        out.header, out.state = head, state
        return out

    async def send(city_id: int, out: CityOutput) -> None:
        for letter in out.dead_letters:
            await send_dead_letter(topics.deadletter, letter.event, letter.reason, letter.message, letter.source)
        for obs in out.observations:
            await topics.observations.send(key=obs.city_id, value=obs)
        metrics.EVENTS_OUT.labels("observations").inc(len(out.observations))
        sent = []
        if out.header is not None:
            sent += await aggregates_out.send(city_id, out.header["outbox"])
        if out.state is not None:
            sent += await alerts_out.send(city_id, out.state["outbox"])
        if sent:
            task = asyncio.ensure_future(confirm_when_delivered(city_id, sent))
            confirming.add(task)
            task.add_done_callback(confirming.discard)

    confirming: set[asyncio.Future[None]] = set()
    awaiting: dict[int, object] = {}  # city -> the latest delivery no batch has applied the city since

    async def confirm_when_delivered(city_id: int, sent: list[Any]) -> None:
        """Once the broker has the records, make sure the city's state drops them from the outbox.

        Without this they would stay in the outbox until the city's next input, and a restart in between
        would send them again (harmless, same ids, but subscribers would see them twice). A city whose next
        input comes within ``CONFIRM_WAIT_S`` confirms them in that batch; only a city that stays quiet gets a
        tick (under steady input, a tick per city and batch was one more message for every six inputs).
        """
        try:
            await asyncio.gather(*sent)
        except Exception:  # noqa: BLE001 - a failed send stays in the outbox; the timer sends it again
            return
        delivery = awaiting[city_id] = object()
        await asyncio.sleep(CONFIRM_WAIT_S)
        if awaiting.get(city_id) is not delivery:
            return  # a batch applied the city since (it confirmed the records), or a later delivery waits
        del awaiting[city_id]
        if stopping():
            return  # the producer is going: the records stay in the outbox and go out again after the restart
        try:
            await topics.ticks.send(key=city_key(city_id), value=orjson.dumps({"sent_at": time.time()}))
        except Exception as exc:  # noqa: BLE001 - the records stay in the outbox until the city's next input
            logger.info("pipeline: no confirmation tick for city %d (%s: %s); its delivered records leave the "
                        "outbox at its next input", city_id, type(exc).__name__, exc)  # fmt: skip

    async def process(events: Sequence[EventT]) -> list[Any]:
        """Handle a batch; returns the changelog sends of its pane deletes (its offsets wait for them).

        The two tables have changelog topics of their own, and the broker orders nothing between them. A
        worker that rebuilds the tables from the changelogs must never find a city state that counts an
        observation whose pane row is missing: the state says it was applied, so its redelivery would be
        judged against the pane and lost. Hence pane writes first, then (once the broker has them) the
        states, then (once the broker has those) the deletes of panes the states no longer need. A crash
        leaves panes ahead of the state, never behind it: rows the state has not applied do not count until
        it does (``weatherstream/core/aggregator.py``).
        """
        by_city: dict[int, list[tuple[EventT, Observation | None]]] = {}
        for event in events:
            msg = event.message
            if msg.topic == settings.topic_ticks:
                ticks_in.inc()
                by_city.setdefault(int(msg.key or b"0"), []).append((event, None))
                continue

            async def stage1(event: EventT = event) -> Observation | None:
                return await validate(event)

            obs = await with_retries("pipeline", [event], stage1, topics.deadletter)
            if obs is not None:
                by_city.setdefault(obs.city_id, []).append((event, obs))
        applied: list[tuple[int, list[EventT], CityOutput]] = []
        for city_id, items in by_city.items():
            city_events = [event for event, _ in items]

            async def stage2(city_id: int = city_id, items: list[Any] = items) -> CityOutput:
                if tables_closing():
                    # A stopping worker closes its tables before it cancels its agents: a table read now
                    # could come back empty and the write would lose state.
                    raise WorkerStopping("the tables are closed")
                with acting_for(items[-1][0]):
                    return apply_city(city_id, items)  # no await inside: reads and writes are all-or-nothing

            out = await with_retries("pipeline", city_events, stage2, topics.deadletter)
            if out is None:
                continue  # never applied: dead-lettered as internal_error, kept for a replay
            applied.append((city_id, city_events, out))

        await delivered(app, await panes.send_changelog())
        for city_id, city_events, out in applied:
            if out.city_state is not None:
                if tables_closing():
                    raise WorkerStopping("the tables are closed")
                with acting_for(city_events[-1]):
                    city_states.set(city_id, out.city_state)

            async def stage3(city_id: int = city_id, out: CityOutput = out) -> None:
                await send(city_id, out)

            # The state is written: its outputs must go out. Retried until they do (never dead-lettered, which
            # would leave state that no replay could repeat).
            await with_retries("pipeline", city_events, stage3, topics.deadletter, forever=True, stopping=stopping)
        # Panes behind the watermark are deleted only once the states that no longer list them are in the
        # changelog: a state rebuilt after a crash is older than the panes and may still need them (a worker
        # killed after deleting them ahead of its state lost 27 rows of a 24 h window that way).
        await delivered(app, await city_states.send_changelog())
        for city_id, city_events, out in applied:
            drops = windows.pane_drops((out.city_state or {}).get("windows"))
            if drops:
                if tables_closing():
                    raise WorkerStopping("the tables are closed")
                with acting_for(city_events[-1]):
                    for start in drops:
                        panes.delete(pane_key(city_id, start))
        return await panes.send_changelog()

    guard = OffsetGuard(app, "pipeline")

    @app.agent(source, name="pipeline")
    async def pipeline(stream: StreamT) -> None:
        """Validate, window and judge every observation; never stops on bad input."""
        batches = stream.take_events(  # type: ignore[attr-defined]  # faust's StreamT lacks it
            settings.batch_max_events, within=settings.batch_within_ms / 1000
        )
        async for batch in joined_batches(app, batches, guard, settings.batch_max_events,
                                          settings.batch_backlog_max_events):  # fmt: skip
            await run_batch(app, "pipeline", batch, process)

    @app.timer(interval=settings.tick_interval_s)
    async def ticks() -> None:
        """Tick quiet cities (windows must close, silence is an alert) and cities with unsent records."""
        now = time.time()
        due: set[int] = set()
        for city_id, value in list(city_states.table.items()):
            header, state = (value or {}).get("windows"), (value or {}).get("anomaly")
            if header:
                silent = header.get("last_wall") is not None and now - header["last_wall"] > settings.idle_timeout_s
                if (silent and any(header.get("open", {}).values())) or aggregates_out.unsent(header["outbox"]):
                    due.add(int(city_id))
            if state:
                quiet = (
                    state.get("last_wall") is not None
                    and "silent_station" not in state.get("incidents", {})
                    and (now - state["last_wall"] > settings.silent_factor * engine.cadence_s(state))
                )
                if quiet or alerts_out.unsent(state["outbox"]):
                    due.add(int(city_id))
        for city_id in sorted(due):
            await topics.ticks.send(key=city_key(city_id), value=orjson.dumps({"sent_at": now}))

    app.ws_pipeline = pipeline  # type: ignore[attr-defined]
    app.ws_tables = {t.table.name: t.table for t in (city_states, panes)}  # type: ignore[attr-defined]
