"""Pipeline agent: validation, windows and anomaly detection in one pass, a batch of input at a time.

Consumes: ``{ns}.raw`` (raw payload bytes; key = city id) and ``{ns}.ticks`` (ticks, key = city id;
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
State: one RocksDB table (``agents/statetable.py``) with a record per city (window state, anomaly state,
newest observation) and its cold window slices (:mod:`weatherstream.core.aggregator`).

The rules live in :mod:`weatherstream.core`; this module does the I/O, in named steps:
:meth:`Pipeline.handle_batch` validates a batch (:meth:`~Pipeline.validate`), groups it by city, applies
each city's events to its state (:meth:`~Pipeline.apply_city`), writes the state
(:meth:`~Pipeline.write_city`), queues the outputs (:meth:`~Pipeline.queue_outputs`) and sends them as one
producer batch per partition (:mod:`weatherstream.outgoing`), then waits until the broker has the state's
changelog records (only then may the batch's offsets be committed). :class:`DueTicks` sends ticks to the
cities that are due. One agent does all of it because every Kafka record and table write costs the same fixed
framework overhead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from faust.types import EventT, StreamT

from agents.batching import OffsetGuard, delivered, event_batches, joined_batches, run_batch
from agents.cityindex import CityIndex
from agents.deadletters import send_dead_letter
from agents.outbox import OutboxSender
from agents.resilience import Backoff, WorkerStopping, with_retries
from agents.statetable import StateTable
from models import Aggregate, Alert, Observation, Reason, city_key
from models.observation import LATEST_FIELDS
from weatherstream import internals, metrics
from weatherstream.app import Topics, WeatherStreamApp
from weatherstream.core import aggregator
from weatherstream.core.anomaly import engine as anomaly
from weatherstream.core.anomaly.baseline import HourlyBaseline
from weatherstream.core.anomaly.detectors import QualityDetector, RateDetector, StatisticalDetector
from weatherstream.core.codec import CityRecord, encode_latest, peek_record
from weatherstream.core.normalize import InvalidPayload, normalize
from weatherstream.core.summary import Sample
from weatherstream.core.windows import WindowSpec
from weatherstream.outgoing import RecordBatches
from weatherstream.settings import Settings
from weatherstream.stateadmin import STATE_TABLE
from weatherstream.transport import CHECK_EVERY_S, AdaptiveFetch

logger = logging.getLogger(__name__)

REKEY_HEADER = "ws-rekeyed-from"
#: how long a city with delivered output waits for its next input before a tick confirms the delivery
CONFIRM_WAIT_S = 1.0
#: the pause before a run that starts again after a failed batch: the first, doubling up to the second
RESTART_PAUSE_S = (0.5, 10.0)
AGGREGATE_FIELDS = set(Aggregate._options.fields)
ALERT_FIELDS = set(Alert._options.fields)
#: outputs and changelog records waiting beyond this many bytes are sent before the batch goes on (all of a
#: batch's at once made produce requests of megabytes, copied twice on their way to the socket: +30 MB RSS)
SEND_EVERY_BYTES = 256 * 1024
#: an observation's values that its city's record keeps as the newest (for the web view)
latest_values = operator.attrgetter(*LATEST_FIELDS)


def window_config(settings: Settings) -> aggregator.AggregatorConfig:
    """The windowing rules the settings describe."""
    return aggregator.AggregatorConfig(
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


def sample_of(obs: Observation, offset: int) -> Sample:
    """What window summaries take of an observation read at ``offset``."""
    return Sample(
        obs.observed_at, offset, obs.timezone_offset_s or 0, obs.temp_c, obs.feels_like_c, obs.humidity_pct,
        obs.pressure_hpa, obs.wind_speed_ms, obs.rain_1h_mm, obs.snow_1h_mm, obs.wind_gust_ms, obs.condition_main,
    )  # fmt: skip


def due_after_restart(record: CityRecord, due: float | None, now: float) -> float | None:
    """The due time stored with the record, for a worker that rebuilds its index of cities: ``now`` if outputs
    wait in the outbox (they may never have been sent), else ``due``."""
    if (record.windows is not None and record.windows.outbox) or (record.anomaly and record.anomaly["outbox"]):
        return now if due is None else min(due, now)
    return due


def aggregate_record(entry: dict[str, Any]) -> Aggregate:
    """The aggregate record of a window state's outbox entry."""
    return internals.new_record(Aggregate, {k: v for k, v in entry.items() if k in AGGREGATE_FIELDS})


