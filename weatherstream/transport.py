"""faust's Kafka transport with a configurable consumer fetch wait.

faust 0.15 creates its aiokafka consumer with ``fetch_max_wait_ms=1500``. aiokafka does not fetch again
for a partition while a long poll for other partitions of the same broker is outstanding, so a new
message can sit up to that long before the agent sees it, once per hop. The project's pipeline has
two hops (raw -> observations -> aggregates/alerts), so the wait is a setting
(``WEATHERSTREAM_CONSUMER_FETCH_MAX_WAIT_MS``, default 20 ms) applied through this transport.
"""

from __future__ import annotations

from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        settings = getattr(self.app, "ws_settings", None)
        if settings is not None:
            # Read by AIOKafkaConsumer.start() when it builds its fetcher.
            consumer._fetch_max_wait_ms = int(settings.consumer_fetch_max_wait_ms)
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """The aiokafka transport with :class:`Consumer`."""

    Consumer = Consumer
