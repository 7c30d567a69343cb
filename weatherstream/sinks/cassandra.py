"""Writing rows to Cassandra (prepared statements, bounded concurrency) and reading them back.

:class:`CassandraWriter` is what the sink agent uses: ``open()`` connects and applies the migrations,
``write()`` sends a list of rows with at most ``WEATHERSTREAM_SINK_MAX_IN_FLIGHT`` requests outstanding,
putting rows of one partition (and only of one partition) into an unlogged batch. It raises on the
first failure after every request has finished; :func:`retryable` says whether trying again can help.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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
from cassandra.util import Date

from weatherstream import metrics
from weatherstream.db import connect_settings
from weatherstream.settings import Settings
from weatherstream.sinks import rows
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


def retryable(exc: BaseException) -> bool:
    """Whether a failed write may succeed if tried again (an outage, a timeout, an overloaded node).

    Anything else (an invalid value, a schema mismatch) fails the same way every time.
    """
    if isinstance(exc, _RETRYABLE):
        return True
    if isinstance(exc, InvalidRequest) and ("unconfigured table" in str(exc) or "does not exist" in str(exc)):
        return True  # the schema is missing (a dropped keyspace?): wait for `db migrate`, do not dead-letter
    # Authentication and authorization problems are configuration, not data: wait for the fix.
    return isinstance(exc, ErrorMessage) and type(exc).__name__ in {"Unauthorized", "AuthenticationFailed"}


@dataclass(frozen=True)
class RowWrite:
    """One row to write; ``ref`` lets the caller tell which input it came from."""

    table: rows.Table
    values: tuple[Any, ...]
    ref: Any = None


class RowsFailed(Exception):
    """Some writes failed. ``errors`` pairs each failed write with its exception."""

    def __init__(self, errors: list[tuple[RowWrite, BaseException]]) -> None:
        self.errors = errors
        first = errors[0][1]
        super().__init__(f"{len(errors)} write(s) failed; first: {type(first).__name__}: {first}")

    @property
    def retryable(self) -> bool:
        return all(retryable(exc) for _, exc in self.errors)


def _asyncio_future(response: ResponseFuture, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
    fut: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any = None, error: BaseException | None = None) -> None:
        if fut.done():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)

    response.add_callbacks(
        lambda result: loop.call_soon_threadsafe(settle, result, None),
        lambda exc: loop.call_soon_threadsafe(settle, None, exc),
    )
    return fut


class CassandraWriter:
    """Prepared inserts into the sink tables of ``settings.keyspace``."""

    TABLES = (rows.OBSERVATIONS, rows.LATEST, rows.AGGREGATES, rows.ALERTS_BY_CITY, rows.ALERTS_BY_DAY)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cluster: Cluster | None = None
        self.session: Session | None = None
        self.prepared: dict[str, PreparedStatement] = {}
        self.latencies_s: list[float] | None = None  # set to a list to record every request's latency
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
            for table in self.TABLES:
                self.prepared[table.name] = self.session.prepare(table.insert_cql(self.settings.keyspace))
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.shutdown()
        self.cluster = self.session = None
        self.prepared = {}

    async def write(self, writes: Sequence[RowWrite]) -> None:
        """Write every row; at most ``sink_max_in_flight`` requests at once.

        Raises:
            RowsFailed: after all requests finished, if any failed (with each failed write).
        """
        if self.session is None:
            raise CassandraUnavailableError(f"the sink is not connected to Cassandra at {self.where}")
        session = self.session
        loop = asyncio.get_running_loop()
        limit = asyncio.Semaphore(self.settings.sink_max_in_flight)
        errors: list[tuple[RowWrite, BaseException]] = []

        async def run(chunk: list[RowWrite], statement: Any) -> None:
            async with limit:
                started = time.perf_counter()
                try:
                    await _asyncio_future(session.execute_async(statement), loop)
                except Exception as exc:  # noqa: BLE001 - collected and raised together below
                    errors.extend((w, exc) for w in chunk)
                    return
                table, took = chunk[0].table.name, time.perf_counter() - started
                metrics.SINK_WRITE_SECONDS.labels(table).observe(took)
                if self.latencies_s is not None:
                    self.latencies_s.append(took)
                metrics.SINK_ROWS.labels(table).inc(len(chunk))

        bound: list[tuple[RowWrite, Any]] = []
        for i, w in enumerate(writes):
            if i and not i % YIELD_EVERY_ROWS:
                await asyncio.sleep(0)  # binding is CPU work: let the agents that share the loop run
            bound.append((w, self._bind(w)))
        tasks = []
        for chunk, statement_or_error in self._grouped(bound):
            if isinstance(statement_or_error, BaseException):
                errors.extend((w, statement_or_error) for w in chunk)
            else:
                tasks.append(asyncio.ensure_future(run(chunk, statement_or_error)))
        if tasks:
            await asyncio.gather(*tasks)
        if errors:
            raise RowsFailed(errors)

    def _bind(self, w: RowWrite) -> Any:
        """The bound statement of one row, or the exception binding raised (a value of the wrong type)."""
        try:
            # An absent value is left unset, not written as null: a null is a tombstone, and tombstones
            # slow down every read of the partition.
            # (Not for a newest-wins row: there a missing value must replace the older observation's.)
            values = w.values if w.table.newest_wins else tuple(UNSET_VALUE if v is None else v for v in w.values)
            using = w.table.using_value(w.values, self.ttl_s[w.table.name])
            return self.prepared[w.table.name].bind((*values, using))
        except Exception as exc:  # noqa: BLE001 - this row only
            return exc

    @staticmethod
    def _grouped(bound: Sequence[tuple[RowWrite, Any]]) -> Iterator[tuple[list[RowWrite], Any]]:
        """(writes, statement) pairs: one bound statement, or one unlogged batch of rows of one partition.

        A row that could not be bound comes alone, with its exception.
        """
        by_partition: dict[tuple[str, tuple[Any, ...]], list[tuple[RowWrite, Any]]] = {}
        for w, statement in bound:
            if isinstance(statement, BaseException):
                yield [w], statement
                continue
            by_partition.setdefault((w.table.name, rows.partition_of(w.table, w.values)), []).append((w, statement))
        for group in by_partition.values():
            for i in range(0, len(group), MAX_BATCH_ROWS):
                chunk = group[i : i + MAX_BATCH_ROWS]
                if len(chunk) == 1:
                    yield [chunk[0][0]], chunk[0][1]
                    continue
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                for _, statement in chunk:
                    batch.add(statement)
                yield [w for w, _ in chunk], batch


# --- reading back ----------------------------------------------------------------------------------


def _aware(row: dict[str, Any]) -> dict[str, Any]:
    """The driver returns timestamps as naive UTC datetimes (make them aware) and dates as its own type."""
    out = {}
    for key, value in row.items():
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        elif isinstance(value, Date):
            value = value.date()
        out[key] = value
    return out


def _days(start: dt.datetime, end: dt.datetime) -> list[dt.date]:
    """UTC days from ``end`` back to ``start`` (newest first)."""
    day, first = end.date(), start.date()
    out = []
    while day >= first:
        out.append(day)
        day -= dt.timedelta(days=1)
    return out


def read_observations(session: Session, keyspace: str, city_id: int, start: dt.datetime, end: dt.datetime,
                      limit: int = 10_000) -> list[dict[str, Any]]:  # fmt: skip
    """Observations of a city with ``start <= observed_at < end``, newest first."""
    query = session.prepare(
        f"SELECT * FROM {keyspace}.observations_by_city_day WHERE city_id = ? AND day = ? "
        "AND observed_at >= ? AND observed_at < ?"
    )
    out: list[dict[str, Any]] = []
    for day in _days(start, end - dt.timedelta(microseconds=1)):
        for row in session.execute(query, (city_id, day, start, end)):
            out.append(_aware(row._asdict()))
            if len(out) >= limit:
                return out
    return out


def read_aggregates(session: Session, keyspace: str, city_id: int, kinds: Sequence[str], start: dt.datetime,
                    end: dt.datetime, all_revisions: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """Aggregates of a city's windows starting in ``[start, end)``: the newest revision of each window
    (or every revision), newest window first, kind by kind."""
    query = session.prepare(
        f"SELECT * FROM {keyspace}.aggregates_by_city WHERE city_id = ? AND kind = ? "
        "AND window_start >= ? AND window_start < ?"
    )
    out: list[dict[str, Any]] = []
    for kind in kinds:
        seen: set[dt.datetime] = set()
        for row in session.execute(query, (city_id, kind, start, end)):
            if not all_revisions and row.window_start in seen:
                continue  # revisions come newest first within a window
            seen.add(row.window_start)
            out.append(_aware(row._asdict()))
    return out


def read_latest(session: Session, keyspace: str, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The newest observation of every city, by city id (only ``columns``, if given)."""
    what = ", ".join(columns) if columns else "*"
    return [
        _aware(row._asdict())
        for row in session.execute(f"SELECT {what} FROM {keyspace}.latest_by_city WHERE bucket = 0")
    ]


def read_alerts(session: Session, keyspace: str, city_id: int, start: dt.datetime,
                end: dt.datetime) -> list[dict[str, Any]]:  # fmt: skip
    """Alert messages of a city observed in ``[start, end)``, newest first."""
    query = session.prepare(
        f"SELECT * FROM {keyspace}.alerts_by_city WHERE city_id = ? AND observed_at >= ? AND observed_at < ?"
    )
    return [_aware(row._asdict()) for row in session.execute(query, (city_id, start, end))]
