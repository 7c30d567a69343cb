"""The pipeline consumer's fetch follows the input rate (weatherstream/transport.py AdaptiveFetch)."""

import asyncio
from types import SimpleNamespace
from typing import Any

from weatherstream.transport import AdaptiveFetch


class Loop:
    def call_soon_threadsafe(self, fn: Any, *args: Any) -> None:
        fn(*args)


def app_with_fetcher() -> tuple[Any, Any]:
    fetcher = SimpleNamespace(_fetch_max_wait_ms=1500, _fetch_min_bytes=1)
    thread = SimpleNamespace(_consumer=SimpleNamespace(_fetcher=fetcher), thread_loop=Loop())
    return SimpleNamespace(consumer=SimpleNamespace(_thread=thread)), fetcher


def test_quiet_input_long_polls_and_busy_input_gathers() -> None:
    app, fetcher = app_with_fetcher()
    fetch = AdaptiveFetch(app, busy_wait_ms=20, busy_min_bytes=65536)
    asyncio.run(fetch.check())  # nothing came: an idle worker wakes once a second
    assert (fetcher._fetch_max_wait_ms, fetcher._fetch_min_bytes) == (5000, 1)
    fetch.count(20)
    assert fetcher._fetch_max_wait_ms == 5000  # a trickle: each message handed on at once
    fetch.count(90)  # 110 events within the 2 s check: more than one per 20 ms long poll
    assert (fetcher._fetch_max_wait_ms, fetcher._fetch_min_bytes) == (20, 65536)
    asyncio.run(fetch.check())
    assert fetcher._fetch_max_wait_ms == 20
    asyncio.run(fetch.check())  # then nothing again
    assert fetcher._fetch_max_wait_ms == 5000


def test_before_the_consumer_runs_nothing_is_set() -> None:
    app = SimpleNamespace(consumer=SimpleNamespace())
    fetch = AdaptiveFetch(app, busy_wait_ms=20, busy_min_bytes=65536)
    asyncio.run(fetch.check())
    assert fetch.mode is None