def alert_record(entry: dict[str, Any]) -> Alert:
    """The alert record of an anomaly state's outbox entry."""
    return internals.new_record(Alert, {k: v for k, v in entry.items() if k in ALERT_FIELDS})


def headers_of(event: EventT) -> dict[str, bytes]:
    raw: Any = event.headers or event.message.headers or {}
    items = raw.items() if isinstance(raw, Mapping) else raw
    return {str(k): bytes(v) if v is not None else b"" for k, v in items}


@dataclass
class DeadLetterOut:
    event: EventT
    reason: Reason
    message: str
    source: str | None


@dataclass
class CityOutput:
    """What one city's part of a batch writes and sends."""

    record: CityRecord
    changes: aggregator.Changes | None = None
    write: bool = False  # the record must be written
    due: float | None = None  # when the city next needs a tick (:meth:`Pipeline.due_at`)
    observations: list[Observation] = field(default_factory=list)
    dead_letters: list[DeadLetterOut] = field(default_factory=list)

    def to_send(self) -> CitySends:
        """What is left to send once the record is written (the record itself may then be freed: a batch of
        thousands of stations holds this for each of them until its sends)."""
        windows_outbox = self.record.windows.outbox if self.record.windows is not None else []
        alerts_outbox = self.record.anomaly["outbox"] if self.record.anomaly is not None else []
        return CitySends(self.observations, self.dead_letters, windows_outbox, alerts_outbox)


@dataclass
class CitySends:
    """One city's sends of a batch: its dead letters, observations and unconfirmed outbox entries."""

    observations: list[Observation]
    dead_letters: list[DeadLetterOut]
    aggregates: list[dict[str, Any]]
    alerts: list[dict[str, Any]]


