import asyncio
import time
from collections.abc import AsyncIterator

from weatherstream.diagnostics import waiting_points, watch_loop_delay


async def _stuck_generator(event: asyncio.Event) -> AsyncIterator[int]:
    yield 1
    await event.wait()  # the line the dump must name
    yield 2


def test_the_dump_names_the_line_an_async_generator_waits_on() -> None:
    """mode's task dump stops at the first async generator; this list goes inside it."""

    async def main() -> list[str]:
        event = asyncio.Event()

        async def consume() -> None:
            async for _ in _stuck_generator(event):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.01)
        points = waiting_points()
        event.set()
        await task
        return points

    points = asyncio.run(main())
    line = _stuck_generator.__code__.co_firstlineno + 2
    assert f"tests/test_worker_diagnostics.py:{line} in _stuck_generator" in points
    assert any(p.startswith("tests/test_worker_diagnostics.py:") and "consume" in p for p in points)


def test_the_consumer_state_of_a_worker_not_started_says_what_it_could_not_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from weatherstream.diagnostics import consumer_state
    from weatherstream.settings import load_settings
    from weatherstream.worker import build_worker

    app, _ = build_worker(load_settings(store="memory://", namespace="unit", data_dir=tmp_path))
    lines = consumer_state(app)
    assert "flow control active: False" in lines  # faust suspends the flow until the first recovery
    assert any(line.startswith("assignment: unreadable") for line in lines)
    assert any(line.startswith("agent ") and line.endswith("channel queue: 0") for line in lines)


def test_the_loop_delay_is_how_long_a_blocking_callback_held_the_loop() -> None:
    delays: list[float] = []

    async def main() -> None:
        watch = asyncio.create_task(watch_loop_delay(delays.append, every_s=0.02))
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # holds the loop: the watch's wake-up comes about this much late
        await asyncio.sleep(0.05)
        watch.cancel()

    asyncio.run(main())
    assert len(delays) >= 3
    assert min(delays) >= 0.0
    assert 0.28 <= max(delays) < 5.0
    assert sorted(delays)[len(delays) // 2] < 0.28  # most wake-ups were not held up
