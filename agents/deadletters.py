"""Send one input to ``{ns}.deadletter``: its bytes and key unchanged, the reason and origin in headers."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import Any, Protocol

from faust.types import TopicT

from models import DeadLetter, Reason
from weatherstream import metrics

logger = logging.getLogger(__name__)


class Input(Protocol):
    """What a dead letter is made of: a faust event, or a record a plain consumer read (``agents.sink``)."""

    @property
    def value(self) -> Any: ...

    @property
    def message(self) -> Any: ...  # key, topic, partition and offset


async def send_dead_letter(
    topic: TopicT, event: Input, reason: Reason, message: str, source: str | None = None
) -> Awaitable[Any]:
    """Dead-letter the input ``event`` with ``reason`` and a one-line ``message``; returns the send's future."""
    msg = event.message
    letter = DeadLetter(
        payload=bytes(event.value) if isinstance(event.value, (bytes, bytearray)) else b"",
        key=msg.key if isinstance(msg.key, bytes) else None,
        reason=reason,
        message=message[:500],
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        detected_at=time.time(),
        source=source,
    )
    sent = await topic.send(key=letter.key, value=letter.payload, headers=letter.headers())
    metrics.DEAD_LETTERS.labels(reason.value).inc()
    metrics.EVENTS_OUT.labels("deadletter").inc()
    logger.info("dead letter %s from %s[%d]@%d: %s", reason.value, msg.topic, msg.partition, msg.offset, message)
    return sent
