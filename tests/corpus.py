"""Hostile and valid raw inputs with the outcome each must have.

Each case is one Kafka message for ``{ns}.raw``: key, value, headers, and the expected outcome: a
dead-letter reason, or ``"valid"`` (exactly one observation). Payloads are distinct byte strings so
outcomes can be matched one to one; the two duplicate cases repeat earlier valid observations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

VALID = "valid"


@dataclass(frozen=True)
class Case:
    name: str
    value: bytes | None
    expected: str
    key: bytes | None = b"2950159"
    headers: list[tuple[str, bytes]] = field(default_factory=lambda: [("source", b"corpus"), ("units", b"metric")])


def _doc(city_id: int = 2950159, dt: int | None = None, **over: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "coord": {"lon": 13.41, "lat": 52.52},
        "weather": [{"id": 803, "main": "Clouds", "description": "broken clouds", "icon": "04d"}],
        "base": "stations",
        "main": {"temp": 4.5, "feels_like": 1.2, "temp_min": 3.9, "temp_max": 5.1, "pressure": 1012, "humidity": 81},
        "visibility": 10000,
        "wind": {"speed": 4.6, "deg": 250, "gust": 8.1},
        "clouds": {"all": 75},
        "dt": dt,
        "sys": {"country": "DE", "sunrise": 1700000000, "sunset": 1700030000},
        "timezone": 3600,
        "id": city_id,
        "name": "Berlin",
        "cod": 200,
    }
    doc.update(over)
    return doc


def _b(doc: object) -> bytes:
    return orjson.dumps(doc)


def _with_main(dt: int, **main: object) -> bytes:
    base = _doc(dt=dt)
    base["main"] = {**base["main"], **main}  # type: ignore[dict-item]
    return _b(base)


def cases(now: float) -> list[Case]:
    """The corpus, with observation times relative to ``now`` (UTC epoch seconds)."""
    t = int(now) - 6 * 3600
    k = iter(range(1, 10_000))

    def dt() -> int:  # a distinct, valid observation time for every case
        return t + next(k) * 60

    deep = b'{"id": 2950159, "dt": %d, "main": {"temp": 1}, "x": ' % dt() + b"[" * 1100 + b"]" * 1100 + b"}"
    bad: list[Case] = [
        Case("not json", b"hello weather", "not_json"),
        Case("empty", b"", "empty"),
        Case("null value (tombstone)", None, "empty"),
        Case("white space", b"   \n\t ", "empty"),
        Case("truncated json", b'{"id": 2950159, "dt": ', "not_json"),
        Case("invalid utf-8", b'\xff\xfe{"id": 2950159}', "not_json"),
        Case("lone surrogate", b'{"id": 2950159, "name": "\xed\xa0\x80"}', "not_json"),
        Case("NaN literal", b'{"id": 2950159, "dt": %d, "main": {"temp": NaN}}' % dt(), "not_json"),
        Case("Infinity literal", b'{"id": 2950159, "dt": %d, "main": {"temp": Infinity}}' % dt(), "not_json"),
        Case("-Infinity literal", b'{"id": 2950159, "dt": %d, "main": {"temp": -Infinity}}' % dt(), "not_json"),
        Case("number overflow", b'{"id": 2950159, "dt": %d, "main": {"temp": 1e400}}' % dt(), "not_json"),
        Case("deeply nested array", b"[" * 20_000 + b"]" * 20_000, "too_large"),
        Case("nesting past the parser's depth", deep, "not_json"),
        Case("huge document", _b(_doc(dt=dt(), padding="x" * 40_000)), "too_large"),
        Case("huge name", _b(_doc(dt=dt(), name="B" * 33_000)), "too_large"),
        Case("array", b"[1, 2, 3]", "not_object"),
        Case("string", b'"Berlin"', "not_object"),
        Case("number", b"42", "not_object"),
        Case("null", b"null", "not_object"),
        Case("boolean", b"true", "not_object"),
        Case(
            "401 body",
            b'{"cod":401, "message": "Invalid API key. Please see https://openweathermap.org/faq#error401"}',
            "api_error",
        ),
        Case("404 body", b'{"cod":"404","message":"city not found"}', "api_error"),
        Case("429 body", b'{"cod":429,"message":"Your account is temporary blocked"}', "api_error"),
        Case("group response", _b({"cnt": 1, "list": [_doc(dt=dt())]}), "missing_field"),
        Case("missing id", _b({k_: v for k_, v in _doc(dt=dt()).items() if k_ != "id"}), "missing_field"),
        Case("missing dt", _b({k_: v for k_, v in _doc(dt=dt()).items() if k_ != "dt"}), "missing_field"),
        Case("null id", _b(_doc(dt=dt(), id=None)), "missing_field"),
        Case("no measurement", _b({"id": 2950159, "dt": dt(), "name": "Berlin"}), "missing_field"),
        Case("empty sections", _b({"id": 2950159, "dt": dt(), "main": {}, "wind": {}}), "missing_field"),
        Case("id as string", _b(_doc(dt=dt(), id="2950159")), "bad_type"),
        Case("id as float", _b(_doc(dt=dt(), id=2950159.5)), "bad_type"),
        Case("id as boolean", _b(_doc(dt=dt(), id=True)), "bad_type"),
        Case("id zero", _b(_doc(dt=dt(), id=0)), "bad_value"),
        Case("id negative", _b(_doc(dt=dt(), id=-5)), "bad_value"),
        Case("dt as string", _b(_doc(dt="2026-11-23T10:00:00Z")), "bad_type"),
        Case("dt as boolean", _b(_doc(dt=True)), "bad_type"),
        Case("dt zero", _b(_doc(dt=0)), "bad_timestamp"),
        Case("dt negative", _b(_doc(dt=-86400)), "bad_timestamp"),
        Case("dt in milliseconds", _b(_doc(dt=dt() * 1000)), "bad_timestamp"),
        Case("dt tomorrow", _b(_doc(dt=int(now) + 86400)), "bad_timestamp"),
        Case("dt in the year 3000", _b(_doc(dt=32503680000)), "bad_timestamp"),
        Case("main as array", _b(_doc(dt=dt(), main=[4.5])), "bad_type"),
        Case("main as string", _b(_doc(dt=dt(), main="warm")), "bad_type"),
        Case("temp as string", _with_main(dt(), temp="4.5"), "bad_type"),
        Case("temp as boolean", _with_main(dt(), temp=False), "bad_type"),
        Case("temp as object", _with_main(dt(), temp={"value": 4.5}), "bad_type"),
        Case("wind as number", _b(_doc(dt=dt(), wind=4.6)), "bad_type"),
        Case("weather as object", _b(_doc(dt=dt(), weather={"id": 800})), "bad_type"),
        Case("weather of strings", _b(_doc(dt=dt(), weather=["Clear"])), "bad_type"),
        Case("name as number", _b(_doc(dt=dt(), name=12345)), "bad_type"),
        Case("name with control characters", _b(_doc(dt=dt(), name="Ber\x00lin\x1b[31m")), "bad_value"),
        Case("name too long", _b(_doc(dt=dt(), name="Berlin " * 50)), "bad_value"),
        Case("country as array", _b(_doc(dt=dt(), sys={"country": ["DE"]})), "bad_type"),
        Case("snow as string", _b(_doc(dt=dt(), snow={"1h": "lots"})), "bad_type"),
        Case("negative humidity", _with_main(dt(), humidity=-5), "out_of_range"),
        Case("humidity 140 %", _with_main(dt(), humidity=140), "out_of_range"),
        Case("temperature 95 °C", _with_main(dt(), temp=95), "out_of_range"),
        Case("temperature -120 °C", _with_main(dt(), temp=-120), "out_of_range"),
        Case("Kelvin marked metric", _with_main(dt(), temp=288.15), "suspect_units"),
        Case("Kelvin feels-like marked metric", _with_main(dt(), feels_like=280.0), "suspect_units"),
        Case("pressure 500 hPa", _with_main(dt(), pressure=500), "out_of_range"),
        Case("pressure 2000 hPa", _with_main(dt(), pressure=2000), "out_of_range"),
        Case("pressure in Pa", _with_main(dt(), pressure=101325), "out_of_range"),
        Case("negative wind", _b(_doc(dt=dt(), wind={"speed": -1})), "out_of_range"),
        Case("wind 200 m/s", _b(_doc(dt=dt(), wind={"speed": 200})), "out_of_range"),
        Case("gust 400 m/s", _b(_doc(dt=dt(), wind={"speed": 5, "gust": 400})), "out_of_range"),
        Case("wind direction 400°", _b(_doc(dt=dt(), wind={"speed": 5, "deg": 400})), "out_of_range"),
        Case("clouds 150 %", _b(_doc(dt=dt(), clouds={"all": 150})), "out_of_range"),
        Case("negative rain", _b(_doc(dt=dt(), rain={"1h": -3})), "out_of_range"),
        Case("latitude 95", _b(_doc(dt=dt(), coord={"lat": 95, "lon": 13})), "out_of_range"),
        Case("longitude -200", _b(_doc(dt=dt(), coord={"lat": 52, "lon": -200})), "out_of_range"),
        Case("timezone 25 h", _b(_doc(dt=dt(), timezone=90000)), "out_of_range"),
        Case("negative visibility", _b(_doc(dt=dt(), visibility=-10)), "out_of_range"),
        Case(
            "15 K marked standard",
            _with_main(dt(), temp=15, feels_like=None, temp_min=None, temp_max=None),
            "out_of_range",
            headers=[("units", b"standard")],
        ),
        Case(
            "200 °F marked imperial",
            _with_main(dt(), temp=200, feels_like=None, temp_min=None, temp_max=None),
            "out_of_range",
            headers=[("units", b"imperial")],
        ),
        Case("unknown units header", _b(_doc(dt=dt())), "bad_value", headers=[("units", b"kelvin")]),
    ]
    hostile_valid: list[Case] = [
        Case("plain valid", _b(_doc(dt=dt())), VALID),
        Case("unicode name", _b(_doc(3448439, dt=dt(), name="São Paulo")), VALID, key=b"3448439"),
        Case("CJK name", _b(_doc(1850147, dt=dt(), name="東京都")), VALID, key=b"1850147"),
        Case("right-to-left name", _b(_doc(112931, dt=dt(), name="تهران")), VALID, key=b"112931"),
        Case("emoji name", _b(_doc(2643743, dt=dt(), name="London 🌧️")), VALID, key=b"2643743"),
        Case("HTML in name", _b(_doc(2988507, dt=dt(), name="<script>alert(1)</script>")), VALID, key=b"2988507"),
        Case("quotes in name", _b(_doc(3117735, dt=dt(), name="Ma\"drid' OR 1=1 --")), VALID, key=b"3117735"),
        Case("minimal", _b({"id": 524901, "dt": dt(), "main": {"temp": -3.0}}), VALID, key=b"524901"),
        Case("only wind", _b({"id": 524901, "dt": dt(), "wind": {"speed": 3.0}}), VALID, key=b"524901"),
        Case("unknown extra fields", _b(_doc(dt=dt(), extra={"a": [1, 2, {"b": None}]})), VALID),
        Case("nulls for optional fields", _b(_doc(dt=dt(), visibility=None, rain=None)), VALID),
        Case("rain and snow", _b(_doc(dt=dt(), rain={"1h": 2.5}, snow={"1h": 0.3})), VALID),
        Case(
            "Kelvin marked standard",
            _with_main(dt(), temp=278.15, feels_like=275.0, temp_min=277.0, temp_max=279.0),
            VALID,
            headers=[("units", b"standard"), ("source", b"corpus")],
        ),
        Case(
            "Fahrenheit marked imperial",
            _b({**_doc(dt=dt()), "main": {"temp": 41.0, "pressure": 1012}, "wind": {"speed": 10.0}}),
            VALID,
            headers=[("units", b"imperial")],
        ),
        Case("zero values", _with_main(dt(), temp=0, humidity=0), VALID),
        Case("float dt", _b(_doc(dt=dt() + 0.5)), VALID),
        Case("no key (foreign producer)", _b(_doc(2950160, dt=dt())), VALID, key=None),
        Case("wrong key (foreign producer)", _b(_doc(2950161, dt=dt())), VALID, key=b"not-a-city"),
        Case("string key", _b(_doc(2950162, dt=dt())), VALID, key=b'"2950162"'),
    ]
    first, second = hostile_valid[0], hostile_valid[1]
    duplicates = [
        Case("exact duplicate", first.value, "duplicate"),
        Case(
            "same city and dt, other bytes",
            _b({**orjson.loads(second.value or b"{}"), "name": "Sao Paulo"}),
            "duplicate",
            key=b"3448439",
        ),
    ]
    return bad + hostile_valid + duplicates


def reason_counts(corpus: list[Case]) -> dict[str, int]:
    out: dict[str, int] = {}
    for case in corpus:
        out[case.expected] = out.get(case.expected, 0) + 1
    return out
