"""The sink's share of the partitions and its lag: what a rebalance listener tells the web view."""

from __future__ import annotations

from aiokafka import TopicPartition

from agents.sink import SharedPartitions, SinkProgress
from weatherstream import metrics

A, B = TopicPartition("ns.observations", 0), TopicPartition("ns.aggregates", 3)


class Reader:
    """What the sink's progress reads of its consumer: the assignment and each partition's end."""

    def __init__(self, ends: dict[TopicPartition, int]) -> None:
        self.ends = ends

    def assignment(self) -> set[TopicPartition]:
        return set(self.ends)

    def highwater(self, tp: TopicPartition) -> int:
        return self.ends[tp]


def test_lag_counts_from_this_workers_commits_and_forgets_partitions_it_gives_up() -> None:
    progress = SinkProgress()
    listener = SharedPartitions(progress)
    progress.consumer = Reader({A: 100, B: 40})  # type: ignore[assignment]
    listener.on_partitions_assigned({A, B})
    assert metrics.SINK_PARTITIONS._value.get() == 2
    assert progress.lag() == {}  # nothing committed here yet: unknown, not the whole partition
    progress.committed.update({A: 90, B: 40})
    assert progress.lag() == {A: 10, B: 0}

    # A rebalance: B goes to another worker, which writes it on to offset 400; later it comes back.
    listener.on_partitions_revoked({A, B})
    assert metrics.SINK_PARTITIONS._value.get() == 0
    progress.consumer = Reader({A: 100})  # type: ignore[assignment]
    listener.on_partitions_assigned({A})
    assert progress.lag() == {}
    progress.committed[A] = 100
    listener.on_partitions_revoked({A})
    progress.consumer = Reader({A: 100, B: 400})  # type: ignore[assignment]
    listener.on_partitions_assigned({A, B})
    # B's old offset (40) is forgotten: no lag of 360 for messages the other worker already wrote.
    assert progress.lag() == {}
    progress.committed.update({A: 100, B: 400})
    assert progress.lag() == {A: 0, B: 0}
