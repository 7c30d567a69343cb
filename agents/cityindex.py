"""What a worker keeps in memory about every city it owns, so timers and metrics never walk the table.

Per city of the worker's active partitions: when it is next *due* (an idle tick would close a window, its
silence would become an alert, or its outbox waits for a retry) and the time of its newest observation.
Due times sit in a heap, so a timer run costs O(cities due), not O(cities); newest observation times sit
in a sorted list, so the freshness metrics cost O(log cities) per scrape. About 300 bytes per city.

The index is rebuilt from the table's records (their ``due`` and ``newest`` fields, read without decoding
the rest) for the partitions a worker gains once their recovery is complete, and forgets the partitions it
loses; the pipeline updates it as it writes records.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Iterable, Sequence

from sortedcontainers import SortedList


class CityIndex:
    """Due times and newest observation times of the cities of some partitions."""

    def __init__(self) -> None:
        self.partitions: dict[int, set[int]] = {}  # partition -> its cities
        self.due: dict[int, float] = {}
        self.heap: list[tuple[float, int]] = []  # (due, city); an entry that no longer matches ``due`` is stale
        self.newest: dict[int, float] = {}
        self.newest_sorted: SortedList = SortedList()

    def __len__(self) -> int:
        return sum(len(cities) for cities in self.partitions.values())

    def update(self, city_id: int, partition: int, due: float | None, newest: float | None) -> None:
        """Record ``city_id``'s next due time and newest observation time (None: not due / none)."""
        self.partitions.setdefault(partition, set()).add(city_id)
        if due is None:
            self.due.pop(city_id, None)
        elif self.due.get(city_id) != due:
            self.due[city_id] = due
            heapq.heappush(self.heap, (due, city_id))
        old = self.newest.get(city_id)
        if newest != old:
            if old is not None:
                self.newest_sorted.remove(old)
            if newest is None:
                del self.newest[city_id]
            else:
                self.newest[city_id] = newest
                self.newest_sorted.add(newest)

    def due_again(self, city_id: int, at: float) -> None:
        """Make a city this worker owns due at ``at`` at the latest (a send for it failed)."""
        if city_id in self.newest or city_id in self.due:
            if at < self.due.get(city_id, float("inf")):
                self.due[city_id] = at
                heapq.heappush(self.heap, (at, city_id))

    def pop_due(self, now: float, retry_after_s: float) -> list[int]:
        """The cities due at ``now``; each is due again ``retry_after_s`` later unless an update says otherwise
        (a tick that is lost or changes nothing must not leave the city without one for ever)."""
        out: list[int] = []
        heap, due = self.heap, self.due
        while heap and heap[0][0] <= now:
            at, city_id = heapq.heappop(heap)
            if due.get(city_id) != at:
                continue  # stale: the city got a later due time (or none) since
            out.append(city_id)
        for city_id in out:
            due[city_id] = now + retry_after_s
            heapq.heappush(heap, (now + retry_after_s, city_id))
        if len(heap) > 2 * len(due) + 1000:  # many stale entries: rebuild
            self.heap = [(at, city_id) for city_id, at in due.items()]
            heapq.heapify(self.heap)
        return out

    def keep(self, partitions: Iterable[int]) -> list[int]:
        """Forget the cities of every partition not in ``partitions``; returns the partitions not known yet."""
        wanted = set(partitions)
        for partition in [p for p in self.partitions if p not in wanted]:
            for city_id in self.partitions.pop(partition):
                self.due.pop(city_id, None)
                old = self.newest.pop(city_id, None)
                if old is not None:
                    self.newest_sorted.remove(old)
        return sorted(wanted - set(self.partitions))

    def known(self, partition: int) -> None:
        """Mark ``partition`` as indexed (even if it holds no city)."""
        self.partitions.setdefault(partition, set())

    def ages(self, now: float, edges_s: Sequence[float]) -> list[int]:
        """How many cities' newest observation is younger than each of ``edges_s`` (ascending), and older than
        the last: ``len(edges_s) + 1`` counts."""
        times = self.newest_sorted
        counts, below = [], len(times)
        for edge in edges_s:
            older = bisect_left(times, now - edge)  # newest observation before now - edge
            counts.append(below - older)
            below = older
        counts.append(below)
        return counts

    def oldest_newest(self) -> float | None:
        """The earliest among the cities' newest observation times (None: no city)."""
        return self.newest_sorted[0] if self.newest_sorted else None
