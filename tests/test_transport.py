"""The consumer does not commit messages faust's stream skipped during a rebalance, and fetches them again."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from faust.types import TP
from faust.types.tuples import ConsumerMessage

from weatherstream.transport import is_skipped_by_rebalance, seek_uncommitted_to_start


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
