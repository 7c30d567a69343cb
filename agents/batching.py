"""Batches of events whose offsets are committed only once the whole batch was handled.

faust's ``stream.take_events`` acknowledges every event of a batch when the batch is left, also when
the agent is cancelled half way through it (a worker stopping, a rebalance). Those offsets would be
committed and the unhandled events never delivered again. :class:`HeldBatch` takes an extra reference
on each event's message, so take_events' own acknowledgement is not the last one. The batch's events
count only after :meth:`HeldBatch.release` (handling finished). An interrupted batch stays
unacknowledged and is delivered again after a restart or rebalance (the agents recognise re-deliveries
by their offsets).
"""

from __future__ import annotations

from collections.abc import Sequence

from faust.types import EventT


class HeldBatch:
    """Hold ``events`` unacknowledged until released."""

    def __init__(self, events: Sequence[EventT]) -> None:
        self.events = list(events)
        for event in self.events:
            event.message.incref()

    def release(self) -> None:
        """The batch is handled: give back the extra references, so take_events' acknowledgement counts."""
        for event in self.events:
            event.message.decref()