class Pipeline:
    """The pipeline's steps, with their dependencies: settings, topics, the state table and the city index."""

    def __init__(self, app: WeatherStreamApp, settings: Settings, topics: Topics, state: StateTable,
                 cities: CityIndex) -> None:  # fmt: skip
        self.app, self.settings, self.topics, self.state, self.cities = app, settings, topics, state, cities
        self.aggregator = aggregator.Aggregator(window_config(settings))
        self.engine = anomaly.AnomalyEngine(engine_config(settings))
        # Records this worker wrote in an earlier batch of the same generation are durable (delivered); a
        # failed batch starts a new generation, so nothing it may have left half-sent counts as durable.
        self.gen = 0
        self.new_generation()
        self.outgoing = RecordBatches(app, "pipeline outputs")  # observations, aggregates and alerts of a batch
        self.aggregates_out = OutboxSender(topics.aggregates, aggregate_record, lambda e: e["eid"], "aggregates")
        self.alerts_out = OutboxSender(topics.alerts, alert_record, anomaly.outbox_id, "alerts")
        self.confirming: set[asyncio.Future[None]] = set()  # one task per batch with outbox sends
        self.awaiting: dict[int, object] = {}  # city -> the latest delivery no batch has applied the city since
        self.raw_in, self.ticks_in = metrics.EVENTS_IN.labels("raw"), metrics.EVENTS_IN.labels("ticks")
        self.observations_out = metrics.EVENTS_OUT.labels("observations")  # a label lookup costs 1 µs per city

    def tables_closing(self) -> bool:
        return bool(self.app.tables.should_stop or self.state.table.should_stop)

    def stopping(self) -> bool:
        return bool(self.app.should_stop)

    # -- one batch ------------------------------------------------------------------------------------
    async def handle_batch(self, events: Sequence[EventT]) -> None:
        """Handle a batch, until the broker has its table writes (only then may its offsets be committed)."""
        try:
            by_city = await self.group_by_city(events)
            changelog: list[Any] = []  # the sends of the state's changelog records
            deliveries: list[tuple[int, list[Any]]] = []
            for city_id, items in by_city.items():
                city_events = [event for event, _ in items]

                async def step(city_id: int = city_id, items: list[Any] = items) -> CitySends:
                    if self.tables_closing():
                        # A stopping worker closes its tables before it cancels its agents: a table read now
                        # could come back empty and the write would lose state.
                        raise WorkerStopping("the tables are closed")
                    try:
                        with internals.acting_for(items[-1][0]):  # no await inside
                            out = self.apply_city(city_id, items)
                            self.write_city(city_id, items[-1][0].message.partition, out)
                            return out.to_send()
                    except BaseException:
                        self.new_generation()  # a retry must not take what this attempt wrote for durable
                        raise

                out = await with_retries("pipeline", city_events, step, self.topics.deadletter)
                if out is None:  # never applied, dead-lettered as internal_error (kept for a replay)
                    continue
                # The city's state is written: its outputs must go out. Retried until they do (never
                # dead-lettered, which would leave state that no replay could repeat).
                if out.dead_letters:

                    async def send_letters(out: CitySends = out) -> None:
                        await self.send_dead_letters(out)

                    await with_retries("pipeline", city_events, send_letters, self.topics.deadletter, forever=True,
                                       stopping=self.stopping)  # fmt: skip
                sent = self.queue_outputs(city_id, out)
                if sent:
                    deliveries.append((city_id, sent))
                # An alert goes out at once (with what was queued before it), not behind the rest of the batch;
                # a batch of many stations writes megabytes: what waits beyond SEND_EVERY_BYTES goes out too.
                if out.alerts or self.outgoing.waiting_bytes >= SEND_EVERY_BYTES:
                    await self.send_outputs(events)
                if self.state.outgoing.waiting_bytes >= SEND_EVERY_BYTES:
                    changelog += await self.state.send_changelog()
                    await asyncio.sleep(0)
            await self.send_outputs(events)
            if deliveries:
                task = asyncio.ensure_future(self.confirm_when_delivered(deliveries))
                self.confirming.add(task)
                task.add_done_callback(self.confirming.discard)
            await delivered(self.app, changelog + await self.state.send_changelog())
        except BaseException:
            self.new_generation()  # what this batch wrote may never reach the changelog
            raise

    def new_generation(self) -> None:
        """Records written from now on are told apart from those of batches that may not have been delivered."""
        self.gen = random.getrandbits(62)

    async def group_by_city(self, events: Sequence[EventT]) -> dict[int, list[tuple[EventT, Observation | None]]]:
        """The batch's ticks and valid observations by city (invalid input is dead-lettered on the way)."""
        by_city: dict[int, list[tuple[EventT, Observation | None]]] = {}
        for event in events:
            msg = event.message
            if msg.topic == self.settings.topic_ticks:
                self.ticks_in.inc()
                by_city.setdefault(int(msg.key or b"0"), []).append((event, None))
                continue
            self.raw_in.inc()
            obs = self.accepted(event)
            if obs is None:  # anything but a valid observation keyed by its city: the careful way, with retries

                async def validate(event: EventT = event) -> Observation | None:
                    return await self.validate(event)

                obs = await with_retries("pipeline", [event], validate, self.topics.deadletter)
            if obs is not None:
                by_city.setdefault(obs.city_id, []).append((event, obs))
        return by_city

    def accepted(self, event: EventT) -> Observation | None:
        """The event's observation if it is valid and keyed by its city; None for anything else (even a bug in
        normalize), which :meth:`validate` then handles. Most input takes this way, without retries and sends."""
        try:
            obs = self.observation_of(event, headers_of(event))
        except Exception:  # noqa: BLE001 - validate() meets it again, and dead-letters it
            return None
        return obs if event.message.key == city_key(obs.city_id) else None

    def observation_of(self, event: EventT, headers: dict[str, bytes]) -> Observation:
        """The event's observation (raises :class:`InvalidPayload`)."""
        source = headers.get("source", b"").decode("utf-8", "replace") or "unknown"
        units = headers.get("units", b"metric").decode("utf-8", "replace") or "metric"
        payload = event.value if isinstance(event.value, bytes) else b""
        return normalize(payload, now=time.time(), units=units, source=source,
                         max_bytes=self.settings.max_payload_bytes)  # fmt: skip

    async def validate(self, event: EventT) -> Observation | None:
        """One raw message -> an observation, or a dead letter or a re-keyed copy (None)."""
        headers = headers_of(event)
        try:
            obs = self.observation_of(event, headers)
        except InvalidPayload as exc:
            source = headers.get("source", b"").decode("utf-8", "replace") or None
            await send_dead_letter(self.topics.deadletter, event, exc.reason, exc.message, source)
            return None
        key = city_key(obs.city_id)
        if event.message.key != key:
            # Re-key through the same topic: the city's state must sit in the city's partition.
            rekey_headers = [(k, v) for k, v in headers.items() if k != REKEY_HEADER]
            rekey_headers.append((REKEY_HEADER, repr(event.message.key).encode()[:200]))
            await self.topics.raw.send(key=key, value=event.value, headers=rekey_headers)
            metrics.REKEYED.inc()
            return None
        return obs

    # -- one city's part of a batch -------------------------------------------------------------------
    def repeat(self, out: CityOutput, event: EventT, obs: Observation, reason: Reason) -> None:
        """An observation that cannot change anything (a repeat, or too old to tell): counted, and logged at
        debug level; a dead letter too only with ``dead_letter_repeats`` (a re-run replay is not a problem).
        The message is made only when something uses it (a replay's repeats are many)."""
        metrics.REPEATS.labels(reason.value).inc()
        letter = self.settings.dead_letter_repeats
        if not letter and not logger.isEnabledFor(logging.DEBUG):
            return
        why = ("was already accepted" if reason is Reason.DUPLICATE else
               f"is more than {self.settings.correction_horizon_s:.0f} s behind the city's watermark: too late to "
               "correct its windows or to tell whether it is a repeat")  # fmt: skip
        message = f"city {obs.city_id} dt {obs.observed_at:.0f} {why}"
        logger.debug("repeat (%s): %s", reason.value, message)
        if letter:
            out.dead_letters.append(DeadLetterOut(event, reason, message, obs.source))

    def apply_city(self, city_id: int, items: Sequence[tuple[EventT, Observation | None]]) -> CityOutput:
        """Apply the city's observations and ticks of the batch, in order, to its record (not written yet)."""
        # A record read from the database is this batch's own (changed in place); a cached one is copied first.
        read, own = self.state.record_to_change(city_id)
        before = read or CityRecord()
        first = next((event.message.offset for event, obs in items if obs is not None), None)
        last_offset, wm_before = (before.windows.last_offset, before.windows.wm) if before.windows else (-1, None)
        # The record's batch was delivered if this worker wrote it in this generation, or if the city's first
        # observation is new to it (the batch that wrote it was committed: otherwise its input came first).
        durable = before.gen == self.gen or (first is not None and first > last_offset)
        city = self.aggregator.begin(city_id, before.windows, lambda start: self.state.slice(city_id, start),
                                     owned=own)  # fmt: skip
        state, latest, newest_t = before.anomaly, before.latest, before.newest
        owned = own  # whether ``state`` is this batch's own (the engine may then change it in place)
        newest: Observation | None = None  # the batch's newest observation (kept if at least as new as ``latest``)
        out = CityOutput(before, write=bool(first is not None))
        heal = False  # after a re-delivery: its batch may never have reached the changelog (written again)
        for event, obs in items:
            now = time.time()
            if obs is None:  # a tick
                city.tick(wall_now=now)
                ticked = self.engine.tick(state, city_id, wall_now=now)
                out.write = out.write or ticked.state is not state
                owned = owned or ticked.state is not state
                state = ticked.state
                continue
            offset = event.message.offset
            verdict = city.apply(sample_of(obs, offset), wall_now=now, event_ts=event.message.timestamp)
            if verdict in (aggregator.Verdict.REDELIVERED, aggregator.Verdict.FORGOTTEN):
                metrics.REDELIVERED.inc()
            if verdict is aggregator.Verdict.FORGOTTEN:
                continue
            if verdict is aggregator.Verdict.DUPLICATE:
                self.repeat(out, event, obs, Reason.DUPLICATE)
                continue
            if verdict is aggregator.Verdict.TOO_LATE:
                self.repeat(out, event, obs, Reason.TOO_LATE)
                continue
            # APPLIED, or REDELIVERED after a crash: the first send may never have left the producer. A second
            # copy is harmless: the sinks overwrite by (city, time).
            out.observations.append(obs)
            if newest is None or obs.observed_at >= newest.observed_at:
                newest = obs
            heal = heal or verdict is aggregator.Verdict.REDELIVERED
            outcome = self.engine.apply(state, obs, offset, wall_now=now, owned=owned)
            obs.pressure_tendency_3h_hpa = outcome.pressure_tendency_3h_hpa
            heal = heal or outcome.verdict is anomaly.Verdict.REDELIVERED
            state, owned = outcome.state, True
            for alert in outcome.alerts:
                metrics.ALERTS.labels(alert["kind"], alert["severity"], alert["state"]).inc()
        for entry in city.emissions:
            kind_metric = metrics.WINDOWS_CORRECTED if entry["revision"] > 1 else metrics.WINDOWS_FINALIZED
            kind_metric.labels(entry["kind"]).inc()
        changes = out.changes = city.end(durable=durable and not heal)
        window_state = aggregator.confirm(changes.state, self.aggregates_out.delivered(changes.state.outbox))
        if state is not None:
            state = anomaly.confirm(state, self.alerts_out.delivered(state["outbox"]))
        self.awaiting.pop(city_id, None)  # what was delivered by now is confirmed (see confirm_when_delivered)
        out.write = (out.write or heal or changes.rewrite or bool(city.emissions) or bool(changes.cold_writes)
                     or bool(changes.deletes) or window_state.wm != wm_before or window_state is not changes.state
                     or state is not before.anomaly)  # fmt: skip
        if newest is not None and (newest_t is None or newest.observed_at >= newest_t):
            latest = encode_latest(dict(zip(LATEST_FIELDS, latest_values(newest), strict=True)))
            newest_t = newest.observed_at
        out.record = CityRecord(self.gen, None, newest_t, window_state, state, latest)
        out.due = self.due_at(out.record)
        out.record.due = due_after_restart(out.record, out.due, time.time())
        return out

    def due_at(self, record: CityRecord) -> float | None:
        """When the city next needs a tick: a window its silence would close, or its silence becoming an alert.
        (While a worker runs, a send that fails makes the city due again: :meth:`CityIndex.due_again`.)"""
        windows, silence = self.aggregator.due_at(record.windows), self.engine.due_at(record.anomaly)
        if windows is None or silence is None:
            return silence if windows is None else windows
        return min(windows, silence)

    def write_city(self, city_id: int, partition: int, out: CityOutput) -> None:
        """Write the city's cold slices, then its record, then the deletes (in this order in the changelog)."""
        changes = out.changes
        if changes is not None:
            for start, s in changes.cold_writes.items():
                self.state.put_slice(city_id, start, s)
        if out.write:
            self.state.put_record(city_id, out.record)
        if changes is not None:
            for start in changes.deletes:
                self.state.delete_slice(city_id, start)
        self.cities.update(city_id, partition, out.due, out.record.newest)

    async def send_outputs(self, events: Sequence[EventT]) -> None:
        """Hand the outputs queued so far to the producer, and let it send them before more are queued (a batch's
        outputs at once made requests of megabytes, copied twice on their way to the socket)."""
        await with_retries("pipeline", events, self.outgoing.send, self.topics.deadletter, forever=True,
                           stopping=self.stopping)  # fmt: skip
        await asyncio.sleep(0)

    async def send_dead_letters(self, out: CitySends) -> None:
        """Send the city's dead letters of the batch."""
        for letter in out.dead_letters:
            await send_dead_letter(self.topics.deadletter, letter.event, letter.reason, letter.message, letter.source)
        out.dead_letters = []  # sent: a retry of what follows must not send them again

    def queue_outputs(self, city_id: int, out: CitySends) -> list[Any]:
        """Add the city's observations and unconfirmed outbox entries to the batch's outgoing records (sent
        together at the batch's end); returns the outbox entries' futures."""
        for obs in out.observations:
            self.outgoing.add(self.topics.observations, obs.city_id, obs)
        self.observations_out.inc(len(out.observations))
        sent = self.aggregates_out.send(city_id, out.aggregates, self.outgoing)
        sent += self.alerts_out.send(city_id, out.alerts, self.outgoing)
        return sent

    async def confirm_when_delivered(self, deliveries: list[tuple[int, list[Any]]]) -> None:
        """Once the broker has a batch's outbox records, make sure the cities' states drop them from the outbox.

        Without this they would stay in the outbox until the city's next input, and a restart in between
        would send them again (harmless, same ids, but subscribers would see them twice). A city whose next
        input comes within ``CONFIRM_WAIT_S`` confirms them in that batch; only a city that stays quiet gets a
        tick (under steady input, a tick per city and batch was one more message for every six inputs). A city
        whose send failed is due for a retry instead. One task per batch, not per city.
        """
        await asyncio.wait([f for _, sent in deliveries for f in sent])
        now = time.time()
        waiting: list[tuple[int, object]] = []
        for city_id, sent in deliveries:
            failed = [f for f in sent if f.cancelled() or f.exception() is not None]  # every exception read
            if failed:
                self.cities.due_again(city_id, now + self.settings.tick_interval_s)
                continue
            delivery = self.awaiting[city_id] = object()
            waiting.append((city_id, delivery))
        await asyncio.sleep(CONFIRM_WAIT_S)
        for city_id, delivery in waiting:
            if self.awaiting.get(city_id) is not delivery:
                continue  # a batch applied the city since (it confirmed the records), or a later delivery waits
            del self.awaiting[city_id]
            if self.stopping():
                continue  # the producer is going: the records stay in the outbox and go out again after a restart
            if not await send_tick(self.topics, city_id, "no confirmation tick"):
                self.cities.due_again(city_id, time.time() + self.settings.tick_interval_s)


