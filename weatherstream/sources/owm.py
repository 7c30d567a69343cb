"""Poll the OpenWeatherMap current-weather API for a list of cities.

Each city is polled at most once per update period (default 600 s: the API's data changes at most every
10 minutes), the cities spread evenly over the period, under a global rate limit (default 60 calls/min,
the free plan). 401 stops the source; 404 disables that city; 429 backs off; 5xx is retried by the HTTP
session and otherwise tried again next period. A poll that returns the same ``dt`` as the last one for
that city is not sent again.

The API key is sent as the ``appid`` query parameter, as the API requires. It is never logged: errors
are built without URLs, and the CLI installs a log filter that masks it everywhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from models import RawRecord
from weatherstream.redact import redact
from weatherstream.sources.cities import CitySelector
from weatherstream.sources.errors import (
    OwmAuthError,
    OwmCityNotFoundError,
    OwmError,
    OwmRateLimitedError,
    OwmUnavailableError,
)

logger = logging.getLogger(__name__)

WEATHER_PATH = "/data/2.5/weather"
GROUP_PATH = "/data/2.5/group"
GROUP_MAX_IDS = 20


def make_session(retries: int = 3, backoff_s: float = 0.5) -> requests.Session:
    """A session that retries GETs on 500/502/503/504 with exponential backoff (not on 429: handled above)."""
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff_s,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,
        respect_retry_after_header=False,  # 429 + Retry-After is handled by poll(), not by blocking here
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "weatherstream"
    return session


class OwmClient:
    """Calls the current-weather endpoints and maps their errors to exceptions.

    Args:
        base_url: e.g. ``https://api.openweathermap.org`` (a local fake in tests).
        api_key: the key; kept private and masked out of every error message.
    """

    def __init__(self, base_url: str, api_key: str, *, session: requests.Session | None = None,
                 timeout_s: float = 10.0) -> None:  # fmt: skip
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self.session = session or make_session()
        self.timeout_s = timeout_s
        self.calls = 0

    def _get(self, path: str, params: dict[str, str], what: str) -> requests.Response:
        self.calls += 1
        try:
            response = self.session.get(
                self.base_url + path, params={**params, "units": "metric", "appid": self._key}, timeout=self.timeout_s
            )
        except requests.RequestException as exc:
            raise OwmUnavailableError(
                f"OpenWeatherMap did not answer for {what}: {redact(type(exc).__name__ + ': ' + str(exc), [self._key])}"
            ) from None
        status = response.status_code
        if status == 200:
            return response
        message = self._error_message(response)
        if status == 401:
            raise OwmAuthError(
                f"OpenWeatherMap rejected the API key (401: {message}). Check WEATHERSTREAM_OWM_API_KEY or "
                f"WEATHERSTREAM_OWM_API_KEY_FILE; a new key can take up to 2 hours to become active."
            )
        if status == 404:
            raise OwmCityNotFoundError(f"OpenWeatherMap does not know {what} (404: {message})")
        if status == 429:
            raise OwmRateLimitedError(
                f"OpenWeatherMap rate limit hit (429: {message})", retry_after_s=self._retry_after(response)
            )
        raise OwmUnavailableError(f"OpenWeatherMap answered {status} for {what}: {message}")

    def _error_message(self, response: requests.Response) -> str:
        try:
            body = orjson.loads(response.content)
            text = str(body.get("message", "")) if isinstance(body, dict) else ""
        except orjson.JSONDecodeError:
            text = response.text[:200]
        return redact(text, [self._key])[:200]

    @staticmethod
    def _retry_after(response: requests.Response, default_s: float = 60.0) -> float:
        try:
            return max(1.0, float(response.headers.get("Retry-After", default_s)))
        except ValueError:
            return default_s

    def current(self, city: CitySelector) -> bytes:
        """The current-weather payload of one city, byte for byte."""
        return self._get(WEATHER_PATH, city.params(), str(city)).content

    def group(self, city_ids: list[int]) -> list[bytes]:
        """Payloads of up to 20 cities by id through the group endpoint (each item re-serialized)."""
        if not 1 <= len(city_ids) <= GROUP_MAX_IDS:
            raise ValueError(f"the group endpoint takes 1..{GROUP_MAX_IDS} ids, got {len(city_ids)}")
        response = self._get(GROUP_PATH, {"id": ",".join(str(i) for i in city_ids)}, f"ids {city_ids}")
        try:
            body = orjson.loads(response.content)
            items = body["list"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise OwmUnavailableError("the group endpoint answered without a 'list'") from None
        return [orjson.dumps(item) for item in items]


class RateLimiter:
    """At most ``per_minute`` calls in any 60 s (a token bucket that starts full)."""

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = max(1.0, per_minute)
        self.rate_per_s = per_minute / 60.0
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()

    def wait_time(self) -> float:
        """Seconds until the next call is allowed (0 when one is allowed now)."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate_per_s

    def take(self) -> None:
        self.tokens -= 1.0


