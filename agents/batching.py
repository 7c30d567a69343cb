"""Batches of events whose offsets are committed only once the whole batch was handled.

faust's ``stream.take_events`` acknowledges every event of a batch when the batch is left, also when
the agent is cancelled half way through it (a worker stopping, a rebalance). Those offsets would be
committed and the unhandled events never delivered again. :class:`HeldBatch` takes an extra reference
on each event's message, so take_events' own acknowledgement is not the last one. The batch's events
count only after :meth:`HeldBatch.release` (handling finished). An interrupted batch stays
unacknowledged and is delivered again after a restart or rebalance (the agents recognise re-deliveries
by their offsets).

The consumer can skip messages around a rebalance. Records fetched before it are dropped in faust's fetch
path, and the seek to the committed offsets that follows can be undone by the consumer's own read-offset
bookkeeping of those dropped records: the partition then resumes past its committed offset (the two-worker
takeover test saw raw partitions resume 11 to 140 offsets late, about one run in three, and the sink's input
as well while the sink was a faust agent). :class:`OffsetGuard` notices such a jump, holds back the events
after it and seeks the partition back (again after a second if the first seek is undone the same way), so
the skipped messages are fetched and handled in order. A jump that is still there after a seek is accepted
only once a read of its own (a separate consumer) shows that the skipped offsets hold no record (e.g.
transaction markers, or records deleted by retention): the first message seen after a seek can be a copy
fetched before it, and taking that for proof lost the messages in between (found by the crash loop). A
partition's first event after a rebalance is compared with the group's committed offset (asked of the broker
when faust does not know it yet) or, for a partition nothing was ever committed for, its first offset.

A worker that is asked to stop first waits until every event its agents took up is acknowledged. A batch
that cannot finish then (its tables are closing, or its output cannot be written) raises
:class:`WorkerStopping`; :func:`run_batch` gives the batch up without acknowledging it, so the stop can
go on and the next owner of the partitions handles the batch again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from faust.exceptions import ConsumerNotStarted
from faust.types import TP, AppT, EventT

from agents.resilience import Backoff, WorkerStopping
from weatherstream import internals, kafka_clients, metrics
from weatherstream.kafka_clients import KafkaAuthError, KafkaUnavailableError

logger = logging.getLogger(__name__)

RESEEK_AFTER_S = 1.0
GAP_CHECK_S = 10.0
#: longest a batch waits for the next one to join it (see joined_batches)
JOIN_WAIT_S = 2.0
#: :attr:`OffsetGuard.rewinding` when no offset was seen past the one sought back to
NOT_SEEN = -1
#: how long the guard tries to read offsets from the brokers before it gives up (the agent then restarts)
BROKER_READ_S = 60.0
#: seeks after which a restart's rewind whose offset has not come checks that the offset still holds a record
CHECK_TARGET_AFTER_SEEKS = 5


class HeldBatch:
    """Hold ``events`` unacknowledged until released."""

    def __init__(self, events: Sequence[EventT]) -> None:
        self.events = list(events)
        for event in self.events:
            event.message.incref()

    def add(self, events: Sequence[EventT]) -> None:
        for event in events:
            event.message.incref()
        self.events.extend(events)

    def release(self, app: AppT) -> None:
        """The batch is handled: give back the extra references. Whichever of this and take_events' own
        acknowledgement comes last acknowledges the message (a joined batch is released after take_events
        has left its earlier parts)."""
        for event in self.events:
            event.message.ack(app.consumer)

    def abandon(self, app: AppT) -> None:
        """Give the batch up unacknowledged: the consumer stops waiting for it, and never commits it."""
        unacked = app.consumer.unacked
        for event in self.events:
            unacked.discard(event.message)


async def run_batch(
    app: AppT,
    agent: str,
    events: Sequence[EventT] | HeldBatch,
    handle: Callable[[Sequence[EventT]], Awaitable[Sequence[Awaitable[Any]] | None]],
    guard: OffsetGuard | None = None,
) -> None:
    """``await handle(events)`` holding the batch; on :class:`WorkerStopping`, abandon it and wait to be cancelled.

    With a ``guard``, only the events it admits are handled (in offset order per partition). ``events`` may
    be a batch already held (from :func:`joined_batches`). ``handle`` may return sends (e.g. changelog
    records of the batch's table writes): the batch is released only once the broker has all of them, so
    its offsets are never committed ahead of its state.
    """
    if isinstance(events, HeldBatch):
        batch = events
    else:
        if guard is not None:
            events = await guard.admit(events)
        batch = HeldBatch(events)
    if not batch.events:
        return
    metrics.BATCH_EVENTS.labels(agent).observe(len(batch.events))
    try:
        sends = await handle(batch.events)
    except WorkerStopping as exc:
        batch.abandon(app)
        logger.info("%s: worker stopping, %d events left uncommitted for the next owner (%s)", agent,
                    len(batch.events), exc)  # fmt: skip
        await asyncio.Event().wait()  # the agent is cancelled when the worker stops its agents
    await delivered(app, sends)  # a failed send raises: the batch stays unacknowledged
    batch.release(app)


async def delivered(app: AppT, sends: Sequence[Awaitable[Any]] | None) -> None:
    """Wait until the broker has every one of ``sends`` (changelog records of table writes).

    Nothing to wait for when the app's producer is not running: faust's agent test context never produces.
    """
    if sends and app.producer.started:
        await asyncio.gather(*sends)


async def event_batches(
    stream: Any,
    max_events: int,
    within_s: float,
    on_restart: Callable[[], Awaitable[None]] | None = None,
) -> AsyncGenerator[list[EventT], None]:
    """The events of ``stream`` in batches: a batch is handed on once it holds ``max_events``, or ``within_s``
    after its first event came. With no input nothing wakes up (faust's ``take_events`` wakes every
    ``within_s``: about half the CPU of an idle worker). Events are acknowledged once the next batch is asked
    for (the caller may hold them longer: :class:`HeldBatch`), never when the generator is closed instead. While
    a full batch waits to be taken, the stream waits too.

    When the agent started again on the same stream (faust restarts a crashed agent this way), the events the
    earlier run held are dropped unacknowledged, and ``on_restart`` is awaited before the first batch is
    handed on: it must have them fetched again (:meth:`OffsetGuard.restart`).
    """
    pending: list[EventT] = []
    came = asyncio.Event()  # the batch's first event came
    full = asyncio.Event()
    room = asyncio.Event()  # cleared while a full batch waits
    room.set()
    detached = False

    async def on_event(event: EventT) -> None:
        await room.wait()
        if detached:  # a later run of the agent took the stream over: this event is fetched again for it
            return
        pending.append(event)
        if len(pending) == 1:
            came.set()
        if len(pending) >= max_events:
            full.set()
            room.clear()

    def detach() -> None:
        nonlocal detached
        detached = True
        room.set()

    if internals.feed_events(stream, on_event, detach):
        logger.warning("the agent started again on its stream (after a crash or a failed batch, logged above); the "
                       "events its earlier run held are fetched again")  # fmt: skip
        metrics.AGENT_RESTARTS.inc()
        if on_restart is not None:
            await on_restart()
    while not stream.should_stop:
        await stream.wait_for_stopped(came)  # a stopping stream hands on what it holds, as take_events does
        if not full.is_set() and not stream.should_stop:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(full.wait(), within_s)
        if not pending:
            continue
        batch = pending[:]
        pending.clear()
        came.clear()
        full.clear()
        room.set()
        yield batch
        # Asked for the next batch: this one is done with. Never when the generator is closed or cancelled
        # instead (the agent failed): a batch not held yet (HeldBatch) must not count as handled.
        for event in batch:
            await stream.ack(event)


def newest_offsets(events: Sequence[EventT], into: dict[TP, int] | None = None) -> dict[TP, int]:
    """The newest offset per partition among ``events`` (added to ``into``, which is returned)."""
    last = {} if into is None else into
    for event in events:
        message = event.message
        tp, offset = message.tp, message.offset
        if offset > last.get(tp, -1):
            last[tp] = offset
    return last


def backlog(app: AppT, newest: dict[TP, int]) -> int:
    """Messages waiting in the partitions of ``newest`` after its offsets (from the fetched high waters)."""
    waiting = 0
    for tp, offset in newest.items():
        try:
            highwater = app.consumer.highwater(tp)
        except ConsumerNotStarted:  # no Kafka consumer (faust's test context): nothing is known to wait
            return 0
        if highwater is not None:
            waiting += max(0, int(highwater) - offset - 1)
    return waiting


async def joined_batches(
    app: AppT,
    batches: AsyncIterator[Sequence[EventT]],
    guard: OffsetGuard,
    join_below: int,
    max_events: int,
    join_wait_s: float = JOIN_WAIT_S,
) -> AsyncGenerator[HeldBatch, None]:
    """The batches of ``take_events``, admitted by ``guard`` and held; while a backlog of at least ``join_below``
    messages waits, consecutive batches are joined (up to ``max_events``), so each city's state is read and
    written once for many more events. Live traffic (no backlog) goes through batch by batch.

    No key (city) gets more than ``join_below`` events in a joined batch: a city's state grows with the
    windows one batch closes for it (its outbox), and must stay a single Kafka message. A batch that would
    cross that starts the next joined batch instead.

    The backlog is read from the high waters of the consumer's last fetches. If the next batch does not come
    within ``join_wait_s`` although they say messages wait, the held batch is handled as it is: a high water
    the consumer no longer refreshes must not hold a batch, and a rebalance waiting for it, back for ever.
    The batch asked for meanwhile is awaited again next time (never asked for twice).
    """
    source = batches.__aiter__()
    taking: asyncio.Task[Sequence[EventT] | None] | None = None  # the next batch: asked for, not come yet

    async def next_batch() -> Sequence[EventT] | None:
        try:
            return await source.__anext__()
        except StopAsyncIteration:
            return None

    async def take(timeout_s: float | None) -> tuple[bool, Sequence[EventT] | None]:
        """(whether it came, the next batch or None at the end); if it did not come within ``timeout_s``, it is
        still awaited by the next call."""
        nonlocal taking
        if taking is None:
            taking = asyncio.ensure_future(next_batch())
        done, _ = await asyncio.wait({taking}, timeout=timeout_s)
        if not done:
            return False, None
        came, taking = taking, None
        return True, came.result()

    pending: HeldBatch | None = None
    try:
        while True:
            if pending is not None:
                batch, pending = pending, None
            else:
                # Held before the next one is taken: take_events acknowledges a batch when asked for the next.
                _, events = await take(None)
                if events is None:
                    return
                batch = HeldBatch(await guard.admit(events))
            per_key = Counter(event.message.key for event in batch.events)
            newest = newest_offsets(batch.events)  # kept up to date as batches join (not recounted each time)
            while len(batch.events) < max_events and batch.events and backlog(app, newest) >= join_below:
                came, events = await take(join_wait_s)
                if not came:
                    logger.warning("batch: no input came within %.1f s although the consumer's high waters say %d "
                                   "messages wait; handling the %d events held", join_wait_s,
                                   backlog(app, newest), len(batch.events))  # fmt: skip
                    break
                if events is None:
                    break
                more = await guard.admit(events)
                more_per_key = Counter(event.message.key for event in more)
                if any(per_key[key] + n > join_below for key, n in more_per_key.items()):
                    pending = HeldBatch(more)
                    break
                batch.add(more)
                per_key.update(more_per_key)
                newest_offsets(more, newest)
            yield batch
    finally:
        if taking is not None:  # asking ``batches`` for more: stop that (then it can be closed too)
            taking.cancel()
            await asyncio.wait({taking})


class OffsetGuard:
    """Lets events through only in offset order per partition; seeks back over offsets the consumer skipped."""

    def __init__(
        self,
        app: AppT,
        agent: str,
        first_record: Callable[[TP, int, int], Awaitable[int | None]] | None = None,
        read_committed: Callable[[list[TP]], Awaitable[dict[TP, int | None]]] | None = None,
    ) -> None:
        """``first_record(tp, start, end)``: offset of the first record in ``[start, end)`` (None: none);
        ``read_committed(tps)``: the group's committed offsets as the broker has them. By default both are
        read from Kafka with clients of their own."""
        self.app = app
        self.agent = agent
        self.first_record = first_record or self._read_first_record
        self.read_committed = read_committed or self._read_committed
        self.group_committed: dict[TP, int | None] = {}
        self.expected: dict[TP, int] = {}
        # partition -> (offset sought back to, offset seen after the jump)
        self.rewinding: dict[TP, tuple[int, int]] = {}
        self.sought_at: dict[TP, float] = {}
        self.seeks: dict[TP, int] = {}  # seeks of the current rewind
        app.on_partitions_assigned.connect(self._forget)
        app.on_partitions_revoked.connect(self._forget)
        app.timer(interval=RESEEK_AFTER_S, name=f"{agent}.offset_guard")(self._seek_again)

    async def _forget(self, *args: object, **kwargs: object) -> None:
        self.expected.clear()
        self.group_committed.clear()
        self.rewinding.clear()
        self.sought_at.clear()
        self.seeks.clear()

    async def _seek(self, tp: TP, offset: int) -> None:
        self.sought_at[tp] = time.monotonic()
        self.seeks[tp] = self.seeks.get(tp, 0) + 1
        internals.forget_progress_from(self.app.consumer, tp, offset)
        await self.app.consumer.seek_wait({tp: offset})

    async def _seek_again(self) -> None:
        """A seek can be undone by records the consumer fetched before it and handles after it; until the
        sought offset arrives, seek again."""
        now = time.monotonic()
        for tp, (target, jumped_to) in list(self.rewinding.items()):
            if now - self.sought_at.get(tp, 0.0) >= RESEEK_AFTER_S and tp in self.app.consumer.assignment():
                if jumped_to == NOT_SEEN and self.seeks.get(tp, 0) >= CHECK_TARGET_AFTER_SEEKS:
                    await self._check_target(tp, target)
                    continue
                logger.info("%s: %s offset %d has not arrived since the seek; seeking again", self.agent, tp, target)
                await self._seek(tp, target)

    async def _check_target(self, tp: TP, target: int) -> None:
        """A rewind after a restart whose offset does not come: the partition may have no record there any more
        (retention). Go on from its first record at or after it, or, with none, from what comes next."""
        self.seeks[tp] = 0
        highwater = self.app.consumer.highwater(tp)
        first = await self.first_record(tp, target, highwater) if highwater is not None else None
        if first is None:
            logger.warning("%s: %s holds no record from offset %d on; going on", self.agent, tp, target)
            del self.rewinding[tp]
            self.expected.pop(tp, None)
        elif first != target:
            logger.warning("%s: %s has no record at offset %d; going on from %d", self.agent, tp, target, first)
            self.rewinding[tp] = (first, NOT_SEEN)
            self.expected[tp] = first
            await self._seek(tp, first)
        else:
            await self._seek(tp, target)

    async def restart(self, topics: Collection[str]) -> None:
        """The agent was restarted on its stream after a crash: what the crashed run took and had not handled must
        be fetched again. Each assigned partition of ``topics`` that has records past the group's committed
        offset is sought back to it, and the copies fetched before the seek are held back (:meth:`admit`).
        Events handled a second time this way are recognised by their offsets. The crashed run's messages are no
        longer waited for (a rebalance or a stop would wait for them for ever)."""
        await self._forget()
        consumer = self.app.consumer
        try:
            assigned = {tp for tp in consumer.assignment() if tp.topic in topics}
        except ConsumerNotStarted:  # faust's agent test context: nothing to fetch again
            return
        for message in [message for message in consumer.unacked if message.tp in assigned]:
            consumer.unacked.discard(message)
        for tp in sorted(assigned):
            start = await self._start_of(tp)
            highwater = consumer.highwater(tp)
            if start is None or highwater is None or highwater <= start:
                continue  # nothing was fetched past the committed offset
            logger.warning("%s: %s sought back to its committed offset %d after the agent's restart", self.agent,
                           tp, start)  # fmt: skip
            self.expected[tp] = start
            self.rewinding[tp] = (start, NOT_SEEN)
            await self._seek(tp, start)

    def _committed(self, tp: TP) -> int | None:
        value = internals.committed_offset(self.app.consumer, tp)
        return value if value is not None and value > 0 else None

    async def _start_of(self, tp: TP) -> int | None:
        """Where the partition's next event must be: the group's committed offset (faust's copy, else the
        broker's: faust learns it only when it seeks after a rebalance, and events can come first), or, if
        nothing was ever committed for it, its first offset. A sparse partition (alerts, ticks) can go a long
        time without a commit, and a skip at its start is a skip all the same.

        None when the consumer is not running (faust's agent test context): nothing to compare with.
        """
        committed = self._committed(tp)
        if committed is not None:
            return committed
        try:
            assigned = set(self.app.consumer.assignment())
        except ConsumerNotStarted:
            return None
        if tp not in self.group_committed:
            tps = sorted(assigned | {tp})
            self.group_committed.update(await self._from_broker("committed offsets", lambda: self.read_committed(tps)))
        value = self.group_committed.get(tp)
        if value is not None and value > 0:
            return value
        earliest = (await self._from_broker("first offsets", lambda: self.app.consumer.earliest_offsets(tp))).get(tp)
        return int(earliest) if earliest is not None else None

    async def _from_broker(self, what: str, read: Callable[[], Awaitable[Mapping[TP, Any]]]) -> Mapping[TP, Any]:
        """``await read()``, again after a pause while it fails (a broker or the group's coordinator can be
        down for a while); the last failure is raised after :data:`BROKER_READ_S`."""
        deadline = time.monotonic() + BROKER_READ_S
        backoff = Backoff(0.5, 8.0)
        while True:
            try:
                return await read()
            except KafkaAuthError:
                raise
            except (KafkaError, KafkaUnavailableError) as exc:
                if time.monotonic() + backoff.delay > deadline:
                    raise
                logger.warning("%s: reading the %s failed (%s: %s); trying again in %.1f s", self.agent, what,
                               type(exc).__name__, exc, backoff.delay)  # fmt: skip
                await backoff.wait()

    async def _read_committed(self, tps: list[TP]) -> dict[TP, int | None]:
        """The group's committed offsets of ``tps`` as the broker has them (None: nothing committed)."""
        settings = self.app.settings  # type: ignore[attr-defined]
        admin = kafka_clients.admin(settings)
        await kafka_clients.start(admin, settings)
        try:
            found = await admin.list_consumer_group_offsets(
                self.app.conf.id, partitions=[TopicPartition(tp.topic, tp.partition) for tp in tps]
            )
        finally:
            await admin.close()
        out: dict[TP, int | None] = {tp: None for tp in tps}
        for part, meta in found.items():
            out[TP(part.topic, part.partition)] = meta.offset if meta.offset >= 0 else None
        return out

    async def admit(self, events: Sequence[EventT]) -> list[EventT]:
        """The events to handle now; the others are held back (never acknowledged) and fetched again."""
        admitted: list[EventT] = []
        for event in events:
            message = event.message
            tp, offset = message.tp, message.offset
            rewind = self.rewinding.get(tp)
            if rewind is not None:
                target, jumped_to = rewind
                if offset > target and offset != jumped_to:
                    self._hold_back(event)  # fetched before the seek
                    continue
                if offset == jumped_to and offset != target:
                    first = await self.first_record(tp, target, jumped_to)
                    if first is not None:  # the skipped records exist: this copy was fetched before the seek
                        logger.info("%s: %s offset %d is there (first record at %d): seeking again", self.agent,
                                    tp, target, first)  # fmt: skip
                        self._hold_back(event)
                        await self._seek(tp, target)
                        continue
                    logger.info("%s: %s offsets %d to %d hold no records; going on", self.agent, tp, target,
                                offset - 1)  # fmt: skip
                    self.expected[tp] = offset
                del self.rewinding[tp]
                self.seeks.pop(tp, None)
                # Records fetched before the seek and drained after it made faust note offsets from the target on
                # as gaps (no records there): they would let its commits run past events not handled yet.
                internals.forget_progress_from(self.app.consumer, tp, offset)
            expected = self.expected.get(tp)
            if expected is None:  # the partition's first event since a rebalance
                expected = await self._start_of(tp)
            if expected is not None and offset > expected:
                logger.warning("%s: %s jumped from offset %d to %d (skipped by the consumer around a rebalance); "
                               "seeking back", self.agent, tp, expected, offset)  # fmt: skip
                metrics.OFFSET_REWINDS.inc()
                self.rewinding[tp] = (expected, offset)
                self._hold_back(event)
                await self._seek(tp, expected)
                continue
            self.expected[tp] = max(offset + 1, expected or 0)
            admitted.append(event)
        return admitted

    async def _read_first_record(self, tp: TP, start: int, end: int) -> int | None:
        """Offset of the first record in ``[start, end)`` of ``tp``, read by a consumer of its own (None: none)."""
        settings = self.app.settings  # type: ignore[attr-defined]
        reader = kafka_clients.consumer(settings, enable_auto_commit=False, group_id=None,
                                        max_partition_fetch_bytes=1024 * 1024)  # fmt: skip
        partition = TopicPartition(tp.topic, tp.partition)
        await kafka_clients.start(reader, settings)
        try:
            reader.assign([partition])
            reader.seek(partition, start)
            deadline = time.monotonic() + GAP_CHECK_S
            while time.monotonic() < deadline:
                records = (await reader.getmany(partition, timeout_ms=500, max_records=1)).get(partition, [])
                if records:
                    return int(records[0].offset) if records[0].offset < end else None
                if await reader.position(partition) >= end:
                    return None
            return start  # unknown after GAP_CHECK_S: assume the records are there and seek again
        finally:
            await reader.stop()

    def _hold_back(self, event: EventT) -> None:
        """Never acknowledge this copy (take_events' acknowledgement is not the last): the fetch after the seek
        delivers the message again."""
        event.message.incref()
        self.app.consumer.unacked.discard(event.message)
