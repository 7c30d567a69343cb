"""The faust application: one per namespace, built from :class:`~weatherstream.settings.Settings`.

:func:`create_app` declares the application and the namespace's topics; :mod:`weatherstream.worker` adds the
agents of the worker's role and the web views (this module imports nothing above it).
Message keys are JSON (a city id ``2950159`` travels as the bytes ``2950159``), the same serializer
as table keys, so ``@app.table_route`` and the producers' partitioning agree.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TopicT

from models import Aggregate, Alert, Observation
from weatherstream import internals, metrics
from weatherstream.diagnostics import consumer_state, waiting_points, watch_loop_delay
from weatherstream.internals import share_rocksdb_memory
from weatherstream.kafka_clients import KafkaSecurity
from weatherstream.memory import MemoryTrimmer, collect_everything
from weatherstream.redact import install_secret_filter, settings_secrets
from weatherstream.settings import Settings
from weatherstream.topics import CHANGELOG_CONFIGS, STATE_MESSAGE_MAX_BYTES

logger = logging.getLogger(__name__)


class OutputTopic(faust.Topic):
    """A topic the worker writes to. ``send`` serializes key and value with the topic's schema as faust's
    does (the same bytes) and hands the record straight to the producer.

    faust's own ``send`` wraps every record in a pending-message future with sensor callbacks: 270-300 us of
    CPU per record, against 75 us this way (10,000 observations sent to the local broker each way), and the
    pipeline sends at least one record per input event. The caller gets the producer's future, which, as
    with faust's, resolves to the record's metadata once the broker has it (or raises if it never does).
    """

    async def send(
        self,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Any = None,
        schema: Any = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        callback: Any = None,
        force: bool = False,
    ) -> Any:
        attached = internals.attachments_enabled(self.app) and not force
        if callback is not None or attached:  # faust's own bookkeeping is needed for these
            return await super().send(key=key, value=value, partition=partition, timestamp=timestamp,
                                      headers=headers, schema=schema, key_serializer=key_serializer,
                                      value_serializer=value_serializer, callback=callback, force=force)  # fmt: skip
        open_headers = self.prepare_headers(headers)
        key_bytes, open_headers = self.prepare_key(key, key_serializer, schema, open_headers)
        value_bytes, open_headers = self.prepare_value(value, value_serializer, schema, open_headers)
        producer = await self.app.maybe_start_producer()
        sent = await producer.send(self.get_topic_name(), key_bytes, value_bytes, partition, timestamp, open_headers)
        sent.add_done_callback(self._log_failure)  # as faust's send does: a record the broker never took is logged
        return sent

    def _log_failure(self, sent: Any) -> None:
        exc = None if sent.cancelled() else sent.exception()
        if exc is not None:
            logger.warning("a record for %s was not delivered: %s: %s", self.get_topic_name(), type(exc).__name__, exc)


@dataclass(frozen=True)
class Topics:
    """The namespace's topics as faust channels (sent to as :class:`OutputTopic`)."""

    raw: TopicT
    observations: TopicT
    deadletter: TopicT
    aggregates: TopicT
    alerts: TopicT
    ticks: TopicT


