"""The floor of any faust-streaming pipeline here: one agent that only decodes each message.

    python -m benchmarks.systems.faust_floor TOPIC GROUP

A faust worker (the group is its app id) with one agent over TOPIC that takes the stream in batches as the
pipeline does (``take_events``, up to 5,000 events or 100 ms) and decodes each message, nothing else: no
tables, no output, no sink. faust acknowledges and commits the offsets as for any agent, so the drain
measures it like weatherstream (committed offsets, CPU from the first commit). What it costs per event is
the least a faust agent pays before any of the pipeline's own work; against ``limit`` (a bare aiokafka
consumer) it is the price of faust's per-message path (conductor, stream, acknowledgement, commit).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile

import faust
import orjson
from faust.types import StreamT

from weatherstream.app import Worker
from weatherstream.settings import load_settings

#: faust commits every 2.8 s by default; the whole drain takes a few seconds here, so the committed offsets
#: the drain samples would say more about that interval than about the rate (a few commits more per second
#: cost next to nothing)
COMMIT_INTERVAL_S = 0.2


def build(topic: str, group: str, datadir: str) -> faust.App:
    settings = load_settings()
    app = faust.App(group, broker=settings.broker, store="memory://", datadir=datadir, web_enabled=False,
                    topic_allow_declare=False, autodiscover=False,
                    broker_commit_interval=COMMIT_INTERVAL_S)  # fmt: skip
    source = app.topic(topic, key_serializer="raw", value_serializer="raw")

    @app.agent(source, name="floor")
    async def floor(stream: StreamT) -> None:
        async for batch in stream.take_events(5000, within=0.1):  # type: ignore[attr-defined]  # not in StreamT
            for event in batch:
                orjson.loads(event.value)

    return app


def main(topic: str, group: str) -> None:
    with tempfile.TemporaryDirectory(prefix="faust-floor-") as datadir:
        app = build(topic, group, datadir)
        asyncio.set_event_loop(asyncio.new_event_loop())
        Worker(app, loglevel="warning").execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
