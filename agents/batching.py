"""Batches of events whose offsets are committed only once the whole batch was handled and its output
delivered.

faust's ``stream.take_events`` acknowledges every event of a batch when the batch is left, also when
the agent is cancelled half way through it (a worker stopping, a rebalance). Those offsets would be
committed and the unhandled events never delivered again. :class:`HeldBatch` takes an extra reference
on each event's message, so take_events' own acknowledgement is not the last one. The batch's events
are acknowledged for real only by :meth:`HeldBatch.release` (handling finished) or
:meth:`HeldBatch.release_when_delivered` (and the broker confirmed the records it produced). An
interrupted batch, or one whose output could not be delivered, stays unacknowledged and is delivered
again after a restart or rebalance (the agents recognise re-deliveries by their offsets).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from faust.types import EventT, StreamT

logger = logging.getLogger(__name__)

_RELEASING: set[asyncio.Future[None]] = set()  # keeps the release tasks alive until they finish


class HeldBatch:
    """Hold ``events`` of ``stream`` unacknowledged until released."""

    def __init__(self, stream: StreamT, events: Sequence[EventT]) -> None:
        self.stream = stream
        self.events = list(events)
        for event in self.events:
            event.message.incref()

    def release(self) -> None:
        """The batch is handled: give back the extra references, so take_events' acknowledgement counts."""
        for event in self.events:
            event.message.decref()

    def release_when_delivered(self, sends: Sequence[Awaitable[Any]]) -> None:
        """Acknowledge the events once every one of ``sends`` is delivered; never if one fails."""
        task = asyncio.ensure_future(self._release(list(sends)))
        _RELEASING.add(task)
        task.add_done_callback(_RELEASING.discard)

    async def _release(self, sends: list[Awaitable[Any]]) -> None:
        if sends:
            try:
                await asyncio.gather(*sends)
            except Exception as exc:  # noqa: BLE001 - the batch stays unacknowledged: delivered again later
                first = self.events[0].message
                logger.error("%d records of a batch from %s[%d]@%d were not delivered (%s: %s); its %d events stay "
                             "unacknowledged and will be handled again after a restart or rebalance", len(sends),
                             first.topic, first.partition, first.offset, type(exc).__name__, exc,
                             len(self.events))  # fmt: skip
                return
        for event in self.events:
            await self.stream.ack(event)
