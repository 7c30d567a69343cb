"""What a worker that seems stuck is doing: written to its log on ``kill -USR1 <pid>``; and how long its event
loop is held by other work (:func:`watch_loop_delay`).

mode (under faust) writes every thread's and asyncio task's stack; its task stacks stop at the first
async generator, and faust's streams are made of them. :func:`waiting_points` goes inside them for the
project's own code, and :func:`consumer_state` says whether the consumer hands out messages at all.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faust.types import AppT

PROJECT_ROOT = Path(__file__).resolve().parent.parent


LOOP_DELAY_EVERY_S = 0.25  # 4 wake-ups a second: about 0.06 % of a core


async def watch_loop_delay(observe: Callable[[float], None], every_s: float = LOOP_DELAY_EVERY_S) -> None:
    """Sleep ``every_s`` again and again and ``observe`` how many seconds later than due each wake-up came.

    A late wake-up means callbacks ran (or something blocked) for that long in one go: what an alert or a web
    request may wait on top of its own work. Runs until cancelled.
    """
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + every_s
        await asyncio.sleep(every_s)
        observe(max(0.0, loop.time() - due))


def waiting_points() -> list[str]:
    """Where each suspended coroutine and async generator of the project waits: ``path:line in function``."""
    points = []
    for obj in gc.get_objects():
        if inspect.iscoroutine(obj):
            frame = obj.cr_frame
        elif inspect.isasyncgen(obj):
            frame = obj.ag_frame
        else:
            continue
        if frame is None:
            continue
        path = Path(frame.f_code.co_filename)
        if path.is_relative_to(PROJECT_ROOT) and ".venv" not in path.parts and "site-packages" not in path.parts:
            name = getattr(frame.f_code, "co_qualname", frame.f_code.co_name)  # co_qualname: Python 3.11+
            points.append(f"{path.relative_to(PROJECT_ROOT)}:{frame.f_lineno} in {name}")
    return sorted(points)


def consumer_state(app: AppT) -> list[str]:
    """What decides whether the worker's consumer hands out messages: flow control, paused and buffered
    partitions (faust stops fetching a partition whose stream buffer is full), read offsets, high waters,
    queue and producer buffer sizes. Read from faust's internals, so each part is reported as found."""
    lines: list[str] = []

    def add(name: str, read: Any) -> None:
        try:
            lines.append(f"{name}: {read()}")
        except Exception as exc:  # noqa: BLE001 - a diagnostic: report what could not be read
            lines.append(f"{name}: unreadable ({exc!r})")

    consumer: Any = app.consumer
    add("flow control active", app.flow_control.is_active)
    add("consumer flow active", lambda: consumer.flow_active)
    add("producer buffer size", lambda: app.producer.buffer.size)
    add("paused partitions", lambda: sorted(map(str, consumer._paused_partitions)))
    add("buffered partitions (stream buffer full)", lambda: sorted(map(str, consumer._buffered_partitions)))
    add("active partitions", lambda: len(consumer._active_partitions or ()))
    try:
        assigned = sorted(consumer.assignment())
    except Exception as exc:  # noqa: BLE001 - e.g. the consumer has not started
        assigned = []
        lines.append(f"assignment: unreadable ({exc!r})")
    add("flow can resume", lambda: consumer.can_resume_flow.is_set())
    add("fetcher service", lambda: (app._fetcher.state, app._fetcher.should_stop))  # type: ignore[attr-defined]
    client: Any = None
    try:
        client = consumer._thread._ensure_consumer()
    except Exception as exc:  # noqa: BLE001 - e.g. the consumer has not started
        lines.append(f"aiokafka consumer: unreadable ({exc!r})")
    if client is not None:
        add("aiokafka fetch task done", lambda: client._fetcher._fetch_task.done())
    for tp in assigned:
        if tp.topic not in app.tables.changelog_topics:
            add(f"{tp.topic}[{tp.partition}] read offset / high water",
                lambda tp=tp: (consumer._read_offset.get(tp), consumer.highwater(tp)))  # fmt: skip
            if client is not None:
                add(f"{tp.topic}[{tp.partition}] aiokafka position / paused / awaiting reset",
                    lambda tp=tp: _aiokafka_partition(client, tp))  # fmt: skip
    for agent in app.agents.values():
        add(f"agent {agent.name} channel queue", lambda agent=agent: agent.channel.queue.qsize())
    return lines


def _aiokafka_partition(client: Any, tp: Any) -> tuple[Any, bool, bool]:
    state = client._subscription.subscription.assignment.state_value(tp)
    position = state.position if state.has_valid_position else None
    return position, state.paused, state.awaiting_reset