@dataclass
class PollPlan:
    """When each city is due: city ``i`` of ``n`` at ``start + i * period / n + k * period``.

    A unit of work is one city, or one batch of up to 20 ids with the group endpoint.
    """

    units: list[list[CitySelector]]
    period_s: float
    start: float
    next_due: list[float] = field(init=False)
    polls: list[int] = field(init=False)

    def __post_init__(self) -> None:
        n = max(1, len(self.units))
        self.next_due = [self.start + i * self.period_s / n for i in range(len(self.units))]
        self.polls = [0] * len(self.units)

    def next_unit(self, active: Callable[[int], bool]) -> int | None:
        """Index of the active unit due first, or None when none is active."""
        candidates = [i for i in range(len(self.units)) if active(i)]
        return min(candidates, key=lambda i: self.next_due[i]) if candidates else None

    def done(self, i: int) -> None:
        self.polls[i] += 1
        self.next_due[i] += self.period_s

    def postpone(self, i: int, until: float) -> None:
        self.next_due[i] = max(self.next_due[i], until)


@dataclass
class OwmStats:
    """Counts of one polling run."""

    calls: int = 0
    payloads: int = 0
    unchanged: int = 0
    not_found: int = 0
    rate_limited: int = 0
    unavailable: int = 0


def plan_units(cities: list[CitySelector], use_group: bool) -> list[list[CitySelector]]:
    """One unit per city; with ``use_group``, cities given by id are batched 20 per call."""
    if not use_group:
        return [[c] for c in cities]
    by_id = [c for c in cities if c.city_id is not None]
    others = [[c] for c in cities if c.city_id is None]
    return [by_id[i : i + GROUP_MAX_IDS] for i in range(0, len(by_id), GROUP_MAX_IDS)] + others


def poll(
    client: OwmClient,
    cities: list[CitySelector],
    *,
    period_s: float = 600.0,
    rate_per_min: float = 60.0,
    use_group: bool = False,
    rounds: int | None = None,
    duration_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    stats: OwmStats | None = None,
) -> Iterator[RawRecord]:
    """Poll until every active city was polled ``rounds`` times or ``duration_s`` passed (forever if neither).

    Raises:
        OwmAuthError: the key was rejected; nothing more can be fetched.
    """
    stats = stats if stats is not None else OwmStats()
    units = plan_units(cities, use_group)
    start = clock()
    plan = PollPlan(units, period_s, start)
    limiter = RateLimiter(rate_per_min, clock)
    disabled: set[int] = set()
    last_dt: dict[int, float] = {}

    def active(i: int) -> bool:
        return i not in disabled and (rounds is None or plan.polls[i] < rounds)

    while True:
        i = plan.next_unit(active)
        if i is None:
            return
        wait = max(plan.next_due[i] - clock(), limiter.wait_time())
        if duration_s is not None and clock() + wait - start > duration_s:
            return
        if wait > 0:
            sleep(wait)
            continue
        limiter.take()
        stats.calls += 1
        unit = units[i]
        try:
            if len(unit) > 1 or (use_group and unit[0].city_id is not None):
                payloads = client.group([c.city_id for c in unit if c.city_id is not None])
            else:
                payloads = [client.current(unit[0])]
        except OwmCityNotFoundError as exc:
            stats.not_found += 1
            disabled.add(i)
            logger.warning("%s; that city is disabled for this run", exc)
            continue
        except OwmRateLimitedError as exc:
            stats.rate_limited += 1
            logger.warning("%s; backing off %.0f s", exc, exc.retry_after_s)
            plan.postpone(i, clock() + exc.retry_after_s)
            for j in range(len(units)):  # the limit is per account: everyone waits
                plan.postpone(j, clock() + exc.retry_after_s)
            continue
        except OwmUnavailableError as exc:
            stats.unavailable += 1
            logger.warning("%s; trying again next period", exc)
            plan.done(i)
            continue
        except OwmError:
            raise
        plan.done(i)
        for payload in payloads:
            record = RawRecord.from_payload(payload, source="owm", units="metric")
            if record.city_id is not None and record.event_time is not None:
                if last_dt.get(record.city_id) == record.event_time:
                    stats.unchanged += 1
                    continue
                last_dt[record.city_id] = record.event_time
            stats.payloads += 1
            yield record
