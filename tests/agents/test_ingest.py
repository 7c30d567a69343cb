"""The ingest agent in faust's test context (memory tables, sends captured): routing of every outcome."""

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from agents import register_all
from models import DeadLetter, Observation, Reason
from weatherstream import metrics
from weatherstream.app import WeatherStreamApp, create_app
from weatherstream.settings import load_settings


def pipeline_agent(app: WeatherStreamApp) -> Any:
    """The pipeline agent registered on ``app`` (made without its agents), for faust's agent test context."""
    parts = register_all(app).pipeline
    assert parts is not None
    return parts.agent


class Captured:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def hook(self, name: str):  # type: ignore[no-untyped-def]
        async def send(**kwargs: Any) -> None:
            self.sent.append((name, kwargs))

        return send

    def of(self, name: str) -> list[dict[str, Any]]:
        return [kw for n, kw in self.sent if n == name]


def with_captured_sends(tmp_path: Path, **settings: object) -> tuple[WeatherStreamApp, Any, Captured]:
    """An app on a memory store, its pipeline agent, and the sends of every output topic captured."""
    app = create_app(load_settings(store="memory://", namespace="unit", data_dir=tmp_path, **settings))
    pipeline = pipeline_agent(app)
    captured = Captured()
    for name in ("raw", "observations", "deadletter", "aggregates", "alerts"):
        getattr(app.weather_topics, name).send = captured.hook(name)
    return app, pipeline, captured


def run(
    tmp_path: Path,
    messages: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]],
    expect_sends: int | None = None,
    **settings: object,
) -> Captured:
    """Put ``messages`` through the pipeline agent; waits for ``expect_sends`` sends (default: one per message,
    as every input ends as exactly one observation, dead letter or re-keyed copy)."""
    expect_sends = len(messages) if expect_sends is None else expect_sends
    _, pipeline, captured = with_captured_sends(tmp_path, **settings)

    async def scenario() -> None:
        async with pipeline.test_context() as agent:
            for key, value, headers in messages:
                await agent.put(value, key=key, headers=headers)
            # put() returns before a handler that is backing off between retries has finished
            for _ in range(200):
                if len(captured.sent) >= expect_sends:
                    break
                await asyncio.sleep(0.01)

    asyncio.run(scenario())
    return captured


NOW = int(time.time()) - 600


def payload(city: int, dt: int = NOW, temp: float = 3.0) -> bytes:
    return b'{"id": %d, "dt": %d, "main": {"temp": %s}, "name": "X"}' % (city, dt, str(temp).encode())


def test_valid_becomes_one_observation_keyed_by_city(tmp_path: Path) -> None:
    out = run(tmp_path, [(b"7", payload(7), [("source", b"synthetic"), ("units", b"metric")])])
    (sent,) = out.of("observations")
    assert sent["key"] == 7
    obs: Observation = sent["value"]
    assert (obs.city_id, obs.observed_at, obs.temp_c, obs.source) == (7, NOW, 3.0, "synthetic")
    assert out.of("deadletter") == [] and out.of("raw") == []


def test_invalid_becomes_one_dead_letter_with_reason_and_origin(tmp_path: Path) -> None:
    out = run(tmp_path, [(b"7", b"<html>", [("source", b"owm")])])
    (sent,) = out.of("deadletter")
    letter = DeadLetter.from_message(sent["key"], sent["value"], sent["headers"])
    assert letter.payload == b"<html>" and letter.key == b"7"
    assert letter.reason is Reason.NOT_JSON and letter.source == "owm"
    # faust's test context names its channel "<internal>"; the worker tests check the real topic name
    assert letter.topic and letter.partition >= 0 and letter.offset >= 0
    assert out.of("observations") == []


REPEATED = [(b"7", payload(7), []), (b"7", payload(7, temp=4.0), []), (b"7", payload(7, NOW + 60), [])]


def repeats(reason: str) -> float:
    return REGISTRY.get_sample_value("weatherstream_repeats_total", {"reason": reason}) or 0.0


def test_a_repeat_of_city_and_dt_is_counted_not_dead_lettered(tmp_path: Path) -> None:
    before = repeats("duplicate")
    out = run(tmp_path, REPEATED, expect_sends=2)
    assert len(out.of("observations")) == 2 and out.of("deadletter") == []
    assert repeats("duplicate") == before + 1


def test_repeats_are_dead_letters_too_when_asked(tmp_path: Path) -> None:
    before = repeats("duplicate")
    out = run(tmp_path, REPEATED, dead_letter_repeats=True)
    assert len(out.of("observations")) == 2
    (dup,) = out.of("deadletter")
    assert dict(dup["headers"])["ws-reason"] == b"duplicate"
    assert repeats("duplicate") == before + 1