async def send_tick(topics: Topics, city_id: int, failure: str) -> bool:
    """Send the city a tick; False (logged) if it could not be sent."""
    try:
        await topics.ticks.send(key=city_key(city_id), value=orjson.dumps({"sent_at": time.time()}))
    except Exception as exc:  # noqa: BLE001 - the caller makes the city due again
        logger.info("pipeline: %s for city %d (%s: %s)", failure, city_id, type(exc).__name__, exc)
        return False
    return True


class DueTicks:
    """Ticks for the cities that are due (:class:`CityIndex`): a run costs the cities due, not all of them.

    The index is rebuilt from the table for the partitions a worker gains, once their recovery is complete.
    """

    def __init__(self, app: WeatherStreamApp, settings: Settings, topics: Topics, state: StateTable,
                 cities: CityIndex) -> None:  # fmt: skip
        self.app, self.settings, self.topics, self.state, self.cities = app, settings, topics, state, cities

    async def run(self) -> None:
        """Send a tick to every city that is due now."""
        for city_id in self.cities.pop_due(time.time(), self.settings.tick_interval_s):
            await send_tick(self.topics, city_id, "no tick")  # if it is lost, pop_due made the city due again

    async def rebuild(self) -> None:
        """After recovery: forget the partitions this worker lost, index the ones it gained."""
        started = time.monotonic()
        gained = self.cities.keep(internals.active_partitions(self.app, self.state.table))
        count = 0
        for partition in gained:
            self.cities.known(partition)
            for city_id, value in self.state.records_in(partition):
                due, newest = peek_record(value)
                self.cities.update(city_id, partition, due, newest)
                count += 1
        if gained:
            logger.info("pipeline: indexed %d cities of partitions %s in %.2f s", count, gained,
                        time.monotonic() - started)  # fmt: skip


