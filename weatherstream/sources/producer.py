"""Send raw records to ``{ns}.raw``: batched, acks=all, idempotent, flushed on exit and on Ctrl-C.

Sources are plain iterators of :class:`~models.RawRecord`; this module owns the Kafka side, pacing
(a fixed rate, or event time sped up) and the sent/failed counts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from aiokafka.errors import KafkaError

from models import RawRecord, city_key
from weatherstream import kafka_clients, metrics
from weatherstream.settings import Settings
from weatherstream.topics import create_namespace_topics

logger = logging.getLogger(__name__)

_DONE = object()


@dataclass
class ProduceStats:
    """What a run sent. ``failed`` records were not acknowledged by the broker (re-running is safe:
    the worker drops repeats)."""

    sent: int = 0
    failed: int = 0
    queued: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def fail(self, exc: BaseException) -> None:
        self.failed += 1
        name = type(exc).__name__
        self.errors[name] = self.errors.get(name, 0) + 1

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started


@dataclass(frozen=True)
class Pacing:
    """How fast to send: ``rate`` records per second, or event time ``speedup`` times faster than real
    time; neither means as fast as possible."""

    rate: float | None = None
    speedup: float | None = None

    def __post_init__(self) -> None:
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be > 0 (omit it for as fast as possible)")
        if self.speedup is not None and self.speedup <= 0:
            raise ValueError("speedup must be > 0")


class _Pacer:
    def __init__(self, pacing: Pacing) -> None:
        self.pacing = pacing
        self.t0 = time.monotonic()
        self.first_event: float | None = None
        self.count = 0

    def delay(self, record: RawRecord) -> float:
        self.count += 1
        if self.pacing.rate is not None:
            return self.t0 + (self.count - 1) / self.pacing.rate - time.monotonic()
        if self.pacing.speedup is not None and record.event_time is not None:
            if self.first_event is None:
                self.first_event = record.event_time
            return self.t0 + (record.event_time - self.first_event) / self.pacing.speedup - time.monotonic()
        return 0.0


async def produce(
    records: Iterator[RawRecord],
    settings: Settings,
    *,
    pacing: Pacing = Pacing(),
    blocking: bool = False,
    on_record: Callable[[ProduceStats], None] | None = None,
    stats: ProduceStats | None = None,
    linger_ms: int = 10,
) -> ProduceStats:
    """Send every record of ``records`` to the namespace's raw topic.

    Args:
        blocking: the iterator blocks (network polling): it is advanced in a worker thread.
        on_record: called after each record is queued (progress display).
        stats: filled in as records are acknowledged; pass one to read counts after a Ctrl-C.
    """
    stats = stats if stats is not None else ProduceStats()
    await create_namespace_topics(settings)
    producer = kafka_clients.producer(
        settings,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        request_timeout_ms=30_000,
    )
    await kafka_clients.start(producer, settings)
    pending: set[asyncio.Future[object]] = set()
    pacer = _Pacer(pacing)

    def settled(fut: asyncio.Future[object]) -> None:
        pending.discard(fut)
        if fut.cancelled():
            stats.fail(asyncio.CancelledError())
        elif fut.exception() is not None:
            stats.fail(fut.exception())  # type: ignore[arg-type]
            logger.warning("a record was not delivered: %s", fut.exception())
        else:
            stats.sent += 1
            metrics.EVENTS_OUT.labels("raw").inc()

    try:
        while True:
            record = await asyncio.to_thread(next, records, _DONE) if blocking else next(records, _DONE)
            if record is _DONE:
                break
            assert isinstance(record, RawRecord)
            delay = pacer.delay(record)
            if delay > 0:
                await asyncio.sleep(delay)
            key = city_key(record.city_id) if record.city_id is not None else None
            try:
                fut = await producer.send(settings.topic_raw, record.payload, key=key, headers=record.headers())
            except KafkaError as exc:  # e.g. a record over the broker's size limit
                stats.fail(exc)
                logger.warning("a record could not be queued: %s", exc)
                continue
            stats.queued += 1
            pending.add(fut)
            fut.add_done_callback(settled)
            if on_record is not None:
                on_record(stats)
    finally:
        try:
            await producer.flush()
            if pending:
                await asyncio.wait(list(pending), timeout=60)
        finally:
            await producer.stop()
    return stats
