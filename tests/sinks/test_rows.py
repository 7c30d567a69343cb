"""Records -> Cassandra rows: every column filled from the record, keys deterministic, times aware UTC."""

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models import Aggregate, Alert, Observation
from weatherstream.sinks import rows

UTC = dt.timezone.utc


def test_observation_row_has_every_field_and_its_utc_day() -> None:
    obs = Observation(
        city_id=2950159,
        observed_at=1_700_006_399.0,
        city_name="Berlin",
        temp_c=3.5,
        humidity_pct=80,
        condition_main="Rain",
        source="replay",
        ingested_at=1_700_006_400.5,
        payload_json='{"id": 1}',
    )
    values = dict(zip(rows.OBSERVATIONS.columns, rows.row(rows.OBSERVATIONS, obs.asdict()), strict=True))
    assert values["city_id"] == 2950159
    assert values["day"] == dt.date(2023, 11, 14)  # 23:59:59 UTC; the partition is the UTC day
    assert values["observed_at"] == dt.datetime(2023, 11, 14, 23, 59, 59, tzinfo=UTC)
    assert values["ingested_at"].tzinfo is UTC
    assert (values["temp_c"], values["humidity_pct"], values["condition_main"]) == (3.5, 80, "Rain")
    assert values["payload_json"] == '{"id": 1}'
    assert values["wind_gust_ms"] is None  # not reported: stays null, never filled in
    # every model field has a column (nothing the pipeline knows is dropped)
    assert set(Observation._options.fields) <= set(rows.OBSERVATIONS.columns)


def test_same_record_gives_the_same_row_and_partition() -> None:
    record = {"city_id": 1, "observed_at": 1_700_000_000.0, "temp_c": 1.0}
    first, second = rows.row(rows.OBSERVATIONS, record), rows.row(rows.OBSERVATIONS, dict(record))
    assert first == second
    key = tuple(first[rows.OBSERVATIONS.columns.index(name)] for name in rows.OBSERVATIONS.partition_key)
    assert key == (1, dt.date(2023, 11, 14))


def test_aggregate_row_keeps_revision_in_the_key() -> None:
    agg = Aggregate(
        city_id=1,
        kind="tumbling-1h",
        window_id="tumbling-1h:1700000000",
        window_start=1_700_000_000.0,
        window_end=1_700_003_600.0,
        revision=2,
        count=6,
        expected_count=6,
        coverage=1.0,
        cadence_s=600.0,
    )
    values = dict(zip(rows.AGGREGATES.columns, rows.row(rows.AGGREGATES, agg.asdict()), strict=True))
    assert (values["kind"], values["revision"]) == ("tumbling-1h", 2)
    assert values["window_start"] == dt.datetime.fromtimestamp(1_700_000_000, tz=UTC)
    assert set(Aggregate._options.fields) - {"eid"} <= set(rows.AGGREGATES.columns)


def test_alert_goes_to_both_alert_tables() -> None:
    alert = Alert(
        alert_id="1:heat:1700000000",
        seq=0,
        city_id=1,
        kind="heat",
        severity="warning",
        state="open",
        incident_start=1_700_000_000.0,
        observed_at=1_700_000_000.0,
        detected_at=1_700_000_001.0,
        message="heat",
    )
    by_city = rows.row(rows.ALERTS_BY_CITY, alert.asdict())
    by_day = rows.row(rows.ALERTS_BY_DAY, alert.asdict())
    assert by_day[0] == dt.date(2023, 11, 14) and by_day[1:] == by_city
    assert set(Alert._options.fields) <= set(rows.ALERTS_BY_CITY.columns)


