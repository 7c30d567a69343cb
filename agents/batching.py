"""Batches of events whose offsets are committed only if the whole batch was handled.

faust's ``stream.take_events`` acknowledges every event of a batch when the batch is left, also when
the agent is cancelled half way through it (a worker stopping, a rebalance). Those offsets would be
committed and the unhandled events never delivered again. :func:`held` takes an extra reference on each
event's message for the time the batch is handled and gives it back only when the handling finished, so
an interrupted batch stays unacknowledged and is delivered again (the agents recognise re-deliveries by
their offsets).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from faust.types import EventT


@contextlib.contextmanager
def held(events: Sequence[EventT]) -> Iterator[None]:
    """Inside, ``events`` cannot be acknowledged; leaving normally releases them (an exception does not)."""
    for event in events:
        event.message.incref()
    yield
    for event in events:
        event.message.decref()
