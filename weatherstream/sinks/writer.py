"""Writing rows to Cassandra (prepared statements, bounded concurrency); the reads are in :mod:`weatherstream.queries`.

:class:`CassandraWriter` is what the sink agent uses: ``open()`` connects and applies the migrations,
``write()`` sends a list of rows with at most ``WEATHERSTREAM_SINK_MAX_IN_FLIGHT`` requests outstanding,
putting rows of one partition into an unlogged batch, and small partitions that share a replica into one
unlogged batch too (within the cluster's warning thresholds, :func:`batch_limits`). It raises on the
first failure after every request has finished; :func:`retryable` says whether trying again can help.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from cassandra import (
    CoordinationFailure,
    InvalidRequest,
    OperationTimedOut,
    Unavailable,
    WriteTimeout,
)
from cassandra.cluster import Cluster, NoHostAvailable, ResponseFuture, Session
from cassandra.connection import ConnectionException
from cassandra.protocol import ErrorMessage, IsBootstrappingErrorMessage, OverloadedErrorMessage, ServerError
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, PreparedStatement

from weatherstream import metrics
from weatherstream.db import connect_settings
from weatherstream.internals import CHECKED_WITH, InternalsChanged, bound_statement, release_response
from weatherstream.settings import Settings
from weatherstream.sinks import rows
from weatherstream.sinks.binding import Binder, Reuse
from weatherstream.sinks.errors import CassandraUnavailableError
from weatherstream.sinks.schema import migrate

logger = logging.getLogger(__name__)

# Rows of one partition per unlogged batch: one request and one mutation for many rows. (Cassandra's batch
# size warning and failure thresholds apply only to batches across partitions, CASSANDRA-10876; this bound
# keeps each request a few tens of kilobytes.)
MAX_BATCH_ROWS = 50
YIELD_EVERY_ROWS = 500  # rows bound between chances for the other agents of the worker to run

_RETRYABLE = (
    NoHostAvailable, OperationTimedOut, Unavailable, WriteTimeout, CoordinationFailure, ConnectionException,
    OverloadedErrorMessage, IsBootstrappingErrorMessage, ServerError, ConnectionResetError, OSError,
)  # fmt: skip


#: What Cassandra says when a table or a column this version of weatherstream migrated is missing on the node
#: that coordinated a write.
SCHEMA_BEHIND = ("unconfigured table", "does not exist", "Undefined column name")
#: What to do about it, for the sink's log.
SCHEMA_BEHIND_ADVICE = (
    "a node's schema is behind weatherstream's migrations (a node restarted while they ran usually catches up by "
    "itself; `nodetool describecluster` shows which) or something was dropped by hand: `weatherstream db migrate` "
    "recreates a dropped keyspace; a dropped table or column must be added back as weatherstream/sinks/migrations "
    "define it"
)


def schema_behind(exc: BaseException) -> bool:
    """Whether Cassandra refused a write because the coordinating node lacks one of the sink's tables or columns.

    The sink writes only the columns of its own migrations, applied before its first write: the node has an
    older schema (one restarted while the migrations ran, before it pulls the rest from its peers), or the
    keyspace, a table or a column was dropped. Rows are never at fault.
    """
    return isinstance(exc, InvalidRequest) and any(text in str(exc) for text in SCHEMA_BEHIND)


def retryable(exc: BaseException) -> bool:
    """Whether a failed write may succeed if tried again: an outage, a timeout, an overloaded node, or a schema
    that is behind (:func:`schema_behind`: wait for it rather than dead-letter the rows).

    Anything else (a value the table refuses) fails the same way every time.
    """
    if isinstance(exc, _RETRYABLE) or schema_behind(exc):
        return True
    # Authentication and authorization problems are configuration, not data: wait for the fix.
    return isinstance(exc, ErrorMessage) and type(exc).__name__ in {"Unauthorized", "AuthenticationFailed"}


#: The cluster's settings that bound batches across partitions (``system_views.settings``, Cassandra 4.0 and
#: later; the ``_in_kb`` names are 4.0's).
THRESHOLDS = (
    "unlogged_batch_across_partitions_warn_threshold", "batch_size_warn_threshold", "batch_size_fail_threshold",
    "batch_size_warn_threshold_in_kb", "batch_size_fail_threshold_in_kb",
)  # fmt: skip
#: Cassandra's defaults of those thresholds: partitions, warning and failure sizes (bytes)
DEFAULT_BATCH_PARTITIONS, DEFAULT_BATCH_BYTES, DEFAULT_FAIL_BYTES = 10, 5 * 1024, 50 * 1024
_SIZE_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


@dataclass(frozen=True)
class BatchLimits:
    """How far the sink packs small partitions into one unlogged batch: partitions and bytes per batch."""

    partitions: int
    max_bytes: int


def batch_limits(settings: Settings, cluster: Mapping[str, str]) -> BatchLimits:
    """The sink's batch limits: the settings where set, else the cluster's warning thresholds (``cluster``:
    name -> value as ``system_views.settings`` gives them; empty: unknown, Cassandra's defaults then).

    A batch's size stays within the cluster's failure threshold (Cassandra's default, 50 KiB, if unknown)
    whatever the settings say: above it the batch would be refused.
    """
    partitions = settings.sink_batch_partitions
    if partitions is None:
        found = _number(cluster.get("unlogged_batch_across_partitions_warn_threshold"))
        partitions = DEFAULT_BATCH_PARTITIONS if found is None else min(1000, max(1, int(found)))
    if settings.sink_batch_kib is not None:
        max_bytes = settings.sink_batch_kib * 1024
    else:
        max_bytes = _bytes(cluster, "batch_size_warn_threshold") or DEFAULT_BATCH_BYTES
    fail = _bytes(cluster, "batch_size_fail_threshold") or DEFAULT_FAIL_BYTES
    if max_bytes > fail:
        logger.warning("sink: batches kept within %d bytes, the cluster's batch_size_fail_threshold (or Cassandra's "
                       "default), not %d", fail, max_bytes)  # fmt: skip
        max_bytes = fail
    return BatchLimits(partitions, max_bytes)


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) and value > 0 else None


def _bytes(cluster: Mapping[str, str], name: str) -> int | None:
    """A size threshold in bytes: ``name`` ("5KiB", "512B", "1MiB") or 4.0's ``name_in_kb`` ("5")."""
    text = cluster.get(name)
    if text is None:
        kib = _number(cluster.get(f"{name}_in_kb"))
        return int(kib * 1024) if kib is not None else None
    digits = text.rstrip("BKMGi")
    unit = text[len(digits) :] or "KiB"
    value = _number(digits)
    if value is None or unit not in _SIZE_UNITS:
        return None
    return max(1, int(value * _SIZE_UNITS[unit]))


def read_thresholds(session: Session) -> dict[str, str]:
    """The cluster's :data:`THRESHOLDS`, from the node that answers (all nodes should agree).

    Empty if this Cassandra has no such table or the role may not read it (logged: Cassandra's defaults
    apply then). A timeout or an unreachable node raises, so that connecting is tried again.
    """
    names = ", ".join(f"'{name}'" for name in THRESHOLDS)
    try:
        found = session.execute(f"SELECT name, value FROM system_views.settings WHERE name IN ({names})", timeout=10)
    except Exception as exc:
        if isinstance(exc, (NoHostAvailable, OperationTimedOut, ConnectionException, OSError)):
            raise  # the cluster, not the table: open() fails and is tried again
        logger.warning("sink: cannot read the cluster's batch thresholds from system_views.settings (%s: %s): "
                       "packing batches within Cassandra's defaults (%d partitions, %d bytes). To follow the "
                       "cluster's, grant the role SELECT on system_views.settings, or set "
                       "WEATHERSTREAM_SINK_BATCH_PARTITIONS and WEATHERSTREAM_SINK_BATCH_KIB",
                       type(exc).__name__, exc, DEFAULT_BATCH_PARTITIONS, DEFAULT_BATCH_BYTES)  # fmt: skip
        return {}
    return {row.name: row.value for row in found if row.value is not None}


@dataclass(frozen=True)
class RowWrite:
    """One row to write; ``ref`` lets the caller tell which input it came from. ``source``: a write of the same
    record to another table, whose serialized values this row's columns of the same name and type may reuse
    (a latest_by_city row and its observation row)."""

    table: rows.Table
    values: tuple[Any, ...]
    ref: Any = None
    source: RowWrite | None = None


class RowsFailed(Exception):
    """Some writes failed. ``errors`` pairs each failed write with its exception."""

    def __init__(self, errors: list[tuple[RowWrite, BaseException]]) -> None:
        self.errors = errors
        first = errors[0][1]
        super().__init__(f"{len(errors)} write(s) failed; first: {type(first).__name__}: {first}")

    @property
    def retryable(self) -> bool:
        return all(retryable(exc) for _, exc in self.errors)


class InFlight:
    """Requests to Cassandra in flight, at most ``limit`` at once, settled on the event loop in bulk.

    The driver completes requests on its own I/O thread. Handing each completion to the event loop on its own
    (``call_soon_threadsafe`` per request) wakes the loop once per row; here completions queue up and the loop
    is woken once for all that arrived meanwhile. No task or future per request either: with one row per
    partition (many stations, few observations each), those were most of the sink's cost. Each finished
    request is released (:func:`weatherstream.internals.release_response`) so that its rows are freed at once.
    """

    releasing = True  # cleared for good when the driver's internals turn out to differ

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int, latencies_s: list[float] | None) -> None:
        self.loop, self.limit, self.latencies_s = loop, limit, latencies_s
        self.running = 0
        self.done: deque[tuple[int, list[RowWrite], float, BaseException | None]] = deque()  # by the I/O thread
        self.responses: dict[int, ResponseFuture] = {}  # by request number, until released
        self.sent = 0  # requests numbered so far
        self.woken = False  # a drain is scheduled on the loop
        self.errors: list[tuple[RowWrite, BaseException]] = []
        self.changed: asyncio.Future[None] | None = None  # set when requests finish

    async def start(self, chunk: list[RowWrite], send: Callable[[], ResponseFuture]) -> None:
        """Send one request (waiting first while ``limit`` are in flight)."""
        while self.running >= self.limit:
            await self._wait()
        started = time.perf_counter()
        try:
            response = send()
        except Exception as exc:  # noqa: BLE001 - e.g. no connection: collected with the others
            self.errors.extend((w, exc) for w in chunk)
            return
        self.running += 1
        self.sent += 1
        self.responses[self.sent] = response  # before the callbacks: a request may be over at once
        response.add_callbacks(self._succeeded, self._failed, callback_args=(self.sent, chunk, started),
                               errback_args=(self.sent, chunk, started))  # fmt: skip

    async def finish(self) -> list[tuple[RowWrite, BaseException]]:
        """Wait for every request; the writes that failed, with their exceptions."""
        while self.running:
            await self._wait()
        return self.errors

    # The driver calls these on its I/O thread (or on this one, for a request that was over at once).
    def _succeeded(self, _rows: Any, number: int, chunk: list[RowWrite], started: float) -> None:
        self._queue(number, chunk, started, None)

    def _failed(self, error: BaseException, number: int, chunk: list[RowWrite], started: float) -> None:
        self._queue(number, chunk, started, error)

    def _queue(self, number: int, chunk: list[RowWrite], started: float, error: BaseException | None) -> None:
        self.done.append((number, chunk, time.perf_counter() - started, error))
        if not self.woken:
            self.woken = True
            self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self.woken = False  # before taking: a completion queued from now on schedules another drain
        done = self.done
        responses = self.responses
        while done:
            number, chunk, took, error = done.popleft()
            self.running -= 1
            self._release(responses.pop(number))
            if error is not None:
                self.errors.extend((w, error) for w in chunk)
                continue
            # A batch across partitions may hold rows of several tables (they share a replica).
            for table, rows_written in Counter(w.table.name for w in chunk).items():
                metrics.SINK_WRITE_SECONDS.labels(table).observe(took)
                metrics.SINK_ROWS.labels(table).inc(rows_written)
            if self.latencies_s is not None:
                self.latencies_s.append(took)
        if self.changed is not None and not self.changed.done():
            self.changed.set_result(None)

    async def _wait(self) -> None:
        self.changed = self.loop.create_future()
        await self.changed

    @classmethod
    def _release(cls, response: ResponseFuture) -> None:
        """Free a finished request now; if the driver's internals changed, say so once and leave it to the
        garbage collector (memory, not data, is at stake: the rows are accounted for either way)."""
        if cls.releasing:
            try:
                release_response(response)
            except InternalsChanged as exc:
                cls.releasing = False
                logger.error("sink: %s; finished requests are now freed by the garbage collector only", exc)


class CassandraWriter:
    """Prepared inserts into the sink tables of ``settings.keyspace``."""

    TABLES = (rows.OBSERVATIONS, rows.LATEST, rows.AGGREGATES, rows.ALERTS_BY_CITY, rows.ALERTS_BY_DAY)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cluster: Cluster | None = None
        self.session: Session | None = None
        self.prepared: dict[str, PreparedStatement] = {}
        self.binders: dict[str, Binder] = {}  # by table: rows serialized without the driver's bind
        self.reuses: dict[str, Reuse] = {}  # by table: rows serialized partly from their source's (RowWrite.source)
        self.checked: set[tuple[str, str]] = set()  # (table, way) whose first row was bound by the driver too, alike
        self.latencies_s: list[float] | None = None  # set to a list to record every request's latency
        self.limits = batch_limits(settings, {})  # the cluster's thresholds replace the defaults on open()
        self.ttl_s = {
            rows.OBSERVATIONS.name: settings.observations_ttl_s,
            rows.LATEST.name: 0,
            rows.AGGREGATES.name: settings.aggregates_ttl_s,
            rows.ALERTS_BY_CITY.name: settings.alerts_ttl_s,
            rows.ALERTS_BY_DAY.name: settings.alerts_ttl_s,
        }

    @property
    def where(self) -> str:
        return f"{','.join(self.settings.cassandra_hosts)}:{self.settings.cassandra_port}"

    def open(self) -> None:
        """Connect, apply pending migrations and prepare the inserts (blocking; run it in an executor).

        Raises:
            CassandraUnavailableError: no node answered, or the credentials were refused.
        """
        try:
            self.cluster, self.session = connect_settings(self.settings)
        except NoHostAvailable as exc:
            reasons = "; ".join(f"{host}: {type(err).__name__}" for host, err in exc.errors.items()) or str(exc)
            raise CassandraUnavailableError(
                f"cannot reach Cassandra at {self.where} ({reasons}): start it (`weatherstream stack up`) or set "
                "WEATHERSTREAM_CASSANDRA_HOSTS / _PORT; with PasswordAuthenticator set "
                "WEATHERSTREAM_CASSANDRA_USERNAME and WEATHERSTREAM_CASSANDRA_PASSWORD"
            ) from None
        try:
            migrate(self.session, self.settings)
            self.limits = batch_limits(self.settings, read_thresholds(self.session))
            logger.info("sink: small partitions packed into unlogged batches of at most %d partitions and %d bytes",
                        self.limits.partitions, self.limits.max_bytes)  # fmt: skip
            for table in self.TABLES:
                prepared = self.session.prepare(table.insert_cql(self.settings.keyspace))
                self.prepared[table.name] = prepared
                if getattr(prepared, "column_encryption_policy", None) is None:  # encrypted columns: bind() only
                    self.binders[table.name] = Binder(prepared.column_metadata, prepared.routing_key_indexes,
                                                      prepared.protocol_version)  # fmt: skip
            for table_name, source_name in REUSED_FROM.items():
                if table_name in self.binders and source_name in self.binders:
                    self.reuses[table_name] = Reuse(self.binders[table_name], self.prepared[table_name].column_metadata,
                                                    self.prepared[source_name].column_metadata)  # fmt: skip
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.shutdown()
        self.cluster = self.session = None
        self.prepared, self.binders, self.reuses = {}, {}, {}
        self.checked.clear()

    async def write(self, writes: Sequence[RowWrite]) -> None:
        """Write every row; at most ``sink_max_in_flight`` requests at once.

        Raises:
            RowsFailed: after all requests finished, if any failed (with each failed write).
        """
        if self.session is None:
            raise CassandraUnavailableError(f"the sink is not connected to Cassandra at {self.where}")
        session = self.session
        requests = InFlight(asyncio.get_running_loop(), self.settings.sink_max_in_flight, self.latencies_s)
        bound: list[tuple[RowWrite, Any]] = []
        statements: dict[int, Any] = {}  # id of a write -> its statement, for the writes whose source it is
        for i, w in enumerate(writes):
            if i and not i % YIELD_EVERY_ROWS:
                await asyncio.sleep(0)  # binding is CPU work: let the agents that share the loop run
            source = None if w.source is None else statements.get(id(w.source))
            statement = statements[id(w)] = self._bind(w, None if isinstance(source, BaseException) else source)
            bound.append((w, statement))
        refused: list[tuple[RowWrite, BaseException]] = []
        for chunk, statement_or_error in self._grouped(bound):
            if isinstance(statement_or_error, BaseException):
                refused.extend((w, statement_or_error) for w in chunk)
            else:
                await requests.start(chunk, partial(session.execute_async, statement_or_error))
        errors = refused + await requests.finish()
        if errors:
            raise RowsFailed(errors)

    def _bind(self, w: RowWrite, source: Any = None) -> Any:
        """The bound statement of one row, or the exception binding raised (a value of the wrong type).
        ``source``: the bound statement of ``w.source`` (None: not bound in this request)."""
        table = w.table
        try:
            # An absent value is left unset, not written as null: a null is a tombstone, and tombstones
            # slow down every read of the partition.
            # (Not for a newest-wins row: there a missing value must replace the older observation's.)
            row = (*w.values, table.using_value(w.values, self.ttl_s[table.name]))
            prepared = self.prepared[table.name]
            binder = self.binders.get(table.name)
            if binder is None:
                return _driver_bind(table, prepared, row)
            reuse = self.reuses.get(table.name) if source is not None else None
            if reuse is not None and w.source.table.name != REUSED_FROM[table.name]:  # type: ignore[union-attr]
                reuse = None
            nulls_unset = not table.newest_wins
            try:
                if reuse is not None:
                    way, values = REUSING, reuse.serialize(row, source.values, nulls_unset=nulls_unset)
                else:
                    way, values = BINDING, binder.serialize(row, nulls_unset=nulls_unset)
                statement = bound_statement(prepared, row, values)
            except Exception:  # noqa: BLE001 - let the driver say what is wrong with the row, in its words
                return _driver_bind(table, prepared, row)
            if (table.name, way) not in self.checked:
                return self._check(table, prepared, row, statement, way)
            return statement
        except Exception as exc:  # noqa: BLE001 - this row only
            return exc

    def _check(self, table: rows.Table, prepared: PreparedStatement, row: tuple[Any, ...], statement: Any,
               way: str) -> Any:  # fmt: skip
        """Compare the first row a table's :class:`Binder` (or its :class:`Reuse`) bound with the driver's ``bind``
        of it; if they differ, bind that table's rows the driver's way from now on (logged once)."""
        expected = _driver_bind(table, prepared, row)
        if expected.values == statement.values and expected.routing_key == statement.routing_key:
            self.checked.add((table.name, way))
            return statement
        if way == REUSING:
            del self.reuses[table.name]
            instead = "serializing each of them whole"
        else:
            self.binders.pop(table.name, None)
            self.reuses.pop(table.name, None)
            instead = "binding them the slower, driver's way"
        logger.warning("sink: %s rows serialize differently (%s) from what weatherstream expects of cassandra-driver "
                       "(%s); %s from now on", table.name, way, CHECKED_WITH, instead)  # fmt: skip
        return expected

    def _grouped(self, bound: Sequence[tuple[RowWrite, Any]]) -> Iterator[tuple[list[RowWrite], Any]]:
        """(writes, statement) pairs: a bound statement, an unlogged batch of one partition's rows, or an unlogged
        batch of a few small partitions that share their first replica.

        With many stations a batch holds one or two rows per partition; a request per partition then costs the
        worker more than the rows do. Small partitions are packed together, within :attr:`limits` (by default
        the cluster's warning thresholds for batches across partitions). A row that could not be bound comes
        alone, with its exception.
        """
        by_partition: dict[tuple[str, bytes], list[tuple[RowWrite, Any]]] = {}
        for w, statement in bound:
            if isinstance(statement, BaseException):
                yield [w], statement
                continue
            # The routing key is the partition key serialized: equal for rows of one partition, and already made.
            by_partition.setdefault((w.table.name, statement.routing_key), []).append((w, statement))
        most_partitions, most_bytes = self.limits.partitions, self.limits.max_bytes
        packing: dict[Any, tuple[list[list[tuple[RowWrite, Any]]], int]] = {}  # replica -> (partitions, bytes)
        one_node = self.cluster is None or len(self.cluster.metadata.all_hosts()) <= 1
        for group in by_partition.values():
            for i in range(0, len(group), MAX_BATCH_ROWS):
                chunk = group[i : i + MAX_BATCH_ROWS]
                size = sum(_statement_bytes(statement) for _, statement in chunk)
                if most_partitions < 2 or size > most_bytes // 2:
                    yield _batch([chunk])
                    continue
                replica = None if one_node else self._first_replica(chunk[0][1])
                held, held_bytes = packing.get(replica, ([], 0))
                if held and (len(held) >= most_partitions or held_bytes + size > most_bytes):
                    yield _batch(held)
                    held, held_bytes = [], 0
                held.append(chunk)
                packing[replica] = (held, held_bytes + size)
        for held, _ in packing.values():
            yield _batch(held)

    def _first_replica(self, statement: Any) -> Any:
        """The node that owns the statement's partition first (None: unknown), as the driver routes it."""
        try:
            replicas = self.cluster.metadata.get_replicas(self.settings.keyspace, statement.routing_key)  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - no token map yet: pack regardless (any node coordinates)
            return None
        return replicas[0] if replicas else None


# What Cassandra counts per value beyond the value's bytes when it checks a batch's size: 17.2 measured on the
# local node (a 5,160-byte batch of 208 values holding 1,584 bytes; 5,445 bytes for 85 holding 3,975); a little
# more here, so that an estimate within the warning threshold is within it.
CELL_BYTES = 18


# The ways rows are bound besides the driver's ``bind`` (each checked against it with a table's first row).
BINDING = "binder"
REUSING = "reusing the source row's values"
#: tables whose rows may reuse serialized values of their source's rows (RowWrite.source): table -> source table
REUSED_FROM = {rows.LATEST.name: rows.OBSERVATIONS.name}


def _driver_bind(table: rows.Table, prepared: PreparedStatement, row: tuple[Any, ...]) -> Any:
    """``row`` bound by the driver, nulls left unset except in a newest-wins table (see ``_bind``)."""
    return prepared.bind(row if table.newest_wins else tuple(UNSET_VALUE if v is None else v for v in row))


def _statement_bytes(statement: Any) -> int:
    """About the size Cassandra gives the bound statement's row when it checks a batch's size."""
    return sum(len(v) + CELL_BYTES for v in statement.values if isinstance(v, bytes))


def _batch(partitions: list[list[tuple[RowWrite, Any]]]) -> tuple[list[RowWrite], Any]:
    """One request for the rows of ``partitions``: the statement itself if it is a single row."""
    if len(partitions) == 1 and len(partitions[0]) == 1:
        w, statement = partitions[0][0]
        return [w], statement
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    writes = []
    for chunk in partitions:
        for w, statement in chunk:
            batch.add(statement)
            writes.append(w)
    return writes, batch
