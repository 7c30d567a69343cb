"""The pipeline's batches of stream events: acknowledged only when the next batch is asked for, and a stream taken
over whole by a run of the agent that starts again (faust restarts a crashed agent on the same stream)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from agents.batching import event_batches


class NoChannel:
    """The stream's channel: faust's passive drainer would read it; here :meth:`FakeStream.deliver` feeds."""

    def __aiter__(self) -> NoChannel:
        return self

    async def __anext__(self) -> Any:
        raise StopAsyncIteration


class FakeStream:
    """What event_batches and internals.feed_events use of a faust stream; :meth:`deliver` runs its processors
    for one event, as faust's passive stream does, one event at a time."""

    def __init__(self) -> None:
        self.processors: list[Any] = []
        self.current_event: Any = None
        self.channel = NoChannel()
        self.enable_acks = True
        self.should_stop = False
        self.acked: list[int] = []

    def add_processor(self, processor: Any) -> None:
        self.processors.append(processor)

    def _enable_passive(self, _: Any) -> None:
        pass

    async def wait_for_stopped(self, event: asyncio.Event) -> None:
        await event.wait()

    async def ack(self, event: Any) -> None:
        self.acked.append(event.offset)

    async def deliver(self, offset: int) -> None:
        self.current_event = SimpleNamespace(offset=offset)
        for processor in self.processors:
            await processor(None)


def test_a_batch_is_acknowledged_when_the_next_is_asked_for_never_when_closed() -> None:
    async def scenario() -> None:
        stream = FakeStream()
        batches = event_batches(stream, max_events=2, within_s=0.01)
        first = asyncio.ensure_future(batches.__anext__())
        await asyncio.sleep(0)
        await stream.deliver(1)
        await stream.deliver(2)
        assert [e.offset for e in await first] == [1, 2]
        second = asyncio.ensure_future(batches.__anext__())
        await stream.deliver(3)
        assert [e.offset for e in await second] == [3] and stream.acked == [1, 2]
        await batches.aclose()  # the agent failed with batch [3] in hand: it must not count as handled
        assert stream.acked == [1, 2]

    asyncio.run(scenario())


def test_a_run_that_starts_again_takes_the_stream_over_from_a_blocked_earlier_run() -> None:
    async def scenario() -> None:
        stream = FakeStream()
        restarts: list[int] = []

        async def on_restart() -> None:
            restarts.append(1)

        first = event_batches(stream, max_events=2, within_s=0.01, on_restart=on_restart)
        taken = asyncio.ensure_future(first.__anext__())
        await asyncio.sleep(0)
        for offset in (1, 2):
            await stream.deliver(offset)
        await taken  # the earlier run took [1, 2] and failed with it (never asks for more)
        for offset in (3, 4):
            await stream.deliver(offset)
        blocked = asyncio.ensure_future(stream.deliver(5))  # its buffer is full: the stream waits for it
        await asyncio.sleep(0.05)
        assert not blocked.done()

        second = event_batches(stream, max_events=10, within_s=0.05, on_restart=on_restart)
        batch = asyncio.ensure_future(second.__anext__())
        await asyncio.wait_for(blocked, 1.0)  # the takeover lets the blocked event go (it is fetched again)
        for offset in (6, 7):
            await stream.deliver(offset)
        assert [e.offset for e in await asyncio.wait_for(batch, 1.0)] == [6, 7]
        assert restarts == [1] and len(stream.processors) == 1, "one hand-over per stream"

    asyncio.run(scenario())
