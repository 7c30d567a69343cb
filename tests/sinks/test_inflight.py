"""The sink's bookkeeping of requests in flight, without a server: a finished request is released, and a driver
whose internals differ costs memory, never rows."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY

from weatherstream.sinks import rows
from weatherstream.sinks.writer import InFlight


class Timer:
    def __init__(self, callback: Any) -> None:
        self.callback, self.canceled = callback, False

    def cancel(self) -> None:
        self.canceled = True


class Response:
    """What InFlight uses of a driver request, completing when told to."""

    def __init__(self) -> None:
        self._timer = Timer(self.on_timeout)  # the cycle the driver's requests have
        self.callbacks: list[tuple[Any, tuple[Any, ...]]] = []

    def on_timeout(self) -> None:
        raise AssertionError("never called")

    def add_callbacks(
        self, ok: Any, failed: Any, callback_args: tuple[Any, ...], errback_args: tuple[Any, ...]
    ) -> None:
        self.callbacks.append((ok, callback_args))

    def complete(self) -> None:
        self._timer.cancel()
        for ok, args in self.callbacks:
            ok(None, *args)


class Bare:
    """A request of a driver without the internals release_response relies on."""

    def __init__(self) -> None:
        self.inner = Response()

    def add_callbacks(self, *args: Any, **kwargs: Any) -> None:
        self.inner.add_callbacks(*args, **kwargs)


def run(responses: list[Any], complete: Any) -> InFlight:
    async def scenario() -> InFlight:
        inflight = InFlight(asyncio.get_running_loop(), limit=10, latencies_s=None)
        for response in responses:
            chunk: list[Any] = [type("W", (), {"table": type("T", (), {"name": "latest_by_city"})()})()]
            await inflight.start(chunk, lambda r=response: r)
        for response in responses:
            complete(response)
        assert await inflight.finish() == []
        return inflight

    return asyncio.run(scenario())


def test_a_finished_request_is_released_and_forgotten() -> None:
    responses = [Response() for _ in range(3)]
    inflight = run(responses, Response.complete)
    assert inflight.responses == {} and inflight.running == 0
    assert all(r._timer is None for r in responses)  # no cycle left for the collector


def test_a_driver_without_the_internals_costs_memory_not_rows(caplog: pytest.LogCaptureFixture, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(InFlight, "releasing", True)
    with caplog.at_level(logging.ERROR, logger="weatherstream.sinks.writer"):
        inflight = run([Bare(), Bare()], lambda r: r.inner.complete())
    assert inflight.running == 0 and inflight.responses == {}
    assert InFlight.releasing is False
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "garbage collector" in said[0] and "cassandra-driver" in said[0]


def test_rows_of_a_batch_across_tables_are_counted_by_their_own_tables() -> None:
    """A batch packed across partitions may hold several tables' rows: each table's counter gets its own."""

    def counted() -> dict[str, float]:
        return {t.name: REGISTRY.get_sample_value("weatherstream_sink_rows_total", {"table": t.name}) or 0.0
                for t in (rows.OBSERVATIONS, rows.LATEST)}  # fmt: skip

    def write(table: rows.Table) -> Any:
        return type("W", (), {"table": table})()

    async def scenario() -> None:
        inflight = InFlight(asyncio.get_running_loop(), limit=10, latencies_s=None)
        response = Response()
        chunk = [write(rows.OBSERVATIONS), write(rows.LATEST), write(rows.OBSERVATIONS)]
        await inflight.start(chunk, lambda: response)
        response.complete()
        assert await inflight.finish() == []

    before = counted()
    asyncio.run(scenario())
    after = counted()
    assert {name: after[name] - before[name] for name in after} == {"observations_by_city_day": 2, "latest_by_city": 1}
