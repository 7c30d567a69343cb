"""faust's Kafka transport: a consumer fetch wait that follows the input rate, no acknowledgement of
skipped messages, messages handed on to the streams without a task each, and an idempotent producer.

Fetch wait: faust 0.15 creates its aiokafka consumer with ``fetch_max_wait_ms=1500``. aiokafka does not fetch again
for a partition while a long poll for other partitions of the same broker is outstanding, so a new
message could sit up to that long before the pipeline sees it. The wait is a setting
(``WEATHERSTREAM_CONSUMER_FETCH_MAX_WAIT_MS``, default 20 ms) applied through this transport. So is the
least a fetch waits for (``WEATHERSTREAM_CONSUMER_FETCH_MIN_BYTES``, default 64 KiB; faust leaves aiokafka's
1 byte): with 1 byte, steady input answers every fetch at once with the few records that came since, and
64 KiB took about a third off the worker's CPU at 200 events/s (``docs/benchmarks.md``). Those two suit
steady input; a worker with little or no input would wake for a fetch 50 times a second. So
:class:`AdaptiveFetch` switches the fetch to a long poll that answers at the first byte while the input rate
is low (a new message is handed on at once, and an idle worker's fetch wakes every 5 s), and back when it rises.

Skipped messages: during a rebalance faust's stream drops messages that were fetched before it (flow
control suspended, or an older consumer generation) and *acknowledges* them, although no agent handled
them. Their offsets would then count as done, and a commit made once the batch in flight is acknowledged
could move past them. :class:`Consumer` does not record such acknowledgements, so the commit stops
before them and they are fetched again. (The offset jumps the takeover test did show came from the fetch
position instead; :class:`agents.batching.OffsetGuard` handles those.) "Fetched again" needs a seek back, which
aiokafka skips for partitions the group never committed: :meth:`Consumer.seek_to_committed` seeks those to
their first record.

Handing a message on: faust's consumer hands each fetched message to its streams with
``wait_first(on_message(message), suspend_flow.wait())``, which makes four tasks per message (the handler, the
flow's event, the service's stopped and crashed events), waits for the first and cancels the others: about
half of what a faust agent that only decodes pays per message (``docs/benchmarks.md``). The handler almost
never has to wait (the stream's queue has room), so :meth:`HandsOnAtOnce.wait_first` runs its first step at once
and makes tasks only when it does wait; the race with the flow being suspended is then as before.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Generator, Mapping
from types import CoroutineType
from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from mode import Service
from mode.services import WaitArgT, WaitResults

from weatherstream import internals, metrics

logger = logging.getLogger(__name__)


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        settings = getattr(self.app, "settings", None)
        if settings is not None:
            internals.preset_consumer_fetch(consumer, int(settings.consumer_fetch_max_wait_ms),
                                            int(settings.consumer_fetch_min_bytes))  # fmt: skip
        return consumer


class HandsOnAtOnce(Service):
    """A service whose :meth:`wait_first` makes no task for a first coroutine that finishes without waiting."""

    async def wait_first(self, *coros: WaitArgT, timeout: Any = None) -> WaitResults:
        """The first of ``coros`` to finish (:meth:`mode.Service.wait_first`); no task is made when the first is a
        coroutine that finishes without waiting, as faust's per-message handler nearly always does.

        That first step runs in the caller's task and context, not in a task of its own: a handler that set a
        context variable or entered ``asyncio.timeout()`` before its first wait would act on the caller's. faust's
        hand-on (``Conductor.on_message``) does neither."""
        first = coros[0] if coros else None
        if not isinstance(first, CoroutineType) or self.should_stop:
            return await super().wait_first(*coros, timeout=timeout)
        try:
            waits_for = first.send(None)
        except BaseException as exc:  # finished (StopIteration) or failed: the others were never started
            for other in coros[1:]:
                if isinstance(other, CoroutineType):
                    other.close()
            if isinstance(exc, StopIteration):
                return WaitResults([first], [exc.value], False)
            raise
        rest = Resumed(first, waits_for)
        found = await super().wait_first(rest, *coros[1:], timeout=timeout)
        return WaitResults([first if c is rest else c for c in found.done], found.results, found.stopped)


class Consumer(HandsOnAtOnce, faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek each assigned partition to the group's committed offset, and those the group never committed
        (or committed at 0) to their first record.

        faust calls this when a rebalance's recovery is done, to fetch again what its stream dropped during the
        rebalance. aiokafka seeks only partitions with a committed offset above 0 and leaves the others where
        its fetching got to, past the dropped records: a worker killed before its first commit lost them for
        good on restart. Changelog partitions are left alone: recovery positions them itself.
        """
        committed = await super().seek_to_committed()
        await seek_uncommitted_to_start(self, committed)
        return committed

    def ack(self, message: Message) -> bool:
        """Record ``message`` as done, unless no stream took it up because a rebalance made it stale."""
        if is_skipped_by_rebalance(message, self.app):
            message.acked = True  # this copy is finished with; the partition's next fetch delivers it again
            metrics.REBALANCE_SKIPPED.inc()
            logger.debug("not committing %s[%d]@%d: skipped by a rebalance, it will be delivered again",
                         message.topic, message.partition, message.offset)  # fmt: skip
            return False
        return bool(super().ack(message))