class WeatherStreamApp(faust.App):
    """A faust app that also carries weatherstream's settings and topics."""

    settings: Settings
    weather_topics: Topics
    trim_memory: Callable[[], Awaitable[None]] | None  # the memory trim timer's body, if it runs

    def _new_transport(self) -> Any:
        from weatherstream.transport import Transport

        return Transport(self.conf.broker_consumer, self)

    def output_topic(self, name: str, **options: Any) -> OutputTopic:
        """Like ``app.topic(name, ...)``, for a topic this worker writes to."""
        return OutputTopic(self, topics=[name], **options)

    def table_topic_configs(self) -> dict[str, str]:
        """Kafka configs of a table's changelog topic (when faust creates it)."""
        return dict(CHANGELOG_CONFIGS)

    def table_options(self) -> dict[str, Any]:
        """RocksDB options for a new table (a fresh dict each time: faust mutates it).

        The block cache and the memtables' budget are the worker's, shared by all its table partitions
        (:func:`weatherstream.internals.share_rocksdb_memory`); a memtable is flushed at a quarter of the budget.
        """
        settings = self.settings
        return {
            "block_cache_size": 1024 * 1024,  # unused: the shared cache replaces faust's per-partition one
            "write_buffer_size": max(256 * 1024, settings.rocksdb_write_buffer_bytes // 4),
            "max_write_buffer_number": 2,
        }


def _public_host(bind: str) -> str:
    """The host other workers reach this one at: the bind address, or the host name when bound to all."""
    import socket

    return socket.gethostname() if bind in ("0.0.0.0", "::", "") else bind  # noqa: S104 - compared, not bound


def create_app(settings: Settings) -> WeatherStreamApp:
    """Build the app for ``settings``' namespace, with its topics (its agents and views:
    :func:`weatherstream.worker.build_worker`).

    The app never creates topics by broker auto-creation: call
    :func:`weatherstream.topics.create_namespace_topics` (the ``worker`` command does) before starting it.
    """
    data_dir = settings.data_dir.resolve() / f"{settings.namespace}-{settings.web_port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    store = settings.store
    if store == "rocksdb://":
        store = share_rocksdb_memory(settings.rocksdb_block_cache_bytes, settings.rocksdb_write_buffer_bytes)
    app = WeatherStreamApp(
        settings.app_id,
        broker=settings.broker,
        broker_credentials=KafkaSecurity.from_settings(settings).faust_credentials(),
        store=store,
        datadir=str(data_dir),
        key_serializer="json",
        value_serializer="json",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.topic_replication_factor,
        topic_allow_declare=True,
        table_standby_replicas=settings.table_standby_replicas,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_commit_interval=settings.broker_commit_interval_s,
        producer_acks=-1,
        producer_linger=settings.producer_linger_ms / 1000.0,
        producer_max_batch_size=1024 * 1024,  # changelog records are large; 16 KiB batches mean many requests
        producer_max_request_size=STATE_MESSAGE_MAX_BYTES,
        web_enabled=True,
        web_bind=settings.web_bind,
        web_host=settings.web_bind,
        web_port=settings.web_port,
        # where other workers forward requests for cities this worker owns
        canonical_url=f"http://{_public_host(settings.web_bind)}:{settings.web_port}",
        web_cors_options=None,
        autodiscover=False,
    )
    app.settings = settings
    app.weather_topics = Topics(
        raw=app.output_topic(
            settings.topic_raw,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
            allow_empty=True,
        ),
        observations=app.output_topic(
            settings.topic_observations,
            key_type=int,  # JSON keys: faust accepts any JSON type
            value_type=Observation,
            partitions=settings.partitions,
        ),
        deadletter=app.output_topic(
            settings.topic_deadletter, key_serializer="raw", value_serializer="raw", partitions=settings.partitions
        ),
        aggregates=app.output_topic(
            settings.topic_aggregates, key_serializer="raw", value_type=Aggregate, partitions=settings.partitions
        ),
        alerts=app.output_topic(
            settings.topic_alerts, key_serializer="raw", value_type=Alert, partitions=settings.partitions
        ),
        ticks=app.output_topic(
            settings.topic_ticks, key_serializer="raw", value_serializer="raw", partitions=settings.partitions
        ),
    )
    app.trim_memory = _trim_memory_every(app, settings.memory_trim_interval_s)
    _collect_garbage_every(app, settings.gc_full_interval_s)
    _watch_loop_delay(app)
    return app


def _trim_memory_every(app: WeatherStreamApp, interval_s: float) -> Callable[[], Awaitable[None]] | None:
    """A timer that gives freed heap pages back to the OS (:mod:`weatherstream.memory`) from an executor thread.

    Returns its body (None when ``interval_s`` is 0 or the C library has no ``malloc_trim``).
    """
    if interval_s <= 0:
        return None
    trimmer = MemoryTrimmer()
    if not trimmer.available:
        logger.info("no malloc_trim in this C library: freed memory stays with the worker until reused")
        return None

    async def trim_memory() -> None:
        released = await asyncio.get_running_loop().run_in_executor(None, trimmer)
        metrics.MEMORY_RELEASED.inc(released)

    app.timer(interval=interval_s, name="trim_memory")(trim_memory)
    return trim_memory


def _collect_garbage_every(app: WeatherStreamApp, interval_s: float) -> None:
    """A timer for the worker's full garbage collections (:func:`weatherstream.memory.tune_garbage_collector`)."""
    if interval_s <= 0:
        return

    async def collect_garbage() -> None:
        took = collect_everything(if_allocating=True)
        if took is not None:
            metrics.GC_FULL_SECONDS.observe(took)

    app.timer(interval=interval_s, name="collect_garbage")(collect_garbage)


def _watch_loop_delay(app: WeatherStreamApp) -> None:
    """A task that keeps ``weatherstream_event_loop_delay_seconds`` up to date
    (:func:`weatherstream.diagnostics.watch_loop_delay`)."""

    async def watch_event_loop() -> None:
        await watch_loop_delay(metrics.EVENT_LOOP_DELAY_SECONDS.observe)

    app.task(watch_event_loop)


class Worker(faust.Worker):
    """faust's worker without its terminal spinner, and with the settings' secrets masked in its log.

    At log level warning or above faust hangs a spinner handler on the root logger at level DEBUG, so every
    ``log.debug`` call in faust and aiokafka builds a log record for it: about a tenth of a busy worker's
    time. Here the root logger keeps the level asked for.
    """

    def _on_sigusr1(self) -> None:
        """``kill -USR1 <pid>``: mode writes every thread's and task's stack to stderr; it cannot see inside
        async generators (faust's streams are made of them), so the project's own waiting points follow."""
        super()._on_sigusr1()
        logger.warning("waiting in the project's code:\n%s", "\n".join(waiting_points()) or "(nowhere)")
        logger.warning("consumer state:\n%s", "\n".join(consumer_state(self.app)))

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
        logger.setLevel(level or logging.WARNING)
        # faust has just replaced the root logger's handlers: mask the secrets in what the new ones write.
        settings = getattr(self.app, "settings", None)
        if settings is not None:
            install_secret_filter(settings_secrets(settings))
