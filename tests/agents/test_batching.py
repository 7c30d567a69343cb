"""Held batches: committed only when handled; given up (never committed) when the worker stops mid-batch."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from intervaltree import IntervalTree

from agents.batching import run_batch
from agents.resilience import WorkerStopping, with_retries


class FakeConsumer:
    """Records which messages reached the consumer's final acknowledgement."""

    def __init__(self) -> None:
        self.unacked: set[Any] = set()
        self.acked: list[int] = []

    def ack(self, message: ConsumerMessage) -> bool:
        self.acked.append(message.offset)
        self.unacked.discard(message)
        return True


def make_events(consumer: FakeConsumer, offsets: range) -> list[Any]:
    events = []
    for offset in offsets:
        message = ConsumerMessage("t.raw", 0, offset, 0.0, 0, [], b"k", b"v", None, tp=TP("t.raw", 0))
        message.incref()  # the stream's reference, given back by take_events when the batch is left
        message.tracked = True
        consumer.unacked.add(message)
        events.append(SimpleNamespace(message=message))
    return events


def leave_batch(consumer: FakeConsumer, events: list[Any]) -> None:
    """What take_events does when its batch is left, handled or not."""
    for event in events:
        event.message.ack(consumer)


def test_a_handled_batch_is_acknowledged_when_take_events_leaves_it() -> None:
    consumer = FakeConsumer()
    app = SimpleNamespace(consumer=consumer)
    events = make_events(consumer, range(10, 13))

    async def handle(batch: Any) -> None:
        assert consumer.acked == []

    asyncio.run(run_batch(app, "test", events, handle))  # type: ignore[arg-type]
    leave_batch(consumer, events)
    assert consumer.acked == [10, 11, 12]
    assert consumer.unacked == set()


def test_a_batch_the_stopping_worker_cannot_finish_is_never_acknowledged() -> None:
    consumer = FakeConsumer()
    app = SimpleNamespace(consumer=consumer)
    events = make_events(consumer, range(20, 23))

    async def handle(batch: Any) -> None:
        raise WorkerStopping("tables closed")

    async def main() -> None:
        task = asyncio.ensure_future(run_batch(app, "test", events, handle))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        assert not task.done(), "an abandoned batch waits for the worker to cancel its agent"
        # the worker's wait for in-flight events no longer waits for this batch
        assert consumer.unacked == set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        leave_batch(consumer, events)

    asyncio.run(main())
    assert consumer.acked == []


def test_retrying_forever_gives_way_to_a_stopping_worker_but_not_to_dead_letters() -> None:
    attempts = []

    async def work() -> None:
        attempts.append(1)
        raise ConnectionError("broker gone")

    stop = {"now": False}

    def stopping() -> bool:
        if len(attempts) >= 2:
            stop["now"] = True
        return stop["now"]

    events = [SimpleNamespace(message=SimpleNamespace(topic="t", partition=0, offset=1))]
    with pytest.raises(WorkerStopping, match="broker gone"):
        asyncio.run(with_retries("test", events, work, deadletter=None, forever=True, stopping=stopping))  # type: ignore[arg-type]
    assert len(attempts) == 2


def test_worker_stopping_is_not_retried_or_dead_lettered() -> None:
    attempts = []

    async def work() -> None:
        attempts.append(1)
        raise WorkerStopping("tables closed")

    events = [SimpleNamespace(message=SimpleNamespace(topic="t", partition=0, offset=1))]
    with pytest.raises(WorkerStopping):
        asyncio.run(with_retries("test", events, work, deadletter=None))  # type: ignore[arg-type]
    assert attempts == [1]


class FakeSignal:
    def connect(self, receiver: Any) -> None:
        self.receiver = receiver


