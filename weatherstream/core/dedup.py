"""Recognise repeated (city id, observation time) pairs within a bounded horizon.

Polling faster than the API updates, producer retries and replays all repeat observations. Per city
the memory keeps the newest observation time and every observation time within ``horizon_s`` of it
(at most ``max_entries``). An observation older than what the memory still covers cannot be checked
and is reported as too late rather than risk counting it twice.

Each remembered time keeps the input offset that was accepted for it: after a crash the same message is
delivered again, and it must be accepted again (its output may never have left the producer), while a
*different* message with the same city and time is a duplicate.

The state is a plain dict so that it can live in a changelogged faust table and survive restarts.

Example:
    >>> memory = DedupMemory(horizon_s=3600)
    >>> state = None
    >>> verdict, state = memory.check(state, 1000.0)
    >>> verdict.name, memory.check(state, 1000.0)[0].name
    ('NEW', 'DUPLICATE')
"""

from __future__ import annotations

import bisect
import enum
from dataclasses import dataclass
from typing import Any

DedupState = dict[str, Any]


class Verdict(enum.Enum):
    NEW = "new"
    REDELIVERED = "redelivered"  # the very message accepted before (same offset): accept it again
    DUPLICATE = "duplicate"
    TOO_LATE = "too_late"


@dataclass(frozen=True)
class DedupMemory:
    """Rules of the memory.

    Attributes:
        horizon_s: how far behind a city's newest observation a repeat is still recognised.
        max_entries: the most observation times kept per city; past it the oldest are forgotten and
            anything at or before them becomes too late.
    """

    horizon_s: float = 48 * 3600
    max_entries: int = 5000

    def floor(self, state: DedupState | None) -> float:
        """The oldest observation time this state can still judge."""
        if not state:
            return float("-inf")
        return max(state["newest"] - self.horizon_s, state.get("floor", float("-inf")))

    def check(
        self, state: DedupState | None, observed_at: float, offset: int = -1
    ) -> tuple[Verdict, DedupState | None]:
        """Judge ``observed_at`` (read at input ``offset``); returns the verdict and the state (changed only if NEW)."""
        if not state:
            return Verdict.NEW, {"newest": observed_at, "seen": [observed_at], "offsets": [offset]}
        if observed_at < self.floor(state):
            return Verdict.TOO_LATE, state
        seen: list[float] = state["seen"]
        offsets: list[int] = state.get("offsets") or [-1] * len(seen)
        i = bisect.bisect_left(seen, observed_at)
        if i < len(seen) and seen[i] == observed_at:
            if offset >= 0 and offsets[i] == offset:
                return Verdict.REDELIVERED, state
            return Verdict.DUPLICATE, state
        seen = [*seen[:i], observed_at, *seen[i:]]
        offsets = [*offsets[:i], offset, *offsets[i:]]
        newest = max(state["newest"], observed_at)
        floor = state.get("floor", float("-inf"))
        cut = bisect.bisect_left(seen, newest - self.horizon_s)
        seen, offsets = seen[cut:], offsets[cut:]
        if len(seen) > self.max_entries:
            dropped = seen[: len(seen) - self.max_entries]
            seen, offsets = seen[len(dropped) :], offsets[len(dropped) :]
            floor = max(floor, dropped[-1] + 1e-6)
        new_state: DedupState = {"newest": newest, "seen": seen, "offsets": offsets}
        if floor != float("-inf"):
            new_state["floor"] = floor
        return Verdict.NEW, new_state
