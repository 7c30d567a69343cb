import msgpack
import pytest

from weatherstream.core.aggregator import Aggregator, AggregatorConfig
from weatherstream.core.anomaly.baseline import HourlyBaseline, buckets
from weatherstream.core.codec import (
    FORMAT_VERSION,
    CityRecord,
    StateFormatError,
    city_of_record_key,
    decode_latest,
    decode_record,
    decode_slice,
    encode_latest,
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


def _baseline() -> bytes:
    b = HourlyBaseline(min_samples=3)
    state = b.empty()
    for i, x in enumerate((10.0, 11.5, -3.25, 1e-9, 40.0, 9.75, 0.1)):
        state = b.update(state, (i * 7) % 24, x)
        state = b.update(state, 5, x)
    return state


def _record(anomaly: dict | None = None) -> CityRecord:  # type: ignore[type-arg]
    anomaly = {"baseline": _baseline(), "incidents": {"heat": {"id": "7:heat:1"}}} if anomaly is None else anomaly
    latest = encode_latest({"temp_c": -0.0, "city_name": "Zürich", "observed_at": T0 + 0.5})
    return CityRecord(gen=12345678901234, due=1.5e9, newest=T0 + 0.5, windows=_state().state, anomaly=anomaly,
                      latest=latest)  # fmt: skip


def test_records_and_slices_round_trip_exactly() -> None:
    changes = _state()
    record = _record()
    value = encode_record(record)
    assert value[0] == FORMAT_VERSION == 3
    assert decode_record(value) == record
    assert peek_record(value) == (1.5e9, T0 + 0.5)
    latest = decode_latest(decode_record(value).latest)  # type: ignore[arg-type]
    assert latest == {"temp_c": -0.0, "city_name": "Zürich", "observed_at": T0 + 0.5}
    assert str(latest["temp_c"]) == "-0.0"
    for s in [*changes.cold_writes.values(), *changes.state.hot.values()]:
        assert decode_slice(encode_slice(s)) == s
    assert any(part.bits > 64 for s in changes.state.hot.values() for part in s.parts.values()), "a fine scale too"


def as_version_2(value: bytes) -> bytes:
    """A record of version 3 as version 2 wrote it: the baseline as 24 [n, mean, mad] lists, latest a map."""
    gen, due, newest, windows, anomaly, latest = msgpack.unpackb(value[1:], strict_map_key=False)
    if anomaly is not None:
        anomaly["baseline"] = [list(bucket) for bucket in buckets(anomaly["baseline"])]
    latest = None if latest is None else msgpack.unpackb(latest)
    return b"\x02" + msgpack.packb([gen, due, newest, windows, anomaly, latest])


def test_a_version_2_record_is_converted_as_it_is_read() -> None:
    record = _record()
    old = as_version_2(encode_record(record))
    assert b"Z\xc3\xbcrich" in old and len(msgpack.unpackb(old[1:])[4]["baseline"]) == 24
    converted = decode_record(old)
    assert converted == record  # the baseline's numbers exactly, the newest values, everything else as it was
    assert encode_record(converted) == encode_record(record)
    assert peek_record(old) == (1.5e9, T0 + 0.5)
    new_city = CityRecord(gen=1, windows=_state().state)  # no anomaly state or newest values yet
    assert decode_record(as_version_2(encode_record(new_city))) == new_city
    slice_ = next(iter(_state().state.hot.values()))
    assert decode_slice(b"\x02" + encode_slice(slice_)[1:]) == slice_  # slices are the same in both


def test_an_older_format_is_refused_with_what_to_do() -> None:
    with pytest.raises(StateFormatError, match="weatherstream state reset"):
        decode_record(b'{"windows": {"last_offset": 3}}')
    with pytest.raises(StateFormatError, match=r"version 1, not version 3 \(or 2, which it converts\)"):
        decode_slice(b"\x01" + encode_slice(next(iter(_state().state.hot.values())))[1:])
    with pytest.raises(StateFormatError, match="damaged"):
        decode_record(bytes([FORMAT_VERSION]) + b"\xc1")
    with pytest.raises(StateFormatError, match="damaged"):
        decode_record(bytes([FORMAT_VERSION]) + b"\x93\x01\x02\x03")
    with pytest.raises(StateFormatError, match=r"damaged.*baseline of 575 bytes"):
        decode_record(encode_record(_record({"baseline": _baseline()[:-1]})))


def test_keys() -> None:
    assert record_key(2950159) == b"c:2950159" and city_of_record_key(b"c:2950159") == 2950159