class GuardApp:
    """What OffsetGuard uses of a faust app: consumer offsets and seeks, rebalance signals, a timer."""

    def __init__(self, committed: dict[TP, int]) -> None:
        self.consumer = SimpleNamespace(unacked=set(), _committed_offset=dict(committed), seeks=[],
                                        assignment=lambda: set(committed), _acked={}, _acked_index={},
                                        _gap=defaultdict(IntervalTree))  # fmt: skip

        async def seek_wait(partitions: dict[TP, int]) -> None:
            self.consumer.seeks.append(dict(partitions))

        self.consumer.seek_wait = seek_wait
        self.earliest: dict[TP, int] = {}

        async def earliest_offsets(*partitions: TP) -> dict[TP, int]:
            return {tp: self.earliest.get(tp, 0) for tp in partitions}

        self.consumer.earliest_offsets = earliest_offsets
        self.on_partitions_assigned = FakeSignal()
        self.on_partitions_revoked = FakeSignal()
        self.timers: list[Any] = []

    def timer(self, interval: float, name: str) -> Any:
        def register(fn: Any) -> Any:
            self.timers.append(fn)
            return fn

        return register


TP0 = TP("t.raw", 0)


def offsets_of(events: list[Any]) -> list[int]:
    return [e.message.offset for e in events]


def guard_events(app: GuardApp, offsets: list[int], cities: int = 1) -> list[Any]:
    events = []
    for offset in offsets:
        key = b"%d" % (offset % cities)
        message = ConsumerMessage("t.raw", 0, offset, 0.0, 0, [], key, b"v", None, tp=TP0)
        message.incref()
        message.tracked = True
        app.consumer.unacked.add(message)
        events.append(SimpleNamespace(message=message))
    return events


def test_the_guard_lets_events_in_offset_order_through() -> None:
    from agents.batching import OffsetGuard

    app = GuardApp({TP0: 10})
    guard = OffsetGuard(app, "test")  # type: ignore[arg-type]
    admitted = asyncio.run(guard.admit(guard_events(app, [10, 11, 12])))
    assert offsets_of(admitted) == [10, 11, 12]
    assert offsets_of(asyncio.run(guard.admit(guard_events(app, [13, 14])))) == [13, 14]
    assert app.consumer.seeks == []


def test_a_jump_past_unhandled_offsets_is_held_back_and_sought_again() -> None:
    from agents.batching import OffsetGuard

    app = GuardApp({TP0: 10})
    guard = OffsetGuard(app, "test")  # type: ignore[arg-type]
    consumer = FakeConsumer()
    stale = guard_events(app, [33, 34, 35])  # the consumer resumed at 33 although 10 is the committed offset
    assert asyncio.run(guard.admit(stale)) == []
    assert app.consumer.seeks == [{TP0: 10}]
    leave_batch(consumer, stale)  # take_events acknowledges what it yielded: the held-back copies stay uncommitted
    assert consumer.acked == []
    assert not (app.consumer.unacked & {e.message for e in stale}), "a stopping worker must not wait for them"
    more_stale = guard_events(app, [36, 37])  # fetched before the seek took effect
    assert asyncio.run(guard.admit(more_stale)) == []
    refetched = guard_events(app, list(range(10, 38)))
    assert offsets_of(asyncio.run(guard.admit(refetched))) == list(range(10, 38))
    assert len(app.consumer.seeks) == 1


def test_a_seek_that_is_undone_is_repeated_until_the_offset_arrives() -> None:
    import agents.batching as batching

    app = GuardApp({TP0: 10})
    guard = batching.OffsetGuard(app, "test")  # type: ignore[arg-type]
    asyncio.run(guard.admit(guard_events(app, [20])))
    assert app.consumer.seeks == [{TP0: 10}]
    asyncio.run(app.timers[0]())  # too soon: no second seek
    assert app.consumer.seeks == [{TP0: 10}]
    guard.sought_at[TP0] -= batching.RESEEK_AFTER_S
    asyncio.run(app.timers[0]())
    assert app.consumer.seeks == [{TP0: 10}, {TP0: 10}]
    asyncio.run(guard.admit(guard_events(app, [10])))
    guard.sought_at[TP0] = 0.0
    asyncio.run(app.timers[0]())
    assert len(app.consumer.seeks) == 2, "once the offset arrived there is nothing to seek"


def first_record_in(records: set[int]) -> Any:
    """A stand-in for the guard's own read of a partition holding ``records``."""

    async def first(tp: TP, start: int, end: int) -> int | None:
        return min((o for o in records if start <= o < end), default=None)

    return first


