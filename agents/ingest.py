"""Ingest agent.

Consumes: ``{ns}.raw`` (payload bytes exactly as received; key = city id; headers ``source``, ``units``).
Emits: ``{ns}.observations`` (:class:`models.Observation`, key = city id) and ``{ns}.deadletter``
(the original bytes with the reason in headers), exactly one of the two per input.
Table: ``dedup`` (city id -> recent observation times), changelogged, so repeats are recognised
across restarts.

A raw message whose key is not its payload's city id is re-sent to ``{ns}.raw`` with the right key, so
every city's state lives in one partition whatever the foreign producer did.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from faust.types import EventT, StreamT

from agents.deadletters import send_dead_letter
from agents.resilience import handle_with_retries
from models import Reason, city_key
from weatherstream import metrics
from weatherstream.app import WeatherStreamApp
from weatherstream.core.dedup import DedupMemory, Verdict
from weatherstream.core.normalize import InvalidPayload, normalize

logger = logging.getLogger(__name__)

REKEY_HEADER = "ws-rekeyed-from"


def _headers(event: EventT) -> dict[str, bytes]:
    raw: Any = event.headers or event.message.headers or {}
    items = raw.items() if isinstance(raw, Mapping) else raw
    return {str(k): bytes(v) if v is not None else b"" for k, v in items}


def register(app: WeatherStreamApp) -> None:
    """Declare the dedup table and the ingest agent on ``app``."""
    settings = app.ws_settings
    topics = app.ws_topics
    memory = DedupMemory(horizon_s=settings.dedup_horizon_s)
    dedup = app.Table(
        "dedup",
        default=None,
        key_type=int,
        partitions=settings.partitions,
        help="Per city: the newest observation time and the recent ones, to drop repeats.",
        options=app.table_options(),
    )

    async def dead_letter(event: EventT, reason: Reason, message: str, source: str | None) -> None:
        await send_dead_letter(topics.deadletter, event, reason, message, source)

    async def handle(event: EventT) -> None:
        metrics.EVENTS_IN.labels("raw").inc()
        headers = _headers(event)
        source = headers.get("source", b"").decode("utf-8", "replace") or None
        units = headers.get("units", b"metric").decode("utf-8", "replace") or "metric"
        payload = event.value if isinstance(event.value, bytes) else b""
        try:
            obs = normalize(
                payload, now=time.time(), units=units, source=source or "unknown", max_bytes=settings.max_payload_bytes
            )
        except InvalidPayload as exc:
            await dead_letter(event, exc.reason, exc.message, source)
            return
        key = city_key(obs.city_id)
        if event.message.key != key:
            # Re-key through the same topic: the city's dedup state must sit in the city's partition.
            rekey_headers = [(k, v) for k, v in headers.items() if k != REKEY_HEADER]
            rekey_headers.append((REKEY_HEADER, repr(event.message.key).encode()[:200]))
            await topics.raw.send(key=key, value=payload, headers=rekey_headers)
            metrics.REKEYED.inc()
            return
        verdict, state = memory.check(dedup.get(obs.city_id), obs.observed_at, event.message.offset)
        if verdict is Verdict.DUPLICATE:
            await dead_letter(
                event, Reason.DUPLICATE, f"city {obs.city_id} dt {obs.observed_at:.0f} was already accepted", source
            )
            return
        if verdict is Verdict.TOO_LATE:
            await dead_letter(
                event,
                Reason.TOO_LATE,
                f"city {obs.city_id} dt {obs.observed_at:.0f} is older than the "
                f"{settings.dedup_horizon_s:.0f} s horizon behind its newest observation",
                source,
            )
            return
        if verdict is Verdict.NEW:
            dedup[obs.city_id] = state
        # NEW, or REDELIVERED after a crash: the first send may never have left the producer. A second copy
        # is harmless: the aggregator recognises it by city, time and offset.
        await topics.observations.send(key=obs.city_id, value=obs)
        metrics.EVENTS_OUT.labels("observations").inc()

    @app.agent(topics.raw, name="ingest")
    async def ingest(stream: StreamT) -> None:
        """Validate, normalize and deduplicate raw payloads; never stops on bad input."""
        async for event in stream.events():
            await handle_with_retries("ingest", event, handle, topics.deadletter)

    app.ws_ingest = ingest  # type: ignore[attr-defined]
