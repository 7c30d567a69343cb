"""A robust, online baseline of one quantity per local hour of day.

Per hour bucket: a count, an exponentially weighted mean and an exponentially weighted mean absolute
deviation. Updates are clipped to ``mean ± clip * spread`` once warmed up, so an anomaly moves the
baseline only a little. Memory: the weight of a new sample is ``1 / min(n, memory)``, a plain average
at first and then an exponential one.

The state is one immutable ``bytes`` value: 24 buckets of ``(n, mean, mad)`` as a little-endian 64-bit integer
and two doubles (576 bytes). A city's record holds it as it is, so reading and writing a record makes one object
for the baseline instead of a hundred, and an update replaces only the bytes of its bucket. :func:`from_lists`
turns the older ``[[n, mean, mad], ...]`` lists into it.

Example:
    >>> b = HourlyBaseline(min_samples=3)
    >>> state = b.empty()
    >>> for x in (10.0, 11.0, 9.0, 10.0):
    ...     state = b.update(state, hour=14, x=x)
    >>> round(b.score(state, 14, 16.0), 1)
    4.0
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

# mean absolute deviation -> standard deviation, for normal data
MAD_TO_SIGMA = math.sqrt(math.pi / 2)
HOURS = 24
_BUCKET = struct.Struct("<qdd")  # n, mean, mad
#: the state of a baseline that has seen nothing (every bucket n = 0, mean = mad = 0.0)
EMPTY = bytes(HOURS * _BUCKET.size)


def from_lists(buckets: Sequence[Sequence[float]]) -> bytes:
    """The state of 24 ``[n, mean, mad]`` lists (the layout of state format 2)."""
    if len(buckets) != HOURS:
        raise ValueError(f"a baseline has {HOURS} hourly buckets, not {len(buckets)}")
    return b"".join(_BUCKET.pack(int(n), mean, mad) for n, mean, mad in buckets)


def buckets(state: bytes) -> list[tuple[int, float, float]]:
    """The ``(n, mean, mad)`` of every hour, 0 to 23 (for reading a state; the baseline itself reads one)."""
    return list(_BUCKET.iter_unpack(state))


@dataclass(frozen=True)
class HourlyBaseline:
    """Rules of the baseline.

    Attributes:
        min_samples: samples a bucket needs before it scores anything (the warm-up).
        memory: how many recent samples dominate the estimate.
        clip: updates are clipped to this many spreads around the mean.
        min_spread: floor of the spread, in the quantity's unit: day-to-day variation of air temperature at a
            given hour is rarely under 1.5 °C, and samples of one day in one bucket understate it.
    """

    min_samples: int = 10
    memory: int = 30
    clip: float = 3.0
    min_spread: float = 1.5

    @staticmethod
    def empty() -> bytes:
        return EMPTY

    def spread(self, mad: float) -> float:
        return max(mad * MAD_TO_SIGMA, self.min_spread)

    def update(self, state: bytes, hour: int, x: float) -> bytes:
        """A new state with ``x`` learned in ``hour``'s bucket (``state`` is unchanged)."""
        at = hour * _BUCKET.size
        n, mean, mad = _BUCKET.unpack_from(state, at)
        if n >= self.min_samples:
            limit = self.clip * self.spread(mad)
            x = min(max(x, mean - limit), mean + limit)
        n += 1
        weight = 1.0 / min(n, self.memory)
        deviation = abs(x - mean) if n > 1 else 0.0
        mean += weight * (x - mean)
        mad += weight * (deviation - mad) if n > 1 else 0.0
        return state[:at] + _BUCKET.pack(n, mean, mad) + state[at + _BUCKET.size :]

    def score(self, state: bytes, hour: int, x: float) -> float | None:
        """How many spreads ``x`` lies from the bucket's mean; None during the warm-up."""
        n, mean, mad = _BUCKET.unpack_from(state, hour * _BUCKET.size)
        if n < self.min_samples:
            return None
        return (x - mean) / self.spread(mad)

    def mean(self, state: bytes, hour: int) -> float:
        return float(_BUCKET.unpack_from(state, hour * _BUCKET.size)[1])
