"""Sink agent: observations, aggregates and alerts into Cassandra, nothing lost, nothing overwritten.

Consumes: ``{ns}.observations``, ``{ns}.aggregates`` and ``{ns}.alerts`` (JSON records, key = city id).
Writes: ``observations_by_city_day``, ``aggregates_by_city``, ``alerts_by_city`` and ``alerts_by_day``
(see ``weatherstream/sinks/migrations``), with prepared statements, at most
``WEATHERSTREAM_SINK_MAX_IN_FLIGHT`` requests at once.
Emits: ``{ns}.deadletter`` for a record that is not one (``bad_type``) or that Cassandra refuses
(``sink_rejected``), with the original bytes.

At start the agent connects and applies the schema migrations, retrying until Cassandra answers.
A batch's offsets are committed only after every row of it is written. While Cassandra is down or
timing out, the failed rows are retried with a doubling delay (at most ``WEATHERSTREAM_SINK_RETRY_MAX_S``)
and the agent does not move on. Primary keys come from the records, so a record delivered twice
(after a crash, a retry, a replay) writes the same row again: exactly one row per record.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson
from faust.types import EventT, StreamT

from agents.batching import OffsetGuard, WorkerStopping, run_batch
from agents.deadletters import send_dead_letter
from models import Reason
from weatherstream import metrics
from weatherstream.app import WeatherStreamApp
from weatherstream.sinks import rows
from weatherstream.sinks.cassandra import CassandraWriter, RowsFailed, RowWrite, retryable

logger = logging.getLogger(__name__)

YIELD_EVERY_RECORDS = 500
OBSERVATION_CITY = rows.OBSERVATIONS.columns.index("city_id")
OBSERVATION_TIME = rows.OBSERVATIONS.columns.index("observed_at")


def register(app: WeatherStreamApp) -> None:
    """Declare the sink agent on ``app``."""
    settings = app.ws_settings
    topics = app.ws_topics
    writer = CassandraWriter(settings)
    tables_of = {
        settings.topic_observations: (rows.OBSERVATIONS,),  # and latest_by_city: see to_writes
        settings.topic_aggregates: (rows.AGGREGATES,),
        settings.topic_alerts: (rows.ALERTS_BY_CITY, rows.ALERTS_BY_DAY),
    }
    source = app.topic(*tables_of, key_serializer="raw", value_serializer="raw", partitions=settings.partitions)

    async def connect() -> None:
        delay = 0.5
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, writer.open)
            except Exception as exc:  # noqa: BLE001 - logged; the agent must outlive an outage at start
                metrics.SINK_RETRIES.labels(type(exc).__name__).inc()
                logger.warning("sink: %s; trying again in %.1f s (nothing is lost: the sink starts where it "
                               "stopped)", exc, delay)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, settings.sink_retry_max_s)
                continue
            metrics.SINK_CONNECTED.set(1)
            logger.info("sink: writing to Cassandra at %s, keyspace %s", writer.where, settings.keyspace)
            return

    async def to_writes(events: Sequence[EventT]) -> list[RowWrite]:
        writes: list[RowWrite] = []
        # latest_by_city keeps a city's newest observation (written USING TIMESTAMP of its time, so an older
        # one never wins): of a batch, only each city's newest observation becomes a row there.
        newest: dict[Any, tuple[Any, Any, EventT]] = {}  # city -> (observed_at, record, event)
        arrived: Counter[str] = Counter(event.message.topic for event in events)
        for topic, n in arrived.items():
            metrics.EVENTS_IN.labels(topic.rpartition(".")[2]).inc(n)
        for i, event in enumerate(events):
            if i and not i % YIELD_EVERY_RECORDS:
                await asyncio.sleep(0)  # CPU work: let the pipeline agent that shares the loop run
            topic = event.message.topic
            try:
                record = orjson.loads(event.value) if isinstance(event.value, (bytes, str)) else None
                made = [RowWrite(table, rows.row(table, record), event) for table in tables_of[topic]]  # type: ignore[arg-type]
            except (orjson.JSONDecodeError, rows.RowError) as exc:
                await send_dead_letter(
                    topics.deadletter, event, Reason.BAD_TYPE, f"sink: not a record of {topic}: {exc}"
                )
                continue
            writes.extend(made)
            if topic == settings.topic_observations:
                city, observed_at = made[0].values[OBSERVATION_CITY], made[0].values[OBSERVATION_TIME]
                held = newest.get(city)
                if held is None or observed_at >= held[0]:
                    newest[city] = (observed_at, record, event)
        # the observation row was made from the same record, so its latest_by_city row can be made too
        writes.extend(
            RowWrite(rows.LATEST, rows.row(rows.LATEST, record), event) for _, record, event in newest.values()
        )
        return writes

    async def one_by_one(writes: list[RowWrite]) -> list[tuple[RowWrite, BaseException]]:
        errors: list[tuple[RowWrite, BaseException]] = []
        for w in writes:
            try:
                await writer.write([w])
            except RowsFailed as failed:
                errors.extend(failed.errors)
        return errors

    async def write_all(writes: list[RowWrite]) -> None:
        delay = 0.1
        while writes:
            try:
                await writer.write(writes)
                return
            except RowsFailed as failed:
                errors = failed.errors
                hard = [w for w, exc in errors if not retryable(exc)]
                if len(hard) > 1:  # one bad row fails its whole batch: find which rows Cassandra refuses
                    errors = [(w, exc) for w, exc in errors if retryable(exc)] + await one_by_one(hard)
                refused = {id(w.ref): (w.ref, exc) for w, exc in errors if not retryable(exc)}
                for event, exc in refused.values():
                    await send_dead_letter(topics.deadletter, event, Reason.SINK_REJECTED,
                                           f"Cassandra refused the row: {type(exc).__name__}: {exc}")  # fmt: skip
                writes = [w for w, exc in errors if retryable(exc) and id(w.ref) not in refused]
                if not writes:
                    return
                first = next(exc for _, exc in errors if retryable(exc))
                if app.should_stop:
                    reason = f"{len(writes)} row(s) not written: {type(first).__name__}: {first}"
                    raise WorkerStopping(reason) from failed
                metrics.SINK_RETRIES.labels(type(first).__name__).inc(len(writes))
                logger.warning("sink: %d row(s) not written (%s: %s); retrying in %.1f s, not moving on",
                               len(writes), type(first).__name__, first, delay)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, settings.sink_retry_max_s)

    async def write_batch(events: Sequence[EventT]) -> None:
        await write_all(await to_writes(events))

    guard = OffsetGuard(app, "sink")

    @app.agent(source, name="sink")
    async def sink(stream: StreamT) -> None:
        """Write every record to its tables; retry outages; commit offsets only for written rows."""
        await connect()
        async for events in stream.take_events(  # type: ignore[attr-defined]  # faust's StreamT lacks it
            settings.sink_batch_max_events, within=settings.sink_batch_within_ms / 1000
        ):
            await run_batch(app, "sink", events, write_batch, guard)

    app.ws_sink = sink  # type: ignore[attr-defined]
    app.ws_sink_writer = writer  # type: ignore[attr-defined]
