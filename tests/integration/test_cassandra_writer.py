"""The sink's writer against the real node: one partition's rows go in batches, and a row that cannot be
bound fails alone while the rows around it (in the same request) are written."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest

from models import Aggregate
from weatherstream.settings import Settings
from weatherstream.sinks import rows
from weatherstream.sinks.writer import (
    BINDING,
    MAX_BATCH_ROWS,
    REUSING,
    BatchLimits,
    CassandraWriter,
    RowsFailed,
    RowWrite,
    retryable,
)

CITY = 2950159
T0 = 1_700_000_000.0  # 2023-11-14 22:13 UTC: the 90 minutes below stay in one UTC day (one partition)
TEMP = rows.OBSERVATIONS.columns.index("temp_c")


def test_unbindable_row_fails_alone_and_its_neighbours_are_written(cassandra_session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    good = [
        RowWrite(
            rows.OBSERVATIONS,
            rows.row(rows.OBSERVATIONS, {"city_id": CITY, "observed_at": T0 + 60 * i, "temp_c": float(i)}),
            ref=i,
        )
        for i in range(90)
    ]
    values = list(rows.row(rows.OBSERVATIONS, {"city_id": CITY, "observed_at": T0 + 30, "temp_c": 0.0}))
    values[TEMP] = "warm"  # text in a double column: the driver refuses to bind it
    bad = RowWrite(rows.OBSERVATIONS, tuple(values), ref="bad")
    assert len(good) > MAX_BATCH_ROWS  # more than one request for the partition
    writer = CassandraWriter(settings)
    writer.open()
    try:
        with pytest.raises(RowsFailed) as failed:
            asyncio.run(writer.write([*good[:10], bad, *good[10:]]))
        assert [w.ref for w, _ in failed.value.errors] == ["bad"]
        assert isinstance(failed.value.errors[0][1], TypeError)
    finally:
        writer.close()
    stored = cassandra_session.execute(
        f"SELECT observed_at, temp_c FROM {settings.keyspace}.observations_by_city_day WHERE city_id = %s AND day = %s",
        (CITY, dt.date(2023, 11, 14)),
        timeout=30,
    )
    temps = sorted(r.temp_c for r in stored)
    assert temps == [float(i) for i in range(90)]


def test_small_partitions_share_requests_within_the_limits(cassandra_session, settings: Settings, caplog) -> None:  # type: ignore[no-untyped-def]
    """100 stations with one observation each: packed into batches across partitions within the thresholds
    the writer read from the node (50 partitions, 32 KiB: the local stack's cassandra.yaml), under its batch
    size warning; every row written, and a refused row still fails alone."""
    cities = list(range(7_000_000, 7_000_100))
    payload = '{"weather": "' + "x" * 700 + '"}'  # about a real current-weather payload's size
    record = {
        "observed_at": T0,
        "city_name": "Somewhere",
        "country": "XX",
        "lat": 1.5,
        "lon": 2.5,
        "payload_json": payload,
    }
    writes = [
        RowWrite(
            rows.OBSERVATIONS, rows.row(rows.OBSERVATIONS, {**record, "city_id": c, "temp_c": float(c % 100)}), ref=c
        )
        for c in cities
    ]
    values = list(rows.row(rows.OBSERVATIONS, {"city_id": 7_000_500, "observed_at": T0, "temp_c": 0.0}))
    values[TEMP] = "warm"
    writer = CassandraWriter(settings)
    writer.open()
    assert writer.limits == BatchLimits(partitions=50, max_bytes=32 * 1024), (
        "the local node's thresholds: a node started before they were in its cassandra.yaml runs without them "
        "(`weatherstream stack down`, then `make test` again)"
    )
    writer.latencies_s = []  # one entry per request
    try:
        with caplog.at_level(logging.WARNING, logger="cassandra"), pytest.raises(RowsFailed) as failed:
            asyncio.run(
                writer.write([*writes[:50], RowWrite(rows.OBSERVATIONS, tuple(values), ref="bad"), *writes[50:]])
            )
        assert [w.ref for w, _ in failed.value.errors] == ["bad"]
        # 100 rows of about 0.9 KiB: at least 3 batches of 32 KiB (the refused row is never sent), far fewer
        # than the 20 or so that Cassandra's default thresholds (10 partitions, 5 KiB) need
        assert 3 <= len(writer.latencies_s) <= 5, len(writer.latencies_s)
        assert not [r.getMessage() for r in caplog.records if "Server warning" in r.getMessage()]
        one_by_one = CassandraWriter(settings.model_copy(update={"sink_batch_partitions": 1}))
        one_by_one.open()
        one_by_one.latencies_s = []
        try:
            asyncio.run(one_by_one.write(writes[:5]))
        finally:
            one_by_one.close()
        assert len(one_by_one.latencies_s) == 5
    finally:
        writer.close()
    found = {
        r.city_id: r.temp_c
        for c in cities
        for r in cassandra_session.execute(
            f"SELECT city_id, temp_c FROM {settings.keyspace}.observations_by_city_day WHERE city_id = %s AND day = %s",
            (c, dt.date(2023, 11, 14)),
            timeout=30,
        )
    }
    assert found == {c: float(c % 100) for c in cities}


def test_finished_requests_leave_no_garbage_for_the_cyclic_collector(cassandra_session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """The written rows are freed when their requests finish, not at the next full collection (which is a
    minute away in a worker): no driver request, statement or row is left in a reference cycle."""
    import gc

    def writes(count: int) -> list[RowWrite]:
        return [
            RowWrite(rows.LATEST, rows.row(rows.LATEST, {"city_id": 7_100_000 + i, "observed_at": T0, "temp_c": 1.0}))
            for i in range(count)
        ]

    writer = CassandraWriter(settings)
    writer.open()
    try:
        asyncio.run(writer.write(writes(10)))  # warm-up: whatever the driver creates once (types, metadata)
        gc.collect()
        gc.disable()
        asyncio.run(writer.write(writes(300)))
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        # The driver's control connection rebuilds its schema metadata in its own thread whenever a schema
        # changes (other tests create tables): that garbage (cassandra.metadata and the maps it reads) has
        # nothing to do with requests.
        left = [
            type(o).__qualname__ for o in gc.garbage
            if type(o).__module__.startswith(("cassandra", "weatherstream")) and not isinstance(o, type)
            and not type(o).__module__.startswith(("cassandra.metadata", "cassandra.util"))
        ]  # fmt: skip
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        writer.close()
    assert left == [], f"{len(left)} objects freed only by the cyclic collector, e.g. {sorted(set(left))[:8]}"


def test_rows_bound_without_the_drivers_bind_read_back_exactly(cassandra_session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """The statements the real node prepared: each table's rows serialized by the sink's Binder equal the driver's
    bind, no table fell back to it, and the values read back are those written (times to the millisecond)."""
    observed = T0 + 0.4567  # sub-millisecond part: truncated, as the driver truncates it
    record = {"city_id": CITY + 1, "observed_at": observed, "city_name": "Zürich", "country": "CH", "temp_c": -0.0,
              "humidity_pct": 81, "condition_id": 500, "sunrise": T0 - 3600, "ingested_at": observed + 1}  # fmt: skip
    alert = {"city_id": CITY + 1, "observed_at": observed, "alert_id": "a1", "seq": 0, "kind": "spike",
             "severity": "warning", "historical": False, "score": 3.25}  # fmt: skip
    aggregate = {"city_id": CITY + 1, "kind": "tumbling-1h", "window_start": T0, "revision": 0, "count": 3,
                 "late": True, "temp_mean_c": 1 / 3}  # fmt: skip
    observation = RowWrite(rows.OBSERVATIONS, rows.row(rows.OBSERVATIONS, record))
    writes = [observation,
              RowWrite(rows.LATEST, rows.row(rows.LATEST, record)),
              RowWrite(rows.LATEST, rows.latest_of(observation.values), source=observation),
              RowWrite(rows.AGGREGATES, rows.row(rows.AGGREGATES, aggregate)),
              RowWrite(rows.ALERTS_BY_CITY, rows.row(rows.ALERTS_BY_CITY, alert)),
              RowWrite(rows.ALERTS_BY_DAY, rows.row(rows.ALERTS_BY_DAY, alert))]  # fmt: skip
    writer = CassandraWriter(settings)
    writer.open()
    try:
        assert set(writer.binders) == {table.name for table in CassandraWriter.TABLES}
        asyncio.run(writer.write(writes))
        checked = {(table.name, BINDING) for table in CassandraWriter.TABLES} | {(rows.LATEST.name, REUSING)}
        assert writer.checked == checked  # none fell back
        assert set(writer.binders) == {table.name for table in CassandraWriter.TABLES}
        assert set(writer.reuses) == {rows.LATEST.name}
    finally:
        writer.close()
    ks = settings.keyspace
    row = cassandra_session.execute(
        f"SELECT observed_at, city_name, temp_c, humidity_pct, condition_id, sunrise, ingested_at FROM "
        f"{ks}.observations_by_city_day WHERE city_id = %s AND day = %s", (CITY + 1, dt.date(2023, 11, 14)), timeout=30
    ).one()  # fmt: skip
    utc = dt.timezone.utc
    assert row.observed_at.replace(tzinfo=utc) == dt.datetime(2023, 11, 14, 22, 13, 20, 456_000, tzinfo=utc)
    assert (row.city_name, row.humidity_pct, row.condition_id) == ("Zürich", 81.0, 500)
    assert str(row.temp_c) == "-0.0"
    assert row.sunrise.replace(tzinfo=utc) == dt.datetime(2023, 11, 14, 21, 13, 20, tzinfo=utc)
    latest = cassandra_session.execute(f"SELECT observed_at, WRITETIME(city_name) AS wt FROM {ks}.latest_by_city "
                                       "WHERE bucket = 0 AND city_id = %s", (CITY + 1,), timeout=30).one()  # fmt: skip
    assert latest.wt == int(observed * 1_000_000)  # USING TIMESTAMP: the observation's time in microseconds
    agg = cassandra_session.execute(f"SELECT count, late, temp_mean_c FROM {ks}.aggregates_by_city WHERE city_id = %s "
                                    "AND kind = 'tumbling-1h'", (CITY + 1,), timeout=30).one()  # fmt: skip
    assert (agg.count, agg.late, agg.temp_mean_c) == (3, True, 1 / 3)
    by_day = cassandra_session.execute(f"SELECT alert_id, score, historical FROM {ks}.alerts_by_day WHERE day = %s",
                                       (dt.date(2023, 11, 14),), timeout=30).all()  # fmt: skip
    assert [(r.alert_id, r.score, r.historical) for r in by_day] == [("a1", 3.25, False)]


def test_packed_aggregate_rows_stay_under_the_batch_size_warning(cassandra_session, settings: Settings,
                                                                  caplog) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """Aggregate rows hold many small values, where Cassandra's count of a batch's size grows most beyond the
    values' own bytes (this warned with the estimate before)."""
    aggregates = [
        Aggregate(city_id=c, kind="tumbling-1h", window_id="tumbling-1h:1700000000", window_start=T0,
                  window_end=T0 + 3600, revision=0, count=6, expected_count=6, coverage=1.0, cadence_s=600.0,
                  temp_min_c=1.0, temp_max_c=5.0, temp_mean_c=3.0, temp_std_c=1.2, humidity_min_pct=50.0,
                  humidity_max_pct=80.0, humidity_mean_pct=60.0, pressure_min_hpa=1000.0, pressure_max_hpa=1010.0,
                  pressure_mean_hpa=1005.0, condition="Rain", first_observed_at=T0, last_observed_at=T0 + 3000,
                  closed_at=T0 + 4000)
        for c in range(8_000_000, 8_000_100)
    ]  # fmt: skip
    writer = CassandraWriter(settings)
    writer.open()
    writer.latencies_s = []
    try:
        with caplog.at_level(logging.WARNING, logger="cassandra"):
            asyncio.run(
                writer.write([RowWrite(rows.AGGREGATES, rows.row(rows.AGGREGATES, a.asdict())) for a in aggregates])
            )
        assert not [r.getMessage() for r in caplog.records if "Server warning" in r.getMessage()]
        assert len(writer.latencies_s) <= 20  # still packed: 100 partitions in at most 20 requests
    finally:
        writer.close()
    stored = cassandra_session.execute(f"SELECT COUNT(*) FROM {settings.keyspace}.aggregates_by_city").one()[0]
    assert stored == len(aggregates)


def test_a_write_refused_for_a_column_the_node_lacks_is_retryable_and_goes_through_once_it_is_back(  # type: ignore[no-untyped-def]
    cassandra_session, settings: Settings
) -> None:
    """What a node that missed a migration answers (here the column is dropped under the running writer): the
    sink must wait for the schema, not dead-letter the rows."""
    column, table = "pressure_tendency_3h_hpa", f"{settings.keyspace}.{rows.OBSERVATIONS.name}"
    writes = [RowWrite(rows.OBSERVATIONS, rows.row(rows.OBSERVATIONS, {"city_id": CITY + i, "observed_at": T0,
                                                                       "temp_c": 1.0, column: -0.5}))
              for i in range(20)]  # fmt: skip
    writer = CassandraWriter(settings)
    writer.open()
    try:
        cassandra_session.execute(f"ALTER TABLE {table} DROP {column}", timeout=60)
        with pytest.raises(RowsFailed) as failed:
            asyncio.run(writer.write(writes))
        errors = [exc for _, exc in failed.value.errors]
        assert len(errors) == len(writes)
        assert all(retryable(exc) and "Undefined column name" in str(exc) for exc in errors), errors[:2]
        cassandra_session.execute(f"ALTER TABLE {table} ADD {column} double", timeout=60)
        asyncio.run(writer.write(writes))
    finally:
        writer.close()
    cities = ", ".join(str(CITY + i) for i in range(20))
    stored = cassandra_session.execute(f"SELECT {column} FROM {table} WHERE city_id IN ({cities}) AND day = %s",
                                       (dt.date(2023, 11, 14),), timeout=30)  # fmt: skip
    assert [r[0] for r in stored] == [-0.5] * len(writes)
