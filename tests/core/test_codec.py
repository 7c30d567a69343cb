import pytest

from weatherstream.core.aggregator import Aggregator, AggregatorConfig
from weatherstream.core.codec import (
    FORMAT_VERSION,
    CityRecord,
    StateFormatError,
    city_of_record_key,
    decode_record,
    decode_slice,
    encode_record,
    encode_slice,
    peek_record,
    record_key,
)
from weatherstream.core.summary import Sample

T0 = 1_790_000_000 - 1_790_000_000 % 86400


def _state():  # type: ignore[no-untyped-def]
    windows = Aggregator(AggregatorConfig()).begin(7, None, {}.get)
    for m in range(40):
        windows.apply(Sample(T0 + m * 600.0 + 0.5, m + 1, 19800, temp_c=12.34 + m, humidity_pct=55.5,
                             pressure_hpa=1013.2, wind_speed_ms=1e-7 * m, rain_1h_mm=0.3 if m % 2 else None,
                             wind_gust_ms=None if m % 3 else 9.5, condition="Rain" if m % 4 else "Clear"),
                      wall_now=5.0)  # fmt: skip
    return windows.end(durable=True)


def test_records_and_slices_round_trip_exactly() -> None:
    changes = _state()
    anomaly = {"baseline": [[0, 0.0, 0.0]] * 24, "incidents": {"heat": {"id": "7:heat:1"}}}
    latest = {"temp_c": -0.0, "city_name": "Zürich"}
    record = CityRecord(gen=12345678901234, due=1.5e9, newest=T0 + 0.5, windows=changes.state, anomaly=anomaly,
                        latest=latest)  # fmt: skip
    value = encode_record(record)
    assert value[0] == FORMAT_VERSION
    assert decode_record(value) == record
    assert peek_record(value) == (1.5e9, T0 + 0.5)
    for s in [*changes.cold_writes.values(), *changes.state.hot.values()]:
        assert decode_slice(encode_slice(s)) == s
    assert any(part.bits > 64 for s in changes.state.hot.values() for part in s.parts.values()), "a fine scale too"


def test_an_older_format_is_refused_with_what_to_do() -> None:
    with pytest.raises(StateFormatError, match="weatherstream state reset"):
        decode_record(b'{"windows": {"last_offset": 3}}')
    with pytest.raises(StateFormatError, match="version 1, not version 2"):
        decode_slice(b"\x01" + encode_slice(next(iter(_state().state.hot.values())))[1:])
    with pytest.raises(StateFormatError, match="damaged"):
        decode_record(bytes([FORMAT_VERSION]) + b"\xc1")
    with pytest.raises(StateFormatError, match="damaged"):
        decode_record(bytes([FORMAT_VERSION]) + b"\x93\x01\x02\x03")


def test_keys() -> None:
    assert record_key(2950159) == b"c:2950159" and city_of_record_key(b"c:2950159") == 2950159