def test_a_jump_still_there_after_the_seek_is_accepted_once_the_gap_holds_no_record() -> None:
    from agents.batching import OffsetGuard

    app = GuardApp({TP0: 10})
    guard = OffsetGuard(app, "test", first_record_in(set(range(12, 100))))  # type: ignore[arg-type]
    assert asyncio.run(guard.admit(guard_events(app, [12, 13]))) == []  # 10 and 11: transaction markers
    assert offsets_of(asyncio.run(guard.admit(guard_events(app, [12, 13, 14])))) == [12, 13, 14]
    assert app.consumer.seeks == [{TP0: 10}]


def test_a_copy_fetched_before_the_seek_is_not_taken_for_an_empty_gap() -> None:
    """The crash loop lost offsets 69-79 of a partition this way: after the seek back to 69, a copy of 80
    fetched before it came first, and the guard concluded that 69-79 held no records."""
    from agents.batching import OffsetGuard

    app = GuardApp({TP0: 69})
    guard = OffsetGuard(app, "test", first_record_in(set(range(0, 100))))  # type: ignore[arg-type]
    assert asyncio.run(guard.admit(guard_events(app, [80, 81]))) == []
    assert asyncio.run(guard.admit(guard_events(app, [80, 81, 82]))) == []  # stale copies: held back again
    assert app.consumer.seeks == [{TP0: 69}, {TP0: 69}]
    assert offsets_of(asyncio.run(guard.admit(guard_events(app, list(range(69, 83)))))) == list(range(69, 83))


def broker_committed(offsets: dict[TP, int]) -> Any:
    """A stand-in for the guard's read of the group's committed offsets from the broker."""

    async def read(tps: list[TP]) -> dict[TP, int | None]:
        return {tp: offsets.get(tp) for tp in tps}

    return read


def test_before_faust_knows_the_committed_offset_the_brokers_is_used() -> None:
    """Events can arrive after a rebalance before faust seeks to (and learns) the committed offsets."""
    from agents.batching import OffsetGuard

    app = GuardApp({})
    guard = OffsetGuard(app, "test", read_committed=broker_committed({TP0: 40}))  # type: ignore[arg-type]
    assert asyncio.run(guard.admit(guard_events(app, [45]))) == []
    assert app.consumer.seeks == [{TP0: 40}]
    assert offsets_of(asyncio.run(guard.admit(guard_events(app, [40, 41])))) == [40, 41]


def test_a_partition_never_committed_is_expected_from_its_first_offset() -> None:
    """A sparse partition (alerts, ticks) can be skipped at its start before anything was committed for it
    (a CI run lost two alert rows in the sink this way)."""
    from agents.batching import OffsetGuard

    app = GuardApp({})
    guard = OffsetGuard(app, "test", read_committed=broker_committed({}))  # type: ignore[arg-type]
    assert asyncio.run(guard.admit(guard_events(app, [3, 4]))) == []
    assert app.consumer.seeks == [{TP0: 0}]
    assert offsets_of(asyncio.run(guard.admit(guard_events(app, [0, 1, 2, 3, 4])))) == [0, 1, 2, 3, 4]

    app = GuardApp({})
    app.earliest[TP0] = 3  # retention deleted the partition's first records: nothing to seek back for
    guard = OffsetGuard(app, "test", read_committed=broker_committed({}))  # type: ignore[arg-type]
    assert offsets_of(asyncio.run(guard.admit(guard_events(app, [3, 4])))) == [3, 4]
    assert app.consumer.seeks == []


def test_after_an_agent_restart_partitions_are_fetched_again_from_their_committed_offsets() -> None:
    """What the crashed run held (handled or not) comes again from the committed offset; copies fetched before
    the seek are held back, a partition with nothing past its committed offset is left alone, and the crashed
    run's messages are no longer waited for."""
    from agents.batching import OffsetGuard

    tp1, other = TP("t.raw", 1), TP("t.other", 0)
    app = GuardApp({TP0: 10, tp1: 7, other: 3})
    app.consumer.highwater = {TP0: 30, tp1: 7, other: 9}.get
    guard = OffsetGuard(app, "test")  # type: ignore[arg-type]
    assert offsets_of(asyncio.run(guard.admit(guard_events(app, list(range(10, 20)))))) == list(range(10, 20))
    held_by_crashed_run = guard_events(app, [20, 21])
    asyncio.run(guard.restart({"t.raw"}))
    assert app.consumer.seeks == [{TP0: 10}], "only the source partition with records past its commit"
    assert not app.consumer.unacked & {e.message for e in held_by_crashed_run}
    assert asyncio.run(guard.admit(guard_events(app, [22, 23]))) == [], "fetched before the seek"
    again = list(range(10, 24))
    assert offsets_of(asyncio.run(guard.admit(guard_events(app, again)))) == again