@pytest.mark.parametrize(
    ("record", "complaint"),
    [
        ({"observed_at": 1.0}, "no city_id"),
        ({"city_id": 1}, "no observed_at"),
        ({"city_id": 1, "observed_at": "yesterday"}, "observed_at"),
        ({"city_id": 1, "observed_at": float("nan")}, "observed_at"),
        ({"city_id": 1, "observed_at": 1e12}, "out of range"),  # year 33658: the datetime cannot hold it
        ({"city_id": 1, "observed_at": 1.0, "sunrise": -1e15}, "sunrise"),
        ({"city_id": [1], "observed_at": 1.0}, "city_id must be an integer"),
        ({"city_id": "7", "observed_at": 1.0}, "city_id must be an integer"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_records_that_cannot_become_rows_say_why(record: object, complaint: str) -> None:
    with pytest.raises(rows.RowError, match=complaint):
        rows.row(rows.OBSERVATIONS, record)  # type: ignore[arg-type]


def test_insert_statement_binds_every_column_and_the_ttl() -> None:
    cql = rows.ALERTS_BY_DAY.insert_cql("ks")
    assert cql.startswith("INSERT INTO ks.alerts_by_day (day, alert_id, seq, city_id")
    assert cql.count("?") == len(rows.ALERTS_BY_DAY.columns) + 1 and cql.endswith("USING TTL ?")


def test_latest_row_is_written_with_the_observation_time_so_the_newest_wins() -> None:
    record = {"city_id": 7, "observed_at": 1_700_000_000.5, "temp_c": 2.0, "city_name": "X"}
    values = rows.row(rows.LATEST, record)
    assert values[:2] == (0, 7)  # one partition, one row per city
    assert rows.LATEST.using_value(values, ttl_s=0) == 1_700_000_000_500_000
    assert rows.LATEST.insert_cql("ks").endswith("USING TIMESTAMP ?")
    assert rows.OBSERVATIONS.using_value(rows.row(rows.OBSERVATIONS, record), ttl_s=60) == 60


@given(
    st.dictionaries(
        st.sampled_from(rows.OBSERVATIONS.columns + rows.AGGREGATES.columns),
        st.integers(0, 2**40) | st.text(max_size=5) | st.none(),
    ),
    st.sampled_from([rows.OBSERVATIONS, rows.LATEST, rows.AGGREGATES, rows.ALERTS_BY_CITY, rows.ALERTS_BY_DAY]),
)
def test_each_column_is_the_records_value_times_in_utc_and_the_observations_day(
    extra: dict[str, object], table: rows.Table
) -> None:
    record = {**extra, "city_id": 7, "observed_at": 1_700_000_000.5, "kind": "k", "window_start": 1_700_000_000,
              "revision": 1, "alert_id": "a", "seq": 0}  # fmt: skip
    for name in table.times:
        value = record.get(name)
        if value is not None:  # times must be numbers within the datetime's years: others are refused (above)
            record[name] = value % 2**31 if isinstance(value, int) else 1_700_000_000
    values = dict(zip(table.columns, rows.row(table, record), strict=True))
    for column, value in values.items():
        if column == "day":
            assert value == dt.date(2023, 11, 14)
        elif column == "bucket":
            assert value == 0
        elif column in table.times:
            assert value == (None if record.get(column) is None else rows.utc(record[column]))
        else:
            assert value == record.get(column)


def test_the_first_bad_time_in_column_order_is_reported() -> None:
    record = {"city_id": 1, "observed_at": float("nan"), "sunrise": "dawn"}
    with pytest.raises(rows.RowError, match=r"observations_by_city_day\.observed_at"):
        rows.row(rows.OBSERVATIONS, record)
    with pytest.raises(rows.RowError, match=r"observations_by_city_day\.sunrise"):
        rows.row(rows.OBSERVATIONS, {**record, "observed_at": 1.0})


@given(
    st.dictionaries(st.sampled_from(rows.OBSERVATIONS.columns), st.integers(0, 2**40) | st.text(max_size=5) | st.none())
)
def test_the_latest_row_taken_from_the_observation_row_is_the_records_own(extra: dict[str, object]) -> None:
    record = {**extra, "city_id": 7, "observed_at": 1_700_000_000.5}
    for name in rows.OBSERVATIONS.times - {"observed_at"}:
        if record.get(name) is not None:
            record[name] = 1_600_000_000
    assert rows.latest_of(rows.row(rows.OBSERVATIONS, record)) == rows.row(rows.LATEST, record)