def test_units_header_converts(tmp_path: Path) -> None:
    out = run(tmp_path, [(b"7", payload(7, temp=283.15), [("units", b"standard")])])
    assert out.of("observations")[0]["value"].temp_c == pytest.approx(10.0)


def test_wrong_key_is_resent_with_the_city_key_not_processed_here(tmp_path: Path) -> None:
    out = run(tmp_path, [(None, payload(8), [("source", b"kcat")])])
    (resent,) = out.of("raw")
    assert resent["key"] == b"8" and resent["value"] == payload(8)
    assert ("source", b"kcat") in resent["headers"]
    assert out.of("observations") == [] and out.of("deadletter") == []


def test_a_bug_in_handling_becomes_an_internal_error_dead_letter(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import agents.pipeline

    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(agents.pipeline, "normalize", boom)
    monkeypatch.setattr("agents.resilience.FIRST_DELAY_S", 0.001)
    out = run(tmp_path, [(b"7", payload(7), []), (b"7", b"{}", [])], expect_sends=2)
    reasons = [dict(s["headers"])["ws-reason"] for s in out.of("deadletter")]
    assert reasons == [b"internal_error", b"internal_error"]  # kept for a replay; the agent kept going
    assert out.of("deadletter")[0]["value"] == payload(7)


def test_a_transient_failure_is_retried_not_dropped(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import agents.pipeline

    real = agents.pipeline.normalize
    failures = iter([RuntimeError("metadata not ready"), RuntimeError("still not ready")])

    def flaky(*args: Any, **kwargs: Any) -> Any:
        for exc in failures:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(agents.pipeline, "normalize", flaky)
    monkeypatch.setattr("agents.resilience.FIRST_DELAY_S", 0.001)
    out = run(tmp_path, [(b"7", payload(7), [])], expect_sends=1)
    assert len(out.of("observations")) == 1 and out.of("deadletter") == []


def test_a_redelivery_older_than_the_retention_is_recognised_not_dead_lettered(tmp_path: Path) -> None:
    """A worker that took over a partition whose owner never committed gets its first observations again,
    long after their slices aged out: they were handled then, so nothing is sent for them again."""
    _, pipeline, captured = with_captured_sends(tmp_path)
    steps = 80 * 6  # 80 hours: the first day's slices have aged out of the 48 h retention
    start = NOW - 80 * 3600

    async def settle(observations: int) -> None:
        for _ in range(300):
            if len(captured.of("observations")) >= observations:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)

    async def scenario() -> None:
        async with pipeline.test_context() as agent:
            for i in range(steps):
                await agent.put(payload(7, start + i * 600, 3.0 + i % 5), key=b"7")
            await settle(steps)
            assert len(captured.of("observations")) == steps
            agent.sent_offset = 0  # the same messages, from the start of the partition
            await agent.put(payload(7, start, 3.0), key=b"7")  # aged out: recognised, nothing sent
            agent.sent_offset = steps - 1
            await agent.put(payload(7, start + (steps - 1) * 600, 3.0 + (steps - 1) % 5), key=b"7")  # recent
            await settle(steps + 1)

    asyncio.run(scenario())
    assert captured.of("deadletter") == []
    observations = captured.of("observations")
    assert len(observations) == steps + 1  # only the recent one is sent again (its first send may not have left)
    assert observations[-1]["value"].observed_at == start + (steps - 1) * 600


def test_a_redelivered_observation_writes_its_record_again(tmp_path: Path) -> None:
    """After a crash the worker's own store may hold a city record whose changelog record never left; the
    redelivered observation rewrites it, so a worker rebuilding from the changelog gets the observation too."""
    app, pipeline, captured = with_captured_sends(tmp_path)
    table = app.tables["station_state"]
    written: list[Any] = []
    on_key_set = table.on_key_set  # every write's changelog record starts here (agents/statetable.py)

    def record(key: Any, value: Any) -> None:
        written.append(key)
        on_key_set(key, value)

    table.on_key_set = record  # type: ignore[method-assign]
    start = NOW - 3 * 3600

    async def scenario() -> None:
        async with pipeline.test_context() as agent:
            for i in range(3):
                await agent.put(payload(7, start + i * 600), key=b"7")
            for _ in range(300):
                if len(captured.of("observations")) >= 3:
                    break
                await asyncio.sleep(0.01)
            written.clear()
            agent.sent_offset = 2  # the last one again, as after a crash before its offset was committed
            await agent.put(payload(7, start + 2 * 600), key=b"7")
            for _ in range(300):
                if len(captured.of("observations")) >= 4:
                    break
                await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert len(captured.of("observations")) == 4 and captured.of("deadletter") == []
    assert written == [b"c:7"], "the record holds the hour's slice (hot): rewritten with it"


@pytest.mark.timeout(60)  # the stream stalled before: stopping the agent then hangs
def test_an_agent_restarted_after_a_crash_gets_every_later_event(tmp_path: Path, monkeypatch: Any) -> None:
    """faust restarts a crashed agent on the same stream. The first run's hand-over once stayed in the stream's
    processors, kept taking events for the dead run and blocked the stream for good once its batch was full
    (the pipeline stalled this way after a broker kill); the restarted run now takes the stream over."""
    from mode import OneForOneSupervisor

    from agents.pipeline import Pipeline

    _, pipeline, captured = with_captured_sends(tmp_path, batch_max_events=2)
    handle_batch = Pipeline.handle_batch
    crashes: list[int] = []
    crash_now = asyncio.Event()

    async def crash_once(self: Pipeline, events: Any) -> Any:
        if not crashes:
            crashes.append(len(events))
            await crash_now.wait()  # meanwhile the stream fills this run's buffer and waits for it
            raise RuntimeError("injected crash")
        return await handle_batch(self, events)

    monkeypatch.setattr(Pipeline, "handle_batch", crash_once)
    later = 20
    restarts_before = metrics.AGENT_RESTARTS._value.get()

    async def scenario() -> None:
        context = pipeline.test_context(supervisor_strategy=OneForOneSupervisor)
        async with context as agent:

            async def restart_quietly(exc: BaseException) -> None:
                """faust's test wrapper stops at the first crash; a worker's supervisor restarts the agent"""

            agent.crash_test_agent = restart_quietly
            await agent.put(payload(7, NOW - 3600), key=b"7")
            # four more: one joins the failing batch, two fill the run's buffer, the fourth waits for room there
            fillers = [asyncio.ensure_future(agent.put(payload(50 + i, NOW - 60), key=b"%d" % (50 + i)))
                       for i in range(4)]  # fmt: skip
            await asyncio.sleep(0.2)
            crash_now.set()
            for _ in range(300):  # the new run took the stream over (the event waiting for room was let go)
                if metrics.AGENT_RESTARTS._value.get() > restarts_before:
                    break
                await asyncio.sleep(0.01)
            for i in range(later):
                await agent.put(payload(100 + i, NOW - 60), key=b"%d" % (100 + i))
            for _ in range(300):
                if len(captured.of("observations")) >= later:
                    break
                await asyncio.sleep(0.01)
            for filler in fillers:
                filler.cancel()
            assert len(crashes) == 1
            handled = sorted(sent["key"] for sent in captured.of("observations"))
            # the crashed run's events are fetched again from Kafka on a worker; faust's test context has none
            assert handled == list(range(100, 100 + later)), "every event after the restart is handled"

    asyncio.run(scenario())


def test_a_step_that_fails_after_changing_the_record_it_read_starts_again_from_the_stored_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record read from the table is the batch's own and is changed in place; a failure before it is written
    leaves the stored one as it was, so the retry applies the observation as new, not as a re-delivery."""
    import agents.pipeline

    real = agents.pipeline.Pipeline.write_city
    calls: list[int] = []

    def failing_once(self: Any, city_id: int, partition: int, out: Any) -> None:
        calls.append(city_id)
        if len(calls) == 3:  # city 7's second observation's first try, after apply_city changed the record it read
            raise RuntimeError("simulated failure")
        real(self, city_id, partition, out)

    monkeypatch.setattr(agents.pipeline.Pipeline, "write_city", failing_once)
    monkeypatch.setattr("agents.resilience.FIRST_DELAY_S", 0.001)
    redelivered = REGISTRY.get_sample_value("weatherstream_redelivered_total") or 0.0
    # One cached record: city 8's evicts city 7's, which the third batch then reads from the table.
    _, pipeline, out = with_captured_sends(tmp_path, state_cache_cities=1)

    async def scenario() -> None:
        async with pipeline.test_context() as agent:
            for i, (city, dt) in enumerate(((7, NOW - 600), (8, NOW - 600), (7, NOW))):  # one batch each
                await agent.put(payload(city, dt), key=b"%d" % city)
                for _ in range(200):
                    if len(out.of("observations")) > i:
                        break
                    await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert calls == [7, 8, 7, 7]
    assert [(o["value"].city_id, o["value"].observed_at) for o in out.of("observations")] == [
        (7, NOW - 600), (8, NOW - 600), (7, NOW)]  # fmt: skip
    assert out.of("deadletter") == []
    assert (REGISTRY.get_sample_value("weatherstream_redelivered_total") or 0.0) == redelivered