class Resumed:
    """The rest of a coroutine that was run up to its first wait (it yielded ``waits_for``), to be awaited by a
    task as if the task had run it from the start: the task first waits for ``waits_for``, then drives the
    coroutine on (also throwing a cancellation into it)."""

    def __init__(self, coro: Coroutine[Any, Any, Any], waits_for: Any) -> None:
        self.coro, self.waits_for = coro, waits_for

    def __await__(self) -> Generator[Any, None, Any]:
        waits_for = self.waits_for
        while True:
            try:
                yield waits_for
            except BaseException as exc:  # noqa: BLE001 - thrown into the task (a cancellation): pass it on
                try:
                    waits_for = self.coro.throw(exc)
                except StopIteration as done:
                    return done.value
                continue
            return (yield from self.coro.__await__())


async def seek_uncommitted_to_start(consumer: Any, committed: Mapping[Any, int | None]) -> list[TP]:
    """Seek the partitions of ``committed`` that have no committed offset (None or 0), changelogs apart, to
    their first record, when the reset policy is ``earliest``; returns them."""
    if consumer.app.conf.consumer_auto_offset_reset != "earliest":
        return []
    changelogs = consumer.app.tables.changelog_topics
    never = sorted(TP(tp.topic, tp.partition) for tp, offset in committed.items()
                   if not offset and tp.topic not in changelogs)  # fmt: skip
    if never:
        starts = await consumer.earliest_offsets(*never)
        await consumer.seek_wait({tp: int(starts[tp]) for tp in never})
        logger.info("%d partition(s) without a committed offset start from their first record: %s",
                    len(never), ", ".join(f"{tp.topic}[{tp.partition}]" for tp in never))  # fmt: skip
    return never


def is_skipped_by_rebalance(message: Message, app: Any) -> bool:
    """Whether ``message`` is acknowledged without having been handled: a stream tracks every message it
    hands to an agent, and skips (untracked) those that arrive while flow is suspended for a rebalance or
    that were fetched in an earlier consumer generation."""
    if message.tracked:
        return False
    return bool(not app.flow_control.is_active() or message.generation_id != app.consumer_generation_id)


#: how often :class:`AdaptiveFetch` looks at the input rate
CHECK_EVERY_S = 2.0


class AdaptiveFetch:
    """The pipeline consumer's fetch settings, by input rate.

    Busy (at least ``1000 / busy_wait_ms`` events a second, the rate at which a fetch per long poll would
    come anyway): ``busy_wait_ms`` and ``busy_min_bytes`` (the settings). Quiet: a long poll of
    ``quiet_wait_ms`` that the broker answers as soon as it has one byte. :meth:`count` is told of every batch;
    :meth:`check` runs every :data:`CHECK_EVERY_S`.
    """

    def __init__(self, app: Any, busy_wait_ms: int, busy_min_bytes: int, quiet_wait_ms: int = 5000) -> None:
        self.app = app
        self.busy = (busy_wait_ms, busy_min_bytes)
        self.quiet = (quiet_wait_ms, 1)
        self.busy_events = CHECK_EVERY_S * 1000.0 / max(busy_wait_ms, 1)  # per check: the busy rate
        self.events = 0
        self.mode: tuple[int, int] | None = None  # what the fetcher has (None: as the consumer started)

    def count(self, events: int) -> None:
        self.events += events
        if self.mode == self.quiet and self.events >= self.busy_events:  # input picked up: no need to wait
            self._set(self.busy)

    async def check(self) -> None:
        """Quiet if the input came at less than the busy rate since the last check."""
        events, self.events = self.events, 0
        self._set(self.busy if events >= self.busy_events else self.quiet)

    def _set(self, mode: tuple[int, int]) -> None:
        if mode != self.mode and internals.set_fetch(self.app, *mode):
            logger.debug("consumer fetch: wait %d ms, at least %d bytes", *mode)
            self.mode = mode


class Producer(faust_aiokafka.Producer):
    """faust's producer, idempotent: a batch the producer sends again after a lost answer (a broker that failed
    over between writing and acknowledging it) is written once, not twice. faust enables it only inside
    transactions (exactly-once processing); acks=all is set by the app."""

    def _settings_extra(self) -> dict[str, Any]:
        return {**super()._settings_extra(), "enable_idempotence": True}


class Transport(faust_aiokafka.Transport):
    """The aiokafka transport with :class:`Consumer` and :class:`Producer`."""

    Consumer = Consumer
    Producer = Producer
