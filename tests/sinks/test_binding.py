"""Rows serialized by weatherstream's Binder are byte for byte what cassandra-driver's bind makes of them.

The prepared statements here are built offline from the sink tables' real column types (read from the
migrations), so every column type the sink writes is covered; tests/integration/test_cassandra_writer.py checks
the same against statements prepared by the real server.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from importlib import resources
from typing import Any

import pytest
from cassandra.cqltypes import lookup_casstype
from cassandra.protocol import ColumnMetadata
from cassandra.query import UNSET_VALUE, PreparedStatement
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weatherstream.internals import bound_statement
from weatherstream.settings import Settings
from weatherstream.sinks import rows
from weatherstream.sinks.binding import Binder, Reuse
from weatherstream.sinks.writer import BINDING, REUSING, CassandraWriter, RowWrite

UTC = dt.timezone.utc
PROTOCOL = 5
CASSTYPES = {"bigint": "LongType", "int": "Int32Type", "double": "DoubleType", "text": "UTF8Type",
             "timestamp": "TimestampType", "date": "SimpleDateType", "boolean": "BooleanType"}  # fmt: skip


def schema_types() -> dict[str, dict[str, str]]:
    """table -> column -> CQL type, from the migrations the sink applies."""
    out: dict[str, dict[str, str]] = {}
    for script in sorted(resources.files("weatherstream.sinks.migrations").iterdir(), key=lambda p: p.name):
        if not script.name.endswith(".cql"):
            continue
        for name, body in re.findall(r"CREATE TABLE IF NOT EXISTS \{keyspace\}\.(\w+) \((.*?)\n\)", script.read_text(),
                                     re.S):  # fmt: skip
            out[name] = dict(re.findall(r"^\s+(\w+) (\w+),$", body, re.M))
        for name, column, kind in re.findall(r"ALTER TABLE \{keyspace\}\.(\w+) ADD IF NOT EXISTS (\w+) (\w+);",
                                             script.read_text()):  # fmt: skip
            out[name][column] = kind
    return out


TYPES = schema_types()


def prepared_insert(table: rows.Table) -> PreparedStatement:
    """The insert the sink prepares for ``table``, as the server describes it (offline)."""
    columns = [ColumnMetadata("ks", table.name, name, lookup_casstype(CASSTYPES[TYPES[table.name][name]]))
               for name in table.columns]  # fmt: skip
    using = "LongType" if table.newest_wins else "Int32Type"
    columns.append(ColumnMetadata("ks", table.name, "[using]", lookup_casstype(using)))
    routing = [table.columns.index(name) for name in table.partition_key]
    return PreparedStatement(columns, b"id", routing, table.insert_cql("ks"), "ks", PROTOCOL, [], None)


TABLES = (rows.OBSERVATIONS, rows.LATEST, rows.AGGREGATES, rows.ALERTS_BY_CITY, rows.ALERTS_BY_DAY)

# Values of the Python types the sink's rows hold, edge cases included.
times = st.datetimes(
    min_value=dt.datetime(1, 1, 2),  # noqa: DTZ001 - bounds
    max_value=dt.datetime(9999, 12, 30),  # noqa: DTZ001 - bounds
    timezones=st.just(UTC),
)
VALUES = {
    "bigint": st.integers(-(2**63), 2**63 - 1),
    "int": st.integers(-(2**31), 2**31 - 1),
    "double": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**53), 2**53)),
    "text": st.text(),
    "timestamp": times,
    "date": st.dates(),
    "boolean": st.booleans(),
}


def driver_bytes(prepared: PreparedStatement, row: tuple[Any, ...]) -> tuple[list[Any], Any]:
    bound = prepared.bind(row)
    return bound.values, bound.routing_key


@st.composite
def table_rows(draw: st.DrawFn, tables: tuple[rows.Table, ...] = TABLES) -> tuple[rows.Table, tuple[Any, ...]]:
    table = draw(st.sampled_from(tables))
    values = []
    for name in table.columns:
        kind = TYPES[table.name][name]
        if name in table.partition_key:
            values.append(draw(VALUES[kind]))
        else:
            values.append(draw(st.one_of(st.none(), VALUES[kind])))
    using = draw(st.integers(0, 2**62) if table.newest_wins else st.integers(0, 2**31 - 1))
    return table, (*values, using)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(table_rows())
def test_binder_bytes_equal_the_drivers_for_every_sink_table(case: tuple[rows.Table, tuple[Any, ...]]) -> None:
    table, row = case
    prepared = prepared_insert(table)
    binder = Binder(prepared.column_metadata, prepared.routing_key_indexes, PROTOCOL)
    statement = bound_statement(prepared, row, binder.serialize(row))
    assert (statement.values, statement.routing_key) == driver_bytes(prepared, row)
    unset = tuple(UNSET_VALUE if v is None else v for v in row)
    assert binder.serialize(row, nulls_unset=True) == prepared.bind(unset).values


@pytest.mark.parametrize(
    "when",
    [
        dt.datetime(1970, 1, 1, tzinfo=UTC),
        dt.datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),  # before the epoch: rounds toward zero
        dt.datetime(1, 1, 1, tzinfo=UTC),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        dt.datetime(2024, 3, 1, 12, 0, 0, 500, tzinfo=dt.timezone(dt.timedelta(hours=-5))),  # aware, not UTC
        dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5))),  # before year 1 in UTC: refused by both
        # where milliseconds computed from total_seconds() would differ by one from the driver's arithmetic
        dt.datetime(391, 5, 10, 22, 27, 1, 475_003, tzinfo=UTC),
        dt.datetime(2038, 12, 24, 4, 58, 1, 904_000, tzinfo=UTC),
    ],
)
def test_timestamps_at_the_edges_serialize_as_the_drivers(when: dt.datetime) -> None:
    """UTC times: the driver's bytes. Other offsets (rows never hold them) are left to the driver's bind."""
    prepared = prepared_insert(rows.ALERTS_BY_CITY)
    row = list(driver_row(rows.ALERTS_BY_CITY))
    row[rows.ALERTS_BY_CITY.columns.index("observed_at")] = when
    binder = Binder(prepared.column_metadata, prepared.routing_key_indexes, PROTOCOL)
    if when.tzinfo is not UTC:
        with pytest.raises(TypeError):
            binder.serialize(tuple(row))
        return
    assert binder.serialize(tuple(row)) == prepared.bind(tuple(row)).values


def driver_row(table: rows.Table) -> tuple[Any, ...]:
    """A plain valid row of ``table`` (and its USING value)."""
    sample = {"bigint": 7, "int": 3, "double": 1.5, "text": "x", "timestamp": dt.datetime(2024, 1, 1, tzinfo=UTC),
              "date": dt.date(2024, 1, 1), "boolean": True}  # fmt: skip
    return (*(sample[TYPES[table.name][name]] for name in table.columns), 60)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("seq", True),  # a bool in an int column: the driver's serializer packs it as 1
        ("observed_value", 5),  # an int in a double column
        ("observed_value", True),
        ("observed_at", 1_700_000_000_000),  # a number in a timestamp column: milliseconds, as the driver reads it
        ("message", b"raw"),
        ("message", "lone \ud800 surrogate"),  # not UTF-8: refused by both
    ],
)
def test_other_python_types_give_the_drivers_bytes_or_fail_as_it_does(column: str, value: Any) -> None:
    table = rows.ALERTS_BY_CITY
    prepared = prepared_insert(table)
    binder = Binder(prepared.column_metadata, prepared.routing_key_indexes, PROTOCOL)
    row = list(driver_row(table))
    row[table.columns.index(column)] = value
    try:
        expected = prepared.bind(tuple(row)).values
    except Exception:  # noqa: BLE001 - the driver refuses it: so must the binder
        with pytest.raises(Exception):  # noqa: B017
            binder.serialize(tuple(row))
    else:
        assert binder.serialize(tuple(row)) == expected


def test_a_naive_datetime_or_an_unset_partition_key_is_refused() -> None:
    table = rows.ALERTS_BY_CITY
    prepared = prepared_insert(table)
    binder = Binder(prepared.column_metadata, prepared.routing_key_indexes, PROTOCOL)
    row = list(driver_row(table))
    row[table.columns.index("observed_at")] = dt.datetime(2024, 1, 1)  # noqa: DTZ001 - the point of the test
    with pytest.raises(TypeError):
        binder.serialize(tuple(row))
    row = list(driver_row(table))
    row[table.columns.index("city_id")] = None
    with pytest.raises(ValueError, match="routing key 'city_id'"):
        binder.serialize(tuple(row), nulls_unset=True)
    with pytest.raises(ValueError, match="values for"):
        binder.serialize(tuple(row)[:-1])


def offline_writer(*tables: rows.Table) -> CassandraWriter:
    writer = CassandraWriter(Settings(namespace="bindtest", keyspace="bindtest"))
    for table in tables:
        prepared = prepared_insert(table)
        writer.prepared[table.name] = prepared
        writer.binders[table.name] = Binder(prepared.column_metadata, prepared.routing_key_indexes, PROTOCOL)
    if rows.LATEST in tables and rows.OBSERVATIONS in tables:
        writer.reuses[rows.LATEST.name] = latest_reuse()
    return writer


def latest_reuse() -> Reuse:
    latest, observations = prepared_insert(rows.LATEST), prepared_insert(rows.OBSERVATIONS)
    binder = Binder(latest.column_metadata, latest.routing_key_indexes, PROTOCOL)
    return Reuse(binder, latest.column_metadata, observations.column_metadata)


def test_a_latest_row_reuses_every_column_of_its_observation_row_but_the_bucket_and_its_write_time() -> None:
    reuse = latest_reuse()
    own = [name for name, pick in zip((*rows.LATEST.columns, "[using]"), reuse.picks, strict=True) if pick is None]
    assert own == ["bucket", "[using]"]
    for name, pick in zip(rows.LATEST.columns, reuse.picks, strict=False):
        assert pick is None or rows.OBSERVATIONS.columns[pick] == name


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(table_rows((rows.OBSERVATIONS,)), st.integers(0, 2**62))
def test_a_latest_row_serialized_from_its_observation_rows_bytes_is_the_drivers(
    case: tuple[rows.Table, tuple[Any, ...]], written_at_us: int
) -> None:
    """Null columns of the observation row are sent unset; the latest row writes them as nulls (they must replace
    an older observation's values)."""
    _, observation = case
    observations = prepared_insert(rows.OBSERVATIONS)
    source = Binder(observations.column_metadata, observations.routing_key_indexes, PROTOCOL)
    latest = (*rows.latest_of(observation[:-1]), written_at_us)
    serialized = latest_reuse().serialize(latest, source.serialize(observation, nulls_unset=True))
    assert serialized == prepared_insert(rows.LATEST).bind(latest).values


def test_the_writer_binds_a_latest_row_from_its_observation_rows_statement() -> None:
    writer = offline_writer(rows.OBSERVATIONS, rows.LATEST)
    record = {"city_id": 5, "observed_at": 1_700_000_000.25, "temp_c": 1.0, "city_name": "Ørsted"}
    observation = RowWrite(rows.OBSERVATIONS, rows.row(rows.OBSERVATIONS, record))
    latest = RowWrite(rows.LATEST, rows.latest_of(observation.values), source=observation)
    statement = writer._bind(latest, writer._bind(observation))
    row = (*latest.values, rows.LATEST.using_value(latest.values, 0))
    driver = writer.prepared[rows.LATEST.name].bind(row)
    assert (statement.values, statement.routing_key) == (driver.values, driver.routing_key)
    assert (rows.LATEST.name, REUSING) in writer.checked
    assert (rows.LATEST.name, BINDING) not in writer.checked  # the binder's own way was not needed


def test_a_reuse_that_differs_from_the_driver_is_dropped_for_the_binder(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = offline_writer(rows.OBSERVATIONS, rows.LATEST)
    monkeypatch.setattr(writer.reuses[rows.LATEST.name], "serialize",
                        lambda values, source, nulls_unset=False: [b"?" for _ in values])  # fmt: skip
    record = {"city_id": 5, "observed_at": 1_700_000_000.0}
    observation = RowWrite(rows.OBSERVATIONS, rows.row(rows.OBSERVATIONS, record))
    latest = RowWrite(rows.LATEST, rows.latest_of(observation.values), source=observation)
    with caplog.at_level(logging.WARNING):
        statement = writer._bind(latest, writer._bind(observation))
    assert b"?" not in statement.values and rows.LATEST.name not in writer.reuses
    assert rows.LATEST.name in writer.binders  # the binder's way is still there
    assert "reusing the source row's values" in caplog.text and "serializing each of them whole" in caplog.text
    assert writer._bind(latest, writer._bind(observation)).values == statement.values


def test_writer_binds_as_the_driver_and_falls_back_where_the_driver_would_explain() -> None:
    writer = offline_writer(rows.OBSERVATIONS, rows.LATEST)
    record = {"city_id": 5, "observed_at": 1_700_000_000.25, "temp_c": 1.0, "city_name": "Ørsted"}
    for table in (rows.OBSERVATIONS, rows.LATEST):
        w = RowWrite(table, rows.row(table, record))
        statement = writer._bind(w)
        row = (*w.values, table.using_value(w.values, writer.ttl_s[table.name]))
        # nulls are left unset except in newest-wins rows, where they replace the older values
        expected = row if table.newest_wins else tuple(UNSET_VALUE if v is None else v for v in row)
        driver = writer.prepared[table.name].bind(expected)
        assert (statement.values, statement.routing_key) == (driver.values, driver.routing_key)
        assert (table.name, BINDING) in writer.checked
        again = writer._bind(w)  # checked: the binder's statement alone
        assert again is not statement and (again.values, again.routing_key) == (driver.values, driver.routing_key)
    # a value of the wrong type: the driver's error message, naming the column
    bad = RowWrite(rows.OBSERVATIONS, rows.row(rows.OBSERVATIONS, {**record, "temp_c": "warm"}))
    error = writer._bind(bad)
    assert isinstance(error, TypeError) and '"temp_c"' in str(error)


def test_writer_uses_the_drivers_bind_for_good_when_the_first_row_differs(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = offline_writer(rows.OBSERVATIONS)
    binder = writer.binders[rows.OBSERVATIONS.name]
    monkeypatch.setattr(binder, "serialize", lambda values, nulls_unset=False: [b"?" for _ in values])
    w = RowWrite(rows.OBSERVATIONS, rows.row(rows.OBSERVATIONS, {"city_id": 5, "observed_at": 1_700_000_000.0}))
    with caplog.at_level(logging.WARNING):
        statement = writer._bind(w)
    assert b"?" not in statement.values  # the driver's statement, not the wrong one
    assert rows.OBSERVATIONS.name not in writer.binders
    assert "binding them the slower, driver's way" in caplog.text
    assert writer._bind(w).values == statement.values
