"""The consumer does not commit messages faust's stream skipped during a rebalance, and fetches them again; it hands a
message on without a task when the handler need not wait."""

from __future__ import annotations

import asyncio
import gc
import warnings
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from mode import Service

from weatherstream.transport import HandsOnAtOnce, is_skipped_by_rebalance, seek_uncommitted_to_start


def message(generation_id: int, tracked: bool) -> ConsumerMessage:
    m = ConsumerMessage("t.raw", 0, 5, 0.0, 0, [], b"k", b"v", None, tp=TP("t.raw", 0), generation_id=generation_id)
    m.tracked = tracked
    return m


def app(active: bool, generation: int) -> SimpleNamespace:
    return SimpleNamespace(flow_control=SimpleNamespace(is_active=lambda: active), consumer_generation_id=generation)


def test_a_message_an_agent_took_up_is_committed() -> None:
    assert not is_skipped_by_rebalance(message(3, tracked=True), app(active=True, generation=3))
    # once taken up, a rebalance does not change that: the agent finished it (the worker waits for that)
    assert not is_skipped_by_rebalance(message(3, tracked=True), app(active=False, generation=4))


def test_a_message_skipped_while_flow_is_suspended_is_not_committed() -> None:
    assert is_skipped_by_rebalance(message(3, tracked=False), app(active=False, generation=3))


def test_a_message_fetched_in_an_earlier_generation_is_not_committed() -> None:
    assert is_skipped_by_rebalance(message(3, tracked=False), app(active=True, generation=4))


def test_an_untracked_message_acknowledged_in_normal_flow_is_committed() -> None:
    # e.g. faust acknowledging a message whose key or value could not be decoded
    assert not is_skipped_by_rebalance(message(3, tracked=False), app(active=True, generation=3))


class FakeConsumer:
    """What :meth:`weatherstream.transport.Consumer.seek_to_committed` uses of faust's consumer."""

    def __init__(self, committed: dict[TP, int | None], reset: str = "earliest") -> None:
        self.committed = committed
        self.app = SimpleNamespace(conf=SimpleNamespace(consumer_auto_offset_reset=reset),
                                   tables=SimpleNamespace(changelog_topics={"t.app-state-changelog"}))  # fmt: skip
        self.sought: dict[TP, int] = {}

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: 7 for tp in tps}  # as after retention deleted the first seven records

    async def seek_wait(self, offsets: dict[TP, int]) -> None:
        self.sought.update(offsets)


def seek(fake: FakeConsumer) -> list[TP]:
    return asyncio.run(seek_uncommitted_to_start(fake, fake.committed))


def test_partitions_the_group_never_committed_are_sought_to_their_first_record() -> None:
    committed = {TP("t.raw", 0): 12, TP("t.raw", 1): None, TP("t.raw", 2): 0, TP("t.app-state-changelog", 1): None}
    fake = FakeConsumer(committed)
    assert seek(fake) == [TP("t.raw", 1), TP("t.raw", 2)]
    # aiokafka itself sought t.raw[0] to 12; it leaves the others wherever its fetching got to
    assert fake.sought == {TP("t.raw", 1): 7, TP("t.raw", 2): 7}  # changelogs are positioned by recovery


def test_with_the_latest_reset_policy_nothing_more_is_sought() -> None:
    fake = FakeConsumer({TP("t.raw", 1): None}, reset="latest")
    assert seek(fake) == []
    assert fake.sought == {}


# -- handing a message on without a task per message ------------------------------------------------------------
class Waiter(HandsOnAtOnce, Service):
    """A plain mode service with the consumer's wait_first."""


def test_a_coroutine_that_does_not_wait_runs_in_the_callers_task_and_the_others_are_never_started() -> None:
    async def main() -> None:
        caller = asyncio.current_task()
        ran_in: list[asyncio.Task[Any] | None] = []
        flow = asyncio.Event()

        async def handler() -> int:
            ran_in.append(asyncio.current_task())
            return 5

        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a coroutine never awaited nor closed would warn
            first, other = handler(), flow.wait()
            found = await Waiter().wait_first(first, other)
            gc.collect()
        assert found.done == [first] and found.results == [5] and not found.stopped
        assert ran_in == [caller]  # no task was made for it
        assert other.cr_frame is None  # closed

    asyncio.run(main())


def test_a_coroutine_that_waits_is_driven_on_and_its_result_returned() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        room: asyncio.Future[int] = loop.create_future()
        loop.call_later(0.05, room.set_result, 2)

        async def handler() -> int:
            await asyncio.sleep(0)  # a bare yield
            got = await room  # waits (a full queue)
            return got * 10

        first = handler()
        found = await Waiter().wait_first(first, asyncio.Event().wait())
        assert found.done == [first] and found.results == [20] and not found.stopped

    asyncio.run(main())


def test_a_coroutine_that_waits_loses_to_the_flow_being_suspended_and_is_cancelled() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        flow = asyncio.Event()
        seen: list[str] = []

        async def handler() -> None:
            try:
                await loop.create_future()  # never done
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise
            finally:
                seen.append("finally")

        loop.call_later(0.05, flow.set)
        found = await Waiter().wait_first(handler(), flow)
        await asyncio.sleep(0)
        assert found.done == [flow] and not found.stopped
        assert seen == ["cancelled", "finally"]

    asyncio.run(main())


def test_a_coroutine_that_fails_before_or_after_waiting_raises_to_the_caller() -> None:
    async def main() -> None:
        async def fails_at_once() -> None:
            raise ValueError("at once")

        async def fails_later() -> None:
            await asyncio.sleep(0.01)
            raise KeyError("later")

        with pytest.raises(ValueError, match="at once"):
            await Waiter().wait_first(fails_at_once(), asyncio.Event().wait())
        with pytest.raises(KeyError, match="later"):
            await Waiter().wait_first(fails_later(), asyncio.Event().wait())

    asyncio.run(main())


def test_a_stopped_service_waits_as_mode_does() -> None:
    async def main() -> None:
        waiter = Waiter()
        await waiter.stop()

        async def handler() -> int:
            return 1

        found = await waiter.wait_first(handler())
        assert found.stopped  # mode's answer for a stopped service; the handler's result does not count

    asyncio.run(main())