class PipelineAgent:
    """The pipeline agent's body: the stream's events in batches (admitted in offset order by ``guard``), each
    handled by :meth:`Pipeline.handle_batch`; never stops on bad input.

    A batch whose outputs or changelog records the brokers did not take for a passing reason (a timeout, a
    lost connection or leader, e.g. while a broker is lost) is not retried alone: the agent starts again on its
    stream, as after a crash, and the batch and every event taken after it are fetched again from the committed
    offsets, in order (:meth:`OffsetGuard.restart`), after a pause that doubles while batches keep failing
    (:data:`RESTART_PAUSE_S`). Any other error is faust's to handle (it restarts the agent the same way).
    """

    def __init__(self, app: WeatherStreamApp, settings: Settings, pipeline: Pipeline, guard: OffsetGuard,
                 fetch: AdaptiveFetch, source_topics: set[str]) -> None:  # fmt: skip
        self.app = app
        self.settings = settings
        self.pipeline = pipeline
        self.guard = guard
        self.fetch = fetch
        self.source_topics = source_topics
        self.failures = 0  # batches failed since the last one handled
        self.backoff = Backoff(*RESTART_PAUSE_S)  # the pause before a run that starts again after a failed batch

    async def run(self, stream: StreamT) -> None:
        while True:
            try:
                await self.handle_stream(stream)
                return
            except KafkaError as exc:
                if self.app.should_stop or not passing(exc):
                    raise
                self.failures += 1
                log = logger.error if self.failures >= 5 else logger.warning
                log("pipeline: a batch's output did not reach the brokers (%s: %s; %d failed in a row); starting "
                    "again on the stream in %.1f s", type(exc).__name__, exc, self.failures,
                    self.backoff.delay)  # fmt: skip

    async def handle_stream(self, stream: StreamT) -> None:
        settings = self.settings
        batches = event_batches(stream, settings.batch_max_events, settings.batch_within_ms / 1000,
                                on_restart=self.restart)  # fmt: skip
        joined = joined_batches(self.app, batches, self.guard, settings.batch_max_events,
                                settings.batch_backlog_max_events)  # fmt: skip
        async with contextlib.aclosing(batches), contextlib.aclosing(joined):
            async for batch in joined:
                self.fetch.count(len(batch.events))
                await run_batch(self.app, "pipeline", batch, self.pipeline.handle_batch)
                if self.failures:
                    self.failures = 0
                    self.backoff = Backoff(*RESTART_PAUSE_S)

    async def restart(self) -> None:
        """This run took the stream over from an earlier one: fetch what that one held again, then pause."""
        await self.guard.restart(self.source_topics)
        if self.failures:  # not after a crash: faust's supervisor paces those
            await self.backoff.wait()


