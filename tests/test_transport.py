"""The consumer does not commit messages faust's stream skipped during a rebalance."""

from __future__ import annotations

from types import SimpleNamespace

from faust.types import TP
from faust.types.tuples import ConsumerMessage

from weatherstream.transport import is_skipped_by_rebalance


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
