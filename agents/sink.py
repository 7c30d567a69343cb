"""Sink: observations, aggregates and alerts into Cassandra, nothing lost, nothing overwritten.

Consumes: ``{ns}.observations``, ``{ns}.aggregates`` and ``{ns}.alerts`` (JSON records, key = city id),
in the consumer group ``{ns}.sink`` (``Settings.sink_group``) of every worker that runs it.
Writes: ``observations_by_city_day``, ``aggregates_by_city``, ``alerts_by_city`` and ``alerts_by_day``
(see ``weatherstream/sinks/migrations``), with prepared statements, at most
``WEATHERSTREAM_SINK_MAX_IN_FLIGHT`` requests at once.
Emits: ``{ns}.deadletter`` for a record that is not one (``bad_type``) or that Cassandra refuses
(``sink_rejected``), with the original bytes.

It runs as a task of the faust worker, with an aiokafka consumer of its own rather than a faust agent: it
needs batches, not a stream, and faust's per-message path (conductor, stream, acknowledgement) cost about
60 us of CPU per record, more than everything else the sink does with it (``docs/benchmarks.md``, what
changed the numbers). It keeps no tables, so it gives up nothing faust would provide.

At start it connects and applies the schema migrations, retrying until Cassandra answers, then joins its
group. A batch's offsets are committed only after every row of it is written and its dead letters are
delivered; a worker stopped or killed half way leaves the batch to be read again. While Cassandra is down or
timing out, the failed rows are retried with a doubling delay (at most ``WEATHERSTREAM_SINK_RETRY_MAX_S``)
and the sink does not move on. Primary keys come from the records, so a record read twice (after a crash,
a retry, a replay) writes the same row again: exactly one row per record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from agents.deadletters import send_dead_letter
from agents.resilience import Backoff, WorkerStopping
from models import Reason
from weatherstream import internals, kafka_clients, metrics
from weatherstream.app import Topics, WeatherStreamApp
from weatherstream.settings import Settings
from weatherstream.sinks import rows
from weatherstream.sinks.writer import (
    SCHEMA_BEHIND_ADVICE,
    CassandraWriter,
    RowsFailed,
    RowWrite,
    retryable,
    schema_behind,
)

logger = logging.getLogger(__name__)

YIELD_EVERY_RECORDS = 500
FETCH_MIN_BYTES = 256 * 1024
#: after an empty batch: one long poll this long, answered at the first byte (an idle worker rarely wakes)
QUIET_WAIT_MS = 5000
OBSERVATION_CITY = rows.OBSERVATIONS.columns.index("city_id")
OBSERVATION_TIME = rows.OBSERVATIONS.columns.index("observed_at")


Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


@dataclass(frozen=True)
class Delivery:
    """A record the sink read, shaped like the faust event a dead letter is made from (made only for those)."""

    message: Record

    @property
    def value(self) -> bytes | None:
        return self.message.value


class SinkProgress:
    """The sink's consumer and what it committed, for the web view's readiness and lag."""

    def __init__(self) -> None:
        self.consumer: AIOKafkaConsumer | None = None
        self.committed: dict[TopicPartition, int] = {}

    def assignment(self) -> set[TopicPartition]:
        return set(self.consumer.assignment()) if self.consumer is not None else set()

    def lag(self) -> dict[TopicPartition, int]:
        """Messages not yet written, per assigned partition whose end and last commit by this worker are known."""
        consumer = self.consumer
        out: dict[TopicPartition, int] = {}
        if consumer is None:
            return out
        for tp in sorted(consumer.assignment()):
            highwater = consumer.highwater(tp)
            if highwater is not None and tp in self.committed:
                out[tp] = max(0, highwater - self.committed[tp])
        return out


class SharedPartitions(ConsumerRebalanceListener):
    """Says which partitions the group gave this worker's sink (log and ``weatherstream_sink_partitions``), and
    forgets what this worker committed for partitions it gives up: another worker moves them on, and a stale
    offset would make the lag of a partition that comes back look larger than it is."""

    def __init__(self, progress: SinkProgress) -> None:
        self.progress = progress

    def on_partitions_revoked(self, revoked: Any) -> None:
        metrics.SINK_PARTITIONS.set(0)
        for tp in revoked:
            self.progress.committed.pop(tp, None)

    def on_partitions_assigned(self, assigned: Any) -> None:
        metrics.SINK_PARTITIONS.set(len(assigned))
        per_topic = Counter(tp.topic for tp in assigned)
        logger.info("sink: the group gave this worker %d partition(s): %s", len(assigned),
                    ", ".join(f"{n} of {topic}" for topic, n in sorted(per_topic.items())) or "none")  # fmt: skip


class BatchRows:
    """The Cassandra rows of a batch of records (pure: no I/O). Records arrive in chunks (:meth:`add`); a record
    that is not one of its topic goes to :attr:`refused` with the reason.

    latest_by_city keeps a city's newest observation (written USING TIMESTAMP of its time, so an older one never
    wins): of a batch, only each city's newest observation becomes a row there (:meth:`writes`).
    """

    def __init__(self, tables_of: dict[str, tuple[rows.Table, ...]], observations_topic: str) -> None:
        self.tables_of = tables_of
        self.observations_topic = observations_topic
        self.made: list[RowWrite] = []
        self.refused: list[tuple[Record, str]] = []
        self.newest: dict[Any, tuple[Any, RowWrite]] = {}  # city -> (observed_at, its observation row)

    def add(self, events: Sequence[Record]) -> None:
        for event in events:
            topic = event.topic
            try:
                record = orjson.loads(event.value) if isinstance(event.value, (bytes, str)) else None
                made = [RowWrite(table, rows.row(table, record), event) for table in self.tables_of[topic]]  # type: ignore[arg-type]
            except (orjson.JSONDecodeError, rows.RowError) as exc:
                self.refused.append((event, f"sink: not a record of {topic}: {exc}"))
                continue
            self.made.extend(made)
            if topic == self.observations_topic:
                observation = made[0]
                city, observed_at = observation.values[OBSERVATION_CITY], observation.values[OBSERVATION_TIME]
                held = self.newest.get(city)
                if held is None or observed_at >= held[0]:
                    self.newest[city] = (observed_at, observation)

    def writes(self) -> list[RowWrite]:
        """Every row of the records added, and the latest_by_city rows (taken from their observation rows, which
        the writer binds first: a latest row reuses their serialized values)."""
        return self.made + [
            RowWrite(rows.LATEST, rows.latest_of(w.values), w.ref, source=w) for _, w in self.newest.values()
        ]


class BatchWriter:
    """Writes a batch's rows, retrying what Cassandra could not take and dead-lettering what it refuses; a batch
    counts as written only once its dead letters are delivered too."""

    def __init__(self, app: WeatherStreamApp, settings: Settings, deadletter: Any, writer: CassandraWriter,
                 tables_of: dict[str, tuple[rows.Table, ...]]) -> None:  # fmt: skip
        self.app = app
        self.settings = settings
        self.deadletter = deadletter
        self.writer = writer
        self.tables_of = tables_of
        self.letters: list[Awaitable[Any]] = []  # dead-letter sends of the batch being written

    async def written(self, events: Sequence[Record]) -> bool:
        """Write the batch, trying again after anything unforeseen; False if the worker stops first."""
        backoff = Backoff(0.1, self.settings.sink_retry_max_s)
        while True:
            try:
                await self.write_batch(events)
                return True
            except WorkerStopping as exc:
                logger.info("sink: worker stopping, %d records left uncommitted for the next reader (%s)",
                            len(events), exc)  # fmt: skip
                return False
            except Exception as exc:  # e.g. a dead letter not delivered: the batch is not done, try it again
                if self.app.should_stop:
                    return False
                metrics.SINK_RETRIES.labels(type(exc).__name__).inc(len(events))
                logger.exception("sink: a batch of %d records failed (%s: %s); trying it again in %.1f s",
                                 len(events), type(exc).__name__, exc, backoff.delay)  # fmt: skip
                await backoff.wait()

    async def write_batch(self, events: Sequence[Record]) -> None:
        self.letters.clear()
        await self.write_all(await self.to_writes(events))
        if self.letters:
            await asyncio.gather(*self.letters)  # the batch counts only once its dead letters are delivered

    async def to_writes(self, events: Sequence[Record]) -> list[RowWrite]:
        for topic, n in Counter(event.topic for event in events).items():
            metrics.EVENTS_IN.labels(topic.rpartition(".")[2]).inc(n)
        batch = BatchRows(self.tables_of, self.settings.topic_observations)
        for start in range(0, len(events), YIELD_EVERY_RECORDS):
            if start:
                await asyncio.sleep(0)  # CPU work: let the pipeline agent that shares the loop run
            batch.add(events[start : start + YIELD_EVERY_RECORDS])
        for event, reason in batch.refused:
            await self.dead_letter(event, Reason.BAD_TYPE, reason)
        return batch.writes()

    async def dead_letter(self, event: Record, reason: Reason, message: str) -> None:
        self.letters.append(await send_dead_letter(self.deadletter, Delivery(event), reason, message))

    async def write_all(self, writes: list[RowWrite]) -> None:
        backoff = Backoff(0.1, self.settings.sink_retry_max_s)
        while writes:
            try:
                await self.writer.write(writes)
                return
            except RowsFailed as failed:
                errors = failed.errors
                hard = [w for w, exc in errors if not retryable(exc)]
                if len(hard) > 1:  # one bad row fails its whole batch: find which rows Cassandra refuses
                    errors = [(w, exc) for w, exc in errors if retryable(exc)] + await self.one_by_one(hard)
                refused = {id(w.ref): (w.ref, exc) for w, exc in errors if not retryable(exc)}
                for event, exc in refused.values():
                    await self.dead_letter(event, Reason.SINK_REJECTED,
                                           f"Cassandra refused the row: {type(exc).__name__}: {exc}")  # fmt: skip
                writes = [w for w, exc in errors if retryable(exc) and id(w.ref) not in refused]
                if not writes:
                    return
                first = next(exc for _, exc in errors if retryable(exc))
                if self.app.should_stop:
                    reason = f"{len(writes)} row(s) not written: {type(first).__name__}: {first}"
                    raise WorkerStopping(reason) from failed
                metrics.SINK_RETRIES.labels(type(first).__name__).inc(len(writes))
                advice = f" ({SCHEMA_BEHIND_ADVICE})" if schema_behind(first) else ""
                logger.warning("sink: %d row(s) not written (%s: %s)%s; retrying in %.1f s, not moving on",
                               len(writes), type(first).__name__, first, advice, backoff.delay)  # fmt: skip
                await backoff.wait()

    async def one_by_one(self, writes: list[RowWrite]) -> list[tuple[RowWrite, BaseException]]:
        errors: list[tuple[RowWrite, BaseException]] = []
        for w in writes:
            try:
                await self.writer.write([w])
            except RowsFailed as failed:
                errors.extend(failed.errors)
        return errors


class SinkReader:
    """The sink's own consumer of its topics, in the sink's group: batches by size and time, commits."""

    def __init__(self, settings: Settings, topics: list[str], progress: SinkProgress) -> None:
        self.settings = settings
        self.topics = topics
        self.progress = progress
        # The broker holds a fetch until it has FETCH_MIN_BYTES or the batch window is over: without it, a steady
        # trickle of input is fetched a few records at a time, and each fetch costs CPU the pipeline needs.
        self.busy_fetch = (min(settings.sink_batch_within_ms, 5000), FETCH_MIN_BYTES)

    async def join(self) -> AIOKafkaConsumer:
        """The sink's consumer, connected and subscribed (retrying while the broker cannot be reached); it joins
        the group at its first fetch."""
        settings = self.settings
        backoff = Backoff(0.5, settings.sink_retry_max_s)
        while True:
            consumer = kafka_clients.consumer(
                settings, group_id=settings.sink_group, enable_auto_commit=False,
                auto_offset_reset="earliest", max_poll_records=settings.sink_batch_max_events,
                fetch_min_bytes=self.busy_fetch[1], fetch_max_wait_ms=self.busy_fetch[0],
            )  # fmt: skip
            try:
                await kafka_clients.start(consumer, settings)
            except kafka_clients.KafkaUnavailableError as exc:
                logger.warning("sink: %s; trying again in %.1f s", exc, backoff.delay)
                await backoff.wait()
                continue
            consumer.subscribe(self.topics, listener=SharedPartitions(self.progress))
            return consumer

    def set_quiet(self, consumer: AIOKafkaConsumer, quiet: bool) -> None:
        """Fetch for a quiet spell (one long poll, answered at the first byte) or for busy input."""
        internals.set_consumer_fetch(consumer, *((QUIET_WAIT_MS, 1) if quiet else self.busy_fetch))

    async def next_batch(self, consumer: AIOKafkaConsumer, quiet: bool) -> dict[TopicPartition, list[Record]]:
        """Records of at most ``sink_batch_max_events``, waiting at most ``sink_batch_within_ms`` to fill it.

        ``quiet`` (the last batch came back empty): one long poll of ``QUIET_WAIT_MS``, answered at the first
        byte, and whatever it brings is the batch: an idle worker rarely wakes, and input after a quiet
        spell is written at once.
        """
        limit = self.settings.sink_batch_max_events
        if quiet:
            got = await consumer.getmany(timeout_ms=QUIET_WAIT_MS, max_records=limit)
            return {tp: list(records) for tp, records in got.items() if records}
        taken = 0
        batch: dict[TopicPartition, list[Record]] = {}
        deadline = time.monotonic() + self.settings.sink_batch_within_ms / 1000
        while taken < limit:
            wait_ms = max(0, int((deadline - time.monotonic()) * 1000))
            got = await consumer.getmany(timeout_ms=wait_ms, max_records=limit - taken)
            for tp, records in got.items():
                batch.setdefault(tp, []).extend(records)
                taken += len(records)
            if wait_ms == 0 or (taken and not got):
                break
        return batch

    async def commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:  # the partitions moved on (a rebalance): their next owner writes them again
            logger.warning("sink: committing %d partition(s) failed (%s: %s); their rows are written, and the "
                           "next reader writes the same rows again", len(offsets), type(exc).__name__, exc)  # fmt: skip
            return
        self.progress.committed.update(offsets)


class Sink:
    """The sink task: connect to Cassandra, then read, write and commit batches until the worker stops."""

    def __init__(self, app: WeatherStreamApp, settings: Settings, reader: SinkReader, batches: BatchWriter,
                 progress: SinkProgress) -> None:  # fmt: skip
        self.app = app
        self.settings = settings
        self.reader = reader
        self.batches = batches
        self.progress = progress

    async def run(self) -> None:
        """Write every record to its tables; retry outages; commit offsets only for written rows."""
        await self.connect()
        backoff = Backoff(0.5, self.settings.sink_retry_max_s)
        while not self.app.should_stop:
            consumer = self.progress.consumer = await self.reader.join()
            logger.info("sink: reading %s as group %s", ", ".join(self.reader.topics), self.settings.sink_group)
            try:
                await self.consume(consumer)
            except KafkaError as exc:  # what the consumer does not recover from itself: join again
                logger.exception("sink: the consumer failed (%s: %s); joining again in %.1f s (uncommitted "
                                 "records are read again)", type(exc).__name__, exc, backoff.delay)  # fmt: skip
                await backoff.wait()
            finally:
                self.progress.consumer = None
                metrics.SINK_PARTITIONS.set(0)
                await consumer.stop()

    async def connect(self) -> None:
        writer = self.batches.writer
        backoff = Backoff(0.5, self.settings.sink_retry_max_s)
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, writer.open)
            except Exception as exc:  # noqa: BLE001 - logged; the sink must outlive an outage at start
                metrics.SINK_RETRIES.labels(type(exc).__name__).inc()
                logger.warning("sink: %s; trying again in %.1f s (nothing is lost: the sink starts where it "
                               "stopped)", exc, backoff.delay)  # fmt: skip
                await backoff.wait()
                continue
            metrics.SINK_CONNECTED.set(1)
            logger.info("sink: writing to Cassandra at %s, keyspace %s", writer.where, self.settings.keyspace)
            return

    async def consume(self, consumer: AIOKafkaConsumer) -> None:
        """Batches until the worker stops: written, then committed."""
        quiet = False
        while not self.app.should_stop:
            batch = await self.reader.next_batch(consumer, quiet)
            if bool(batch) == quiet:  # input came after a quiet spell, or none came: fetch the other way
                quiet = not quiet
                self.reader.set_quiet(consumer, quiet)
            if not batch:
                continue
            events = [record for records in batch.values() for record in records]
            metrics.BATCH_EVENTS.labels("sink").observe(len(events))
            if not await self.batches.written(events):
                return
            await self.reader.commit(consumer, {tp: records[-1].offset + 1 for tp, records in batch.items()})


@dataclass(frozen=True)
class SinkParts:
    """What the sink's registration made (the web views read its progress)."""

    sink: Sink
    progress: SinkProgress
    writer: CassandraWriter


def register(app: WeatherStreamApp, settings: Settings, topics: Topics) -> SinkParts:
    """Declare the sink task on ``app``."""
    tables_of = {
        settings.topic_observations: (rows.OBSERVATIONS,),  # and latest_by_city: see BatchRows
        settings.topic_aggregates: (rows.AGGREGATES,),
        settings.topic_alerts: (rows.ALERTS_BY_CITY, rows.ALERTS_BY_DAY),
    }
    progress = SinkProgress()
    writer = CassandraWriter(settings)
    reader = SinkReader(settings, list(tables_of), progress)
    sink = Sink(app, settings, reader, BatchWriter(app, settings, topics.deadletter, writer, tables_of), progress)
    app.task(sink.run)
    return SinkParts(sink, progress, writer)
