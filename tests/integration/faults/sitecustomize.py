"""Faults for the agent-crash test, loaded at start-up by the workers it starts (their PYTHONPATH has this folder).

With ``WEATHERSTREAM_TEST_CRASH_EVERY=N``, the pipeline agent's batches fail in pairs three batches apart, at
batches N and N + 3, 2N and 2N + 3, ..., ``WEATHERSTREAM_TEST_CRASHES`` times in all (default 4), alternately:
- before the batch is handled, with an error faust restarts the agent for (on the same stream);
- inside the batch's handling, once its state is written and its outputs sent, with the Kafka error of a
  changelog send that failed (as while a broker is lost), which the agent handles by starting again on its
  stream itself.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from aiokafka.errors import KafkaTimeoutError

EVERY = int(os.environ.get("WEATHERSTREAM_TEST_CRASH_EVERY", "0"))
CRASHES = int(os.environ.get("WEATHERSTREAM_TEST_CRASHES", "4"))


class InjectedCrash(RuntimeError):
    """Raised by the test's fault, never by weatherstream itself."""


class InjectedSendFailure(KafkaTimeoutError):
    """A send the brokers did not take, raised by the test's fault."""


def _install() -> None:
    from agents import pipeline

    handle_batch = pipeline.Pipeline.handle_batch
    delivered = pipeline.delivered
    count = {"batches": 0, "crashes": 0, "fail_delivery": 0}

    async def crashing(self: pipeline.Pipeline, events: Sequence[Any]) -> None:
        count["batches"] += 1
        due = count["batches"] % EVERY in (0, 3) and count["batches"] >= EVERY
        if due and count["crashes"] < CRASHES:
            count["crashes"] += 1
            what = f"injected crash {count['crashes']}/{CRASHES} at batch {count['batches']}"
            if count["crashes"] % 2:
                raise InjectedCrash(what)
            count["fail_delivery"] = 1
            pending[0] = what
        await handle_batch(self, events)

    pending = [""]

    async def failing_delivery(app: Any, sends: Any) -> None:
        await delivered(app, sends)
        if count["fail_delivery"]:
            count["fail_delivery"] = 0
            raise InjectedSendFailure(pending[0])

    pipeline.Pipeline.handle_batch = crashing  # type: ignore[method-assign]
    pipeline.delivered = failing_delivery


if EVERY > 0:
    _install()