def test_broker_reads_are_tried_again_while_the_coordinator_is_down() -> None:
    from aiokafka.errors import GroupCoordinatorNotAvailableError

    from agents.batching import OffsetGuard

    app = GuardApp({})
    failures = {"left": 2}
    read = broker_committed({TP0: 40})

    async def flaky(tps: list[TP]) -> dict[TP, int | None]:
        if failures["left"]:
            failures["left"] -= 1
            raise GroupCoordinatorNotAvailableError()
        return await read(tps)

    guard = OffsetGuard(app, "test", read_committed=flaky)  # type: ignore[arg-type]
    started = time.monotonic()
    assert asyncio.run(guard.admit(guard_events(app, [45]))) == []
    assert app.consumer.seeks == [{TP0: 40}] and failures["left"] == 0
    assert time.monotonic() - started >= 1.5  # paused 0.5 s, then 1 s


def test_a_rebalance_starts_the_guard_afresh() -> None:
    from agents.batching import OffsetGuard

    app = GuardApp({TP0: 10})
    guard = OffsetGuard(app, "test")  # type: ignore[arg-type]
    asyncio.run(guard.admit(guard_events(app, [10, 11])))
    app.consumer._committed_offset[TP0] = 50  # another worker handled the partition meanwhile
    asyncio.run(app.on_partitions_assigned.receiver(set()))
    assert offsets_of(asyncio.run(guard.admit(guard_events(app, [50])))) == [50]
    assert app.consumer.seeks == []


def test_batches_are_joined_only_while_a_backlog_waits() -> None:
    from agents.batching import OffsetGuard, joined_batches

    app = GuardApp({TP0: 0})
    highwater = {"value": 1000}
    app.consumer.highwater = lambda tp: highwater["value"]
    guard = OffsetGuard(app, "test", read_committed=broker_committed({}))  # type: ignore[arg-type]
    consumer = FakeConsumer()
    app.consumer.ack = consumer.ack

    cities = {"n": 10}

    async def take_events() -> Any:
        for first in range(0, 1000, 100):  # like take_events: acknowledges a batch when asked for the next
            events = guard_events(app, list(range(first, first + 100)), cities["n"])
            yield events
            leave_batch(consumer, events)

    async def collect(join_below: int, max_events: int) -> list[list[int]]:
        sizes = []
        async for batch in joined_batches(app, take_events(), guard, join_below, max_events):  # type: ignore[arg-type]
            offsets = offsets_of(batch.events)
            assert not set(consumer.acked) & set(offsets), "events joined into a batch are held until it is handled"
            sizes.append(offsets)
            batch.release(app)  # type: ignore[arg-type]
        return sizes

    joined = asyncio.run(collect(join_below=100, max_events=450))
    assert [len(b) for b in joined] == [500, 500]  # 900 of 1000 waiting: batches joined, up to the limit
    assert [o for b in joined for o in b] == list(range(1000))
    assert sorted(consumer.acked) == list(range(1000)), "every event is acknowledged once handled"
    consumer.acked.clear()

    guard.expected.clear()
    app.consumer._committed_offset[TP0] = 0
    highwater["value"] = 0  # nothing known to wait (live traffic): batch by batch
    assert [len(b) for b in asyncio.run(collect(join_below=100, max_events=450))] == [100] * 10
    consumer.acked.clear()

    guard.expected.clear()
    highwater["value"] = 1000  # a backlog, but every event has the same key (one city): at most 250 per batch
    cities["n"] = 1
    joined = asyncio.run(collect(join_below=250, max_events=5000))
    assert [len(b) for b in joined] == [200, 200, 200, 200, 100, 100]  # the end: no backlog left to join
    assert sorted(consumer.acked) == list(range(1000))


