import math

import orjson
import pytest

from models import Reason
from tests.corpus import VALID, cases
from weatherstream.core.normalize import RANGES, InvalidPayload, normalize

NOW = 1_795_000_000.0
CORPUS = [c for c in cases(NOW) if c.expected != "duplicate"]


def _units(headers: list[tuple[str, bytes]]) -> str:
    return dict(headers).get("units", b"metric").decode()


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_corpus_case_has_its_expected_outcome(case) -> None:  # type: ignore[no-untyped-def]
    payload = case.value or b""
    if case.expected == VALID:
        obs = normalize(payload, now=NOW, units=_units(case.headers), source="corpus")
        assert obs.city_id == orjson.loads(payload)["id"]
        assert obs.payload_json == payload.decode()
    else:
        with pytest.raises(InvalidPayload) as info:
            normalize(payload, now=NOW, units=_units(case.headers))
        assert info.value.reason == Reason(case.expected), info.value.message
        assert info.value.message


def test_corpus_is_large_and_varied() -> None:
    bad = [c for c in cases(NOW) if c.expected != VALID]
    assert len(bad) >= 60
    assert len({c.value for c in bad if c.expected != "duplicate"}) == len(
        [c for c in bad if c.expected != "duplicate"]
    )
    assert len({c.expected for c in bad}) >= 10


def test_full_payload_is_normalized_field_by_field() -> None:
    payload = (
        b'{"coord":{"lon":13.41,"lat":52.52},"weather":[{"id":500,"main":"Rain","description":"light rain"}],'
        b'"main":{"temp":4.5,"feels_like":1.2,"temp_min":3.9,"temp_max":5.1,"pressure":1012,"humidity":81,'
        b'"sea_level":1012,"grnd_level":1007},"visibility":9000,"wind":{"speed":4.6,"deg":250,"gust":8.1},'
        b'"clouds":{"all":75},"rain":{"1h":0.4},"dt":1794999000,"sys":{"country":"DE","sunrise":1794980000,'
        b'"sunset":1795010000},"timezone":3600,"id":2950159,"name":"Berlin","cod":200}'
    )
    obs = normalize(payload, now=NOW, source="owm")
    assert (obs.city_id, obs.city_name, obs.country, obs.lat, obs.lon) == (2950159, "Berlin", "DE", 52.52, 13.41)
    assert obs.observed_at == 1794999000.0 and obs.observed_at_utc.tzinfo is not None
    assert (obs.temp_c, obs.feels_like_c, obs.temp_min_c, obs.temp_max_c) == (4.5, 1.2, 3.9, 5.1)
    assert (obs.pressure_hpa, obs.sea_level_hpa, obs.grnd_level_hpa, obs.humidity_pct) == (1012, 1012, 1007, 81)
    assert (obs.wind_speed_ms, obs.wind_deg, obs.wind_gust_ms) == (4.6, 250, 8.1)
    assert (obs.clouds_pct, obs.rain_1h_mm, obs.snow_1h_mm, obs.visibility_m) == (75, 0.4, None, 9000)
    assert (obs.condition_id, obs.condition_main, obs.condition_description) == (500, "Rain", "light rain")
    assert (obs.sunrise, obs.sunset, obs.timezone_offset_s) == (1794980000, 1795010000, 3600)
    assert (obs.source, obs.ingested_at) == ("owm", NOW)


def test_missing_optional_fields_stay_missing() -> None:
    obs = normalize(b'{"id": 1, "dt": 1794999000, "main": {"pressure": 1000}}', now=NOW)
    assert obs.pressure_hpa == 1000
    assert obs.temp_c is None and obs.wind_speed_ms is None and obs.city_name is None and obs.lat is None


@pytest.mark.parametrize(
    ("units", "temp", "speed", "temp_c", "speed_ms"),
    [("metric", 10.0, 5.0, 10.0, 5.0), ("standard", 283.15, 5.0, 10.0, 5.0), ("imperial", 50.0, 10.0, 10.0, 4.4704)],
)
def test_units_are_converted_to_metric(units: str, temp: float, speed: float, temp_c: float, speed_ms: float) -> None:
    payload = orjson.dumps({"id": 1, "dt": 1794999000, "main": {"temp": temp}, "wind": {"speed": speed}})
    obs = normalize(payload, now=NOW, units=units)
    assert math.isclose(obs.temp_c, temp_c, abs_tol=1e-9)
    assert math.isclose(obs.wind_speed_ms, speed_ms, abs_tol=1e-9)


@pytest.mark.parametrize("field", sorted(RANGES))
def test_every_range_bound_is_inclusive(field: str) -> None:
    bounds = RANGES[field]
    assert bounds.low < bounds.high


def test_humidity_zero_is_accepted_and_below_zero_rejected() -> None:
    # faust's FloatField(min_value=0) ignores a 0 bound; ours does not.
    assert normalize(b'{"id": 1, "dt": 1794999000, "main": {"humidity": 0}}', now=NOW).humidity_pct == 0
    with pytest.raises(InvalidPayload, match=r"outside 0\.\.100"):
        normalize(b'{"id": 1, "dt": 1794999000, "main": {"humidity": -0.1}}', now=NOW)


def test_small_clock_skew_is_tolerated_but_not_more() -> None:
    normalize(b'{"id": 1, "dt": %d, "main": {"temp": 1}}' % int(NOW + 600), now=NOW)
    with pytest.raises(InvalidPayload, match="future"):
        normalize(b'{"id": 1, "dt": %d, "main": {"temp": 1}}' % int(NOW + 3600), now=NOW)
