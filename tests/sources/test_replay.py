import gzip
from pathlib import Path

import orjson
import pytest

from weatherstream.core.normalize import normalize
from weatherstream.sources.errors import ReplayFormatError
from weatherstream.sources.replay import (
    CsvMapping,
    detect_format,
    open_replay,
    parse_mapping,
    pvlib_dataset,
    read_csv,
    read_jsonl,
    read_tmy3,
)

LINES = [
    b'{"id": 2950159, "dt": 1700000000, "main": {"temp": 1.5}}',
    b"not json at all",
    b'{"id": 2643743, "dt": 1700000600, "main": {"temp": 7.25}}',
]


@pytest.mark.parametrize("gz", [False, True])
def test_jsonl_lines_are_sent_byte_for_byte(tmp_path: Path, gz: bool) -> None:
    body = b"\n".join(LINES) + b"\n\n"
    path = tmp_path / ("obs.jsonl.gz" if gz else "obs.jsonl")
    path.write_bytes(gzip.compress(body) if gz else body)
    assert detect_format(path) == "jsonl"
    handle = open_replay(path, text=False)
    records = list(read_jsonl(handle, units="imperial"))
    assert [r.payload for r in records] == LINES  # the bad line too: the worker dead-letters it
    assert [r.city_id for r in records] == [2950159, None, 2643743]
    assert [r.event_time for r in records] == [1700000000, None, 1700000600]
    assert {r.units for r in records} == {"imperial"}
    assert handle.bytes_read == handle.total_bytes


def test_csv_with_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "station.csv"
    path.write_text(
        "when,tempC,rh,wind\n2025-03-01T10:00:00,5.5,80,3.1\n2025-03-01T11:00:00,6.0,,2.0\n", encoding="utf-8"
    )
    mapping = CsvMapping(
        columns=parse_mapping(["time=when", "temp_c=tempC", "humidity_pct=rh", "wind_speed_ms=wind"]),
        utc_offset_s=3600,
        constants={"city_id": 2950159, "name": "Berlin"},
    )
    records = list(read_csv(open_replay(path, text=True), mapping))
    obs = [normalize(r.payload, now=2e9) for r in records]
    assert [o.temp_c for o in obs] == [5.5, 6.0]
    assert [o.humidity_pct for o in obs] == [80, None]  # missing stays missing
    assert obs[0].observed_at == 1740819600.0  # 10:00 at UTC+1 is 09:00Z
    assert {o.city_id for o in obs} == {2950159}


def test_csv_mapping_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ReplayFormatError, match="unknown field"):
        CsvMapping(columns={"time": "t", "temperature": "x"}, constants={"city_id": 1})
    with pytest.raises(ReplayFormatError, match="time column"):
        CsvMapping(columns={"temp_c": "x"}, constants={"city_id": 1})
    with pytest.raises(ReplayFormatError, match="city"):
        CsvMapping(columns={"time": "t"})
    path = tmp_path / "a.csv"
    path.write_text("t,x\n2025-01-01T00:00:00,1\n")
    with pytest.raises(ReplayFormatError, match="no column"):
        list(read_csv(open_replay(path, text=True), CsvMapping(columns={"time": "t", "temp_c": "y"},
                                                              constants={"city_id": 1})))  # fmt: skip
    with pytest.raises(ReplayFormatError, match="does not exist"):
        open_replay(tmp_path / "missing.jsonl", text=False)


def test_pvlib_tmy3_file_replays_as_a_full_hourly_year() -> None:
    path = pvlib_dataset("723170TYA.CSV")
    assert detect_format(path) == "tmy3"
    records = list(read_tmy3(open_replay(path, text=True), city_id=4469146, name="Greensboro", year=2023))
    assert len(records) == 8760
    times = [r.event_time for r in records]
    assert times == sorted(times) and len(set(times)) == 8760
    first = normalize(records[0].payload, now=2e9)
    # First data row: 01/01/1988 01:00 local standard time (UTC-5), 10.0 °C, 77 %, 993 mbar, 6.2 m/s from 200°.
    assert first.observed_at_utc.isoformat() == "2023-01-01T06:00:00+00:00"
    assert (first.temp_c, first.humidity_pct, first.pressure_hpa, first.wind_speed_ms, first.wind_deg) == (
        10.0, 77, 993, 6.2, 200,
    )  # fmt: skip
    assert first.timezone_offset_s == -5 * 3600 and first.city_name == "Greensboro"
    for r in records:
        normalize(r.payload, now=2e9)  # every row is a valid observation
    assert orjson.loads(records[-1].payload)["dt"] == 1704085200  # 24:00 on 31 Dec is midnight, 05:00Z on 1 Jan