def test_a_backlog_that_never_comes_does_not_hold_a_batch_back() -> None:
    """The high waters say messages wait, but the next batch is late: the held batch is handled after the join
    wait, and the late batch comes next, once (it was asked for once, and awaited again)."""
    from agents.batching import OffsetGuard, joined_batches

    app = GuardApp({TP0: 0})
    app.consumer.highwater = lambda tp: 1000  # a backlog, as far as the last fetch knew
    guard = OffsetGuard(app, "test", read_committed=broker_committed({}))  # type: ignore[arg-type]
    consumer = FakeConsumer()
    app.consumer.ack = consumer.ack
    late = asyncio.Event()
    asked = {"n": 0}

    async def take_events() -> Any:
        asked["n"] += 1
        first = guard_events(app, list(range(0, 10)), 10)
        yield first
        leave_batch(consumer, first)
        await late.wait()  # the consumer delivers nothing more for a while
        second = guard_events(app, list(range(10, 20)), 10)
        yield second
        leave_batch(consumer, second)

    async def collect() -> list[tuple[list[int], float]]:
        out = []
        started = time.monotonic()
        batches = joined_batches(app, take_events(), guard, 100, 5000, join_wait_s=0.2)  # type: ignore[arg-type]
        async for batch in batches:
            out.append((offsets_of(batch.events), time.monotonic() - started))
            assert not set(consumer.acked) & set(offsets_of(batch.events)), "a handled batch is held until released"
            batch.release(app)  # type: ignore[arg-type]
            if len(out) == 1:
                late.set()  # the second batch arrives while the first is handled
            if len(out) == 2:
                break
        await batches.aclose()
        return out

    got = asyncio.run(collect())
    assert [offsets for offsets, _ in got] == [list(range(10)), list(range(10, 20))]
    assert 0.2 <= got[0][1] < 2.0, "the held batch waited the join wait, and no longer"
    assert asked["n"] == 1
    assert sorted(consumer.acked) == list(range(20))


def test_a_seek_makes_faust_forget_its_progress_past_the_target() -> None:
    """Records fetched before a seek and drained after it make faust note the offsets between as gaps (no
    records there), and its commit would then run past events not handled yet."""
    from agents.batching import OffsetGuard

    app = GuardApp({TP0: 10})
    guard = OffsetGuard(app, "test")  # type: ignore[arg-type]
    consumer = app.consumer
    consumer._acked[TP0], consumer._acked_index[TP0] = [8, 9, 12], {8, 9, 12}
    assert asyncio.run(guard.admit(guard_events(app, [40]))) == []  # a jump: sought back to 10
    assert consumer._acked[TP0] == [8, 9] and consumer._acked_index[TP0] == {8, 9}
    consumer._gap[TP0].addi(11, 40)  # what faust's drain notes for a copy of 40 drained after the seek
    assert offsets_of(asyncio.run(guard.admit(guard_events(app, [10, 11])))) == [10, 11]
    assert not consumer._gap[TP0], "the false gap is gone once the target came"


def test_a_restart_rewind_whose_offset_no_longer_exists_goes_on_from_the_first_record() -> None:
    from agents.batching import CHECK_TARGET_AFTER_SEEKS, OffsetGuard

    app = GuardApp({TP0: 10})
    app.consumer.highwater = lambda tp: 50
    first: dict[str, int | None] = {"at": 25}

    async def first_record(tp: TP, start: int, end: int) -> int | None:
        return first["at"]

    guard = OffsetGuard(app, "test", first_record=first_record)  # type: ignore[arg-type]
    asyncio.run(guard.restart({"t.raw"}))  # sought back to 10, which retention has deleted meanwhile
    for _ in range(CHECK_TARGET_AFTER_SEEKS):
        guard.sought_at[TP0] = 0.0
        asyncio.run(guard._seek_again())
    assert app.consumer.seeks[-1] == {TP0: 25} and guard.rewinding[TP0][0] == 25
    assert offsets_of(asyncio.run(guard.admit(guard_events(app, [25, 26])))) == [25, 26]

    guard = OffsetGuard(app, "test", first_record=first_record)  # type: ignore[arg-type]
    first["at"] = None  # nothing left from the committed offset on
    asyncio.run(guard.restart({"t.raw"}))
    guard.seeks[TP0] = CHECK_TARGET_AFTER_SEEKS
    guard.sought_at[TP0] = 0.0
    asyncio.run(guard._seek_again())
    assert TP0 not in guard.rewinding