def passing(exc: KafkaError) -> bool:
    """Whether a send failed for a reason that passes (a broker, a leader or the connection lost for a while)."""
    return bool(getattr(exc, "retriable", False)) or isinstance(exc, (KafkaTimeoutError, KafkaConnectionError))


@dataclass(frozen=True)
class PipelineParts:
    """What the pipeline's registration made (the web views read the state and the index)."""

    pipeline: Pipeline
    state: StateTable
    cities: CityIndex
    agent: Any


def register(app: WeatherStreamApp, settings: Settings, topics: Topics) -> PipelineParts:
    """Declare the pipeline's table, agent and tick timer on ``app``."""
    table = app.Table(STATE_TABLE, default=None, key_type=bytes, value_type=bytes, partitions=settings.partitions,
                      options=app.table_options(), extra_topic_configs=app.table_topic_configs(),
                      help="Per city: its record and cold window slices (weatherstream.core.codec).")  # fmt: skip
    state = StateTable(app, table, record_entries=settings.state_cache_cities,
                       slice_entries=settings.state_cache_slices)  # fmt: skip
    cities = CityIndex()
    pipeline = Pipeline(app, settings, topics, state, cities)
    ticks = DueTicks(app, settings, topics, state, cities)
    table.on_recover(ticks.rebuild)
    app.timer(interval=settings.tick_interval_s, name="pipeline.ticks")(ticks.run)
    source = app.topic(settings.topic_raw, settings.topic_ticks, key_serializer="raw", value_serializer="raw",
                       partitions=settings.partitions)  # fmt: skip
    source_topics = set(source.topics)
    guard = OffsetGuard(app, "pipeline")
    fetch = AdaptiveFetch(app, settings.consumer_fetch_max_wait_ms, settings.consumer_fetch_min_bytes)
    app.timer(interval=CHECK_EVERY_S, name="pipeline.fetch")(fetch.check)

    body = PipelineAgent(app, settings, pipeline, guard, fetch, source_topics)
    agent = app.agent(source, name="pipeline")(body.run)
    return PipelineParts(pipeline, state, cities, agent)
