"""Send what a state's outbox holds, and tell which sends were confirmed by the broker.

Agents keep records they must emit in an outbox inside their changelogged state, write the state, then
send. A send confirmed delivered is dropped from the outbox at the city's next state write; after a
crash, everything still in the outbox is sent again (consumers recognise repeats by their ids).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from faust.types import TopicT

from models import city_key
from weatherstream import metrics
from weatherstream.outgoing import RecordBatches


class OutboxSender:
    """Tracks in-flight sends of one agent by outbox id.

    Args:
        topic: where the records go (key: the city id).
        make_record: builds the record from an outbox entry.
        entry_id: the id of an entry (unique per record and revision).
        label: topic suffix for the ``weatherstream_events_out_total`` metric.
    """

    def __init__(self, topic: TopicT, make_record: Callable[[dict[str, Any]], Any],
                 entry_id: Callable[[dict[str, Any]], str], label: str) -> None:  # fmt: skip
        self.topic = topic
        self.make_record = make_record
        self.entry_id = entry_id
        self.label = label
        self.inflight: dict[str, Any] = {}

    def delivered(self, entries: Iterable[dict[str, Any]]) -> set[str]:
        """Ids among ``entries`` whose send the broker confirmed (forgotten here once reported)."""
        done = set()
        for entry in entries:
            eid = self.entry_id(entry)
            fut = self.inflight.get(eid)
            if fut is not None and fut.done() and not fut.cancelled() and fut.exception() is None:
                done.add(eid)
        for eid in done:
            self.inflight.pop(eid, None)
        return done

    def unsent(self, entries: Iterable[dict[str, Any]]) -> bool:
        """Whether some entry is neither in flight nor confirmed (e.g. after a restart), or its send failed."""
        for entry in entries:
            fut = self.inflight.get(self.entry_id(entry))
            if fut is None or (fut.done() and (fut.cancelled() or fut.exception() is not None)):
                return True
        return False

    def send(self, city_id: int, entries: Iterable[dict[str, Any]], outgoing: RecordBatches) -> list[Any]:
        """Add every entry that is not in flight (or whose earlier send failed) to ``outgoing``; returns the new
        sends' futures (done once ``outgoing`` has sent them and the broker has them)."""
        futures = []
        for entry in entries:
            eid = self.entry_id(entry)
            fut = self.inflight.get(eid)
            if fut is not None and not (fut.done() and (fut.cancelled() or fut.exception() is not None)):
                continue
            self.inflight[eid] = outgoing.add(self.topic, city_key(city_id), self.make_record(entry), track=True)
            futures.append(self.inflight[eid])
            metrics.EVENTS_OUT.labels(self.label).inc()
        return futures
