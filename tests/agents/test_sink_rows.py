"""The sink's pure step: a batch of records -> Cassandra rows, with what cannot be a row set aside with the reason."""

from __future__ import annotations

import datetime as dt

import orjson
from aiokafka import ConsumerRecord

from agents.sink import BatchRows
from weatherstream.sinks import rows
from weatherstream.sinks.writer import RowWrite

OBS, AGG = "ns.observations", "ns.aggregates"
TABLES = {OBS: (rows.OBSERVATIONS,), AGG: (rows.AGGREGATES,)}


def record(topic: str, offset: int, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, 0, offset, 0, 0, b"1", value, None, len(b"1"), len(value), ())


def observation(offset: int, city: int, observed_at: float, temp_c: float) -> ConsumerRecord[bytes, bytes]:
    return record(OBS, offset, orjson.dumps({"city_id": city, "observed_at": observed_at, "temp_c": temp_c}))


def column(write: RowWrite, name: str) -> object:
    return write.values[write.table.columns.index(name)]


def test_each_record_becomes_its_rows_and_each_citys_newest_observation_its_latest_row() -> None:
    batch = BatchRows(TABLES, OBS)  # type: ignore[arg-type]
    batch.add([observation(0, 1, 1_700_000_600.0, 2.0), observation(1, 2, 1_700_000_000.0, 5.0)])
    batch.add([observation(2, 1, 1_700_000_000.0, 1.0)])  # older than the one before: not the latest
    writes = batch.writes()
    assert [w.table for w in writes] == [rows.OBSERVATIONS] * 3 + [rows.LATEST] * 2
    latest = {column(w, "city_id"): column(w, "temp_c") for w in writes if w.table is rows.LATEST}
    assert latest == {1: 2.0, 2: 5.0}
    assert [w.ref.offset for w in writes[:3]] == [0, 1, 2]  # each row knows its record (for a dead letter)
    assert column(writes[0], "observed_at") == dt.datetime(2023, 11, 14, 22, 23, 20, tzinfo=dt.timezone.utc)
    assert batch.refused == []


def test_what_cannot_be_a_row_is_set_aside_with_the_reason_and_the_rest_goes_on() -> None:
    batch = BatchRows(TABLES, OBS)  # type: ignore[arg-type]
    not_json, not_a_row = record(OBS, 0, b"<html>"), record(AGG, 1, b'{"city_id": "x"}')
    batch.add([not_json, observation(1, 3, 1_700_000_000.0, 4.0), not_a_row])
    assert [event for event, _ in batch.refused] == [not_json, not_a_row]
    assert all(reason.startswith("sink: not a record of ns.") for _, reason in batch.refused)
    assert [w.table for w in batch.writes()] == [rows.OBSERVATIONS, rows.LATEST]
