"""Run a piece of agent work with retries, and never drop its input silently.

A transient failure (metadata not yet known for a topic created a moment ago, a broker restart) is
retried with exponential backoff. The agents' state writes are idempotent (offsets are recorded with
the state), so running the work again is safe. If every attempt fails, the inputs are dead-lettered
with reason ``internal_error`` (the original bytes are kept for a replay after the fix) and the agent
goes on with the next ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from faust.types import EventT, TopicT

from agents.deadletters import send_dead_letter
from models import Reason
from weatherstream import metrics

logger = logging.getLogger(__name__)

ATTEMPTS = 6
FIRST_DELAY_S = 0.1
MAX_DELAY_S = 30.0

T = TypeVar("T")


class WorkerStopping(Exception):
    """The worker is stopping and this batch cannot be finished: leave it for the next owner."""


class Backoff:
    """Doubling waits between tries: :meth:`wait` sleeps ``delay`` seconds, then doubles it (at most ``most_s``)."""

    def __init__(self, first_s: float, most_s: float) -> None:
        self.delay = first_s
        self.most_s = most_s

    async def wait(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.most_s)


def _where(events: Sequence[EventT]) -> str:
    first, last = events[0].message, events[-1].message
    if len(events) == 1:
        return f"{first.topic}[{first.partition}]@{first.offset}"
    return f"{len(events)} events from {first.topic}[{first.partition}]@{first.offset} to {last.topic}@{last.offset}"


async def with_retries(
    agent: str,
    events: Sequence[EventT],
    work: Callable[[], Awaitable[T]],
    deadletter: TopicT,
    *,
    forever: bool = False,
    stopping: Callable[[], bool] = lambda: False,
) -> T | None:
    """Run ``work()`` for ``events``; retry on failure; dead-letter the events when all attempts failed.

    With ``forever``, never give up (the delay stops growing at 30 s): for work that must happen; only when
    ``stopping()`` says the worker is stopping, raise :class:`WorkerStopping` (the batch is done again by
    the next owner of its partitions). :class:`WorkerStopping` raised by ``work`` is never retried.
    Returns what ``work`` returned, or ``None`` after giving up.
    """
    backoff = Backoff(FIRST_DELAY_S, MAX_DELAY_S)
    attempt = 0
    while True:
        attempt += 1
        try:
            return await work()
        except WorkerStopping:
            raise
        except Exception as exc:
            metrics.AGENT_ERRORS.labels(agent).inc()
            if attempt >= ATTEMPTS and not forever:
                logger.exception("%s gave up on %s after %d attempts", agent, _where(events), attempt)
                for event in events:
                    await send_dead_letter(deadletter, event, Reason.INTERNAL_ERROR,
                                           f"{agent}: {type(exc).__name__}: {exc}")  # fmt: skip
                return None
            if forever and stopping():
                raise WorkerStopping(f"{agent} could not finish {_where(events)}: {type(exc).__name__}: {exc}") from exc
            logger.warning("%s failed on %s (attempt %d of %s): %s; retrying in %.1f s", agent, _where(events),
                           attempt, "unlimited" if forever else ATTEMPTS, exc, backoff.delay)  # fmt: skip
            await backoff.wait()
