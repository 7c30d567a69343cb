"""A robust, online baseline of one quantity per local hour of day.

Per hour bucket: a count, an exponentially weighted mean and an exponentially weighted mean absolute
deviation. Updates are clipped to ``mean ± clip * spread`` once warmed up, so an anomaly moves the
baseline only a little. Memory: the weight of a new sample is ``1 / min(n, memory)``, a plain average
at first and then an exponential one. The state is a list of ``[n, mean, mad]`` per hour, JSON-able.

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
from dataclasses import dataclass

# mean absolute deviation -> standard deviation, for normal data
MAD_TO_SIGMA = math.sqrt(math.pi / 2)


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
    def empty() -> list[list[float]]:
        return [[0, 0.0, 0.0] for _ in range(24)]

    def spread(self, bucket: list[float]) -> float:
        return max(bucket[2] * MAD_TO_SIGMA, self.min_spread)

    def update(self, state: list[list[float]], hour: int, x: float) -> list[list[float]]:
        n, mean, mad = state[hour]
        if n >= self.min_samples:
            limit = self.clip * self.spread(state[hour])
            x = min(max(x, mean - limit), mean + limit)
        n += 1
        weight = 1.0 / min(n, self.memory)
        deviation = abs(x - mean) if n > 1 else 0.0
        mean += weight * (x - mean)
        mad += weight * (deviation - mad) if n > 1 else 0.0
        out = list(state)
        out[hour] = [n, mean, mad]
        return out

    def warmed_up(self, state: list[list[float]], hour: int) -> bool:
        return state[hour][0] >= self.min_samples

    def score(self, state: list[list[float]], hour: int, x: float) -> float | None:
        """How many spreads ``x`` lies from the bucket's mean; None during the warm-up."""
        if not self.warmed_up(state, hour):
            return None
        return (x - state[hour][1]) / self.spread(state[hour])

    def mean(self, state: list[list[float]], hour: int) -> float:
        return float(state[hour][1])
