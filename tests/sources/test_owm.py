import logging
import time
from collections.abc import Iterator

import orjson
import pytest

from tests.fake_owm import API_KEY, FakeOwm, body
from weatherstream.redact import SecretFilter
from weatherstream.sources.cities import CitySelector, parse_city_spec
from weatherstream.sources.errors import OwmAuthError, OwmCityNotFoundError, OwmRateLimitedError, OwmUnavailableError
from weatherstream.sources.owm import OwmClient, OwmStats, PollPlan, RateLimiter, make_session, plan_units, poll

DT0 = 1_795_000_000


@pytest.fixture
def fake() -> Iterator[FakeOwm]:
    with FakeOwm(DT0) as server:
        yield server


def client(fake: FakeOwm, key: str = API_KEY) -> OwmClient:
    return OwmClient(fake.url, key, session=make_session(retries=3, backoff_s=0.01), timeout_s=5)


def test_current_returns_the_body_byte_for_byte(fake: FakeOwm) -> None:
    payload = client(fake).current(CitySelector(city_id=2950159))
    assert payload == orjson.dumps(body(2950159, DT0))
    assert "units=metric" in fake.requests[-1]


def test_401_is_fatal_and_says_what_to_do(fake: FakeOwm) -> None:
    with pytest.raises(OwmAuthError) as info:
        client(fake, key="wrong-key").current(CitySelector(city_id=2950159))
    assert "WEATHERSTREAM_OWM_API_KEY" in str(info.value) and "wrong-key" not in str(info.value)


def test_404_names_the_city(fake: FakeOwm) -> None:
    with pytest.raises(OwmCityNotFoundError, match="id 404404"):
        client(fake).current(CitySelector(city_id=404404))


def test_429_carries_retry_after(fake: FakeOwm) -> None:
    fake.rate_limit_next = 1
    with pytest.raises(OwmRateLimitedError) as info:
        client(fake).current(CitySelector(city_id=2950159))
    assert info.value.retry_after_s == 1.0


def test_5xx_is_retried_by_the_session(fake: FakeOwm) -> None:
    assert b'"Flaky"' in client(fake).current(CitySelector(city_id=503503))
    assert sum("id=503503" in r for r in fake.requests) == 3  # two 503s, then 200


def test_persistent_5xx_is_unavailable_without_the_key(fake: FakeOwm) -> None:
    with pytest.raises(OwmUnavailableError) as info:
        client(fake).current(CitySelector(city_id=500500))
    assert API_KEY not in str(info.value)


def test_unreachable_server_error_has_no_key() -> None:
    c = OwmClient("http://127.0.0.1:9", API_KEY, session=make_session(retries=0), timeout_s=1)
    with pytest.raises(OwmUnavailableError) as info:
        c.current(CitySelector(city_id=2950159))
    assert API_KEY not in str(info.value)


def test_group_endpoint_splits_items(fake: FakeOwm) -> None:
    payloads = client(fake).group([2950159, 2643743])
    assert [orjson.loads(p)["id"] for p in payloads] == [2950159, 2643743]


def test_poll_spreads_cities_disables_404_and_skips_unchanged(fake: FakeOwm) -> None:
    stats = OwmStats()
    cities = [CitySelector(city_id=2950159), CitySelector(city_id=2643743), CitySelector(city_id=404404)]
    started = time.monotonic()
    records = list(poll(client(fake), cities, period_s=0.6, rate_per_min=6000, rounds=2, stats=stats))
    assert time.monotonic() - started >= 0.6  # the second round waited for its period
    assert [(r.city_id, r.event_time) for r in records] == [(2950159, DT0), (2643743, DT0)]
    assert (stats.not_found, stats.unchanged, stats.payloads) == (1, 2, 2)  # the second round's dt had not moved
    assert sum("id=404404" in r for r in fake.requests) == 1  # disabled after its 404


def test_poll_backs_off_on_429_and_goes_on(fake: FakeOwm) -> None:
    fake.rate_limit_next = 1
    stats = OwmStats()
    started = time.monotonic()
    records = list(poll(client(fake), [CitySelector(city_id=2950159)], period_s=60, rate_per_min=6000, rounds=1,
                        stats=stats))  # fmt: skip
    assert stats.rate_limited == 1 and len(records) == 1
    assert time.monotonic() - started >= 1.0  # waited for Retry-After


def test_poll_stops_on_401(fake: FakeOwm) -> None:
    with pytest.raises(OwmAuthError):
        list(poll(client(fake, key="bad"), [CitySelector(city_id=2950159)], rounds=1))


def test_rate_limiter_allows_the_budget_then_spaces_calls() -> None:
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0])
    for _ in range(60):
        assert limiter.wait_time() == 0
        limiter.take()
    assert limiter.wait_time() == pytest.approx(1.0)
    now[0] += 1.0
    assert limiter.wait_time() == 0


def test_poll_plan_spreads_cities_evenly_over_the_period() -> None:
    plan = PollPlan([[CitySelector(city_id=i)] for i in range(1, 5)], period_s=600, start=1000)
    assert plan.next_due == [1000, 1150, 1300, 1450]
    plan.done(0)
    assert plan.next_due[0] == 1600


def test_group_units_batch_ids_by_twenty() -> None:
    cities = [CitySelector(city_id=i) for i in range(1, 46)] + [CitySelector(name="Paris,FR")]
    units = plan_units(cities, use_group=True)
    assert [len(u) for u in units] == [20, 20, 5, 1]


@pytest.mark.parametrize(
    ("spec", "params"),
    [
        ("2950159", {"id": "2950159"}),
        ("Berlin,DE", {"q": "Berlin,DE"}),
        ("52.52:13.41", {"lat": "52.5200", "lon": "13.4100"}),
    ],
)
def test_city_specs(spec: str, params: dict[str, str]) -> None:
    assert parse_city_spec(spec).params() == params


def test_secret_filter_masks_urllib3_style_records() -> None:
    record = logging.LogRecord("urllib3", logging.DEBUG, __file__, 1, '"GET /w?id=1&appid=%s HTTP/1.1" 200',
                               (API_KEY,), None)  # fmt: skip
    SecretFilter([API_KEY]).filter(record)
    assert API_KEY not in record.getMessage() and "***" in record.getMessage()
