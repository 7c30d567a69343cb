"""The sink's writer against the real node: one partition's rows go in batches, and a row that cannot be
bound fails alone while the rows around it (in the same request) are written."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from weatherstream.settings import Settings
from weatherstream.sinks import rows
from weatherstream.sinks.cassandra import MAX_BATCH_ROWS, CassandraWriter, RowsFailed, RowWrite

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
