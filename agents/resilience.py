"""Handle one event with retries, and never drop it silently.

A transient failure (metadata not yet known for a topic created a moment ago, a broker restart) is
retried with exponential backoff. The agents' state writes are idempotent (offsets are recorded with
the state), so running a handler again is safe. If every attempt fails, the input is dead-lettered
with reason ``internal_error`` (the original bytes are kept for a replay after the fix) and the agent
goes on with the next event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from faust.types import EventT, TopicT

from agents.deadletters import send_dead_letter
from models import Reason
from weatherstream import metrics

logger = logging.getLogger(__name__)

ATTEMPTS = 6
FIRST_DELAY_S = 0.1


async def handle_with_retries(
    agent: str, event: EventT, handle: Callable[[EventT], Awaitable[None]], deadletter: TopicT
) -> None:
    """Run ``handle(event)``; retry on failure; dead-letter the input when all attempts failed."""
    msg = event.message
    delay = FIRST_DELAY_S
    for attempt in range(1, ATTEMPTS + 1):
        try:
            await handle(event)
            return
        except Exception as exc:
            metrics.AGENT_ERRORS.labels(agent).inc()
            if attempt == ATTEMPTS:
                logger.exception("%s gave up on %s[%d]@%d after %d attempts", agent, msg.topic, msg.partition,
                                 msg.offset, attempt)  # fmt: skip
                await send_dead_letter(deadletter, event, Reason.INTERNAL_ERROR,
                                       f"{agent}: {type(exc).__name__}: {exc}")  # fmt: skip
                return
            logger.warning("%s failed on %s[%d]@%d (attempt %d of %d): %s; retrying in %.1f s", agent, msg.topic,
                           msg.partition, msg.offset, attempt, ATTEMPTS, exc, delay)  # fmt: skip
            await asyncio.sleep(delay)
            delay *= 2
