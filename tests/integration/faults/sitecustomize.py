"""Faults for the agent-crash test, loaded at start-up by the workers it starts (their PYTHONPATH has this folder).

With ``WEATHERSTREAM_TEST_CRASH_EVERY=N``, the pipeline agent's batch handling raises :class:`InjectedCrash` on
every Nth batch, ``WEATHERSTREAM_TEST_CRASHES`` times in all (default 4), alternately: before the batch is
handled, with an error faust restarts the agent for (on the same stream), and after it was handled (its state
written and its outputs sent, its offsets not yet acknowledged) with a Kafka error, as from a changelog send
that failed, which the agent handles by starting again on its stream itself.
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
    from agents.pipeline import Pipeline

    handle_batch = Pipeline.handle_batch
    count = {"batches": 0, "crashes": 0}

    async def crashing(self: Pipeline, events: Sequence[Any]) -> None:
        count["batches"] += 1
        crash = count["batches"] % EVERY == 0 and count["crashes"] < CRASHES
        if crash:
            count["crashes"] += 1
            if count["crashes"] % 2:
                raise InjectedCrash(f"injected crash {count['crashes']}/{CRASHES} before batch {count['batches']}")
        await handle_batch(self, events)
        if crash:
            raise InjectedSendFailure(f"injected crash {count['crashes']}/{CRASHES} after batch {count['batches']}")

    Pipeline.handle_batch = crashing  # type: ignore[method-assign]


if EVERY > 0:
    _install()
