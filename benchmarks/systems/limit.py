"""The ceiling for any Python consumer here: a bare aiokafka consumer that only decodes each message.

    python -m benchmarks.systems.limit TOPIC GROUP EXPECTED

Stops after EXPECTED messages and prints one JSON line: events, seconds from the first message to the
last, CPU seconds and peak RSS over that span (it drains too fast for the committed-offset sampling the
other systems are measured by).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time

import orjson
from aiokafka import AIOKafkaConsumer

from weatherstream.settings import load_settings


async def main(topic: str, group: str, expected: int) -> None:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=load_settings().bootstrap_servers, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_partition_fetch_bytes=4 << 20)  # fmt: skip
    await consumer.start()
    print("consuming", flush=True)
    seen = 0
    first = first_cpu = 0.0
    try:
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            if batches and not seen:
                first, first_cpu = time.monotonic(), time.process_time()
            for records in batches.values():
                for record in records:
                    orjson.loads(record.value)
                seen += len(records)
        seconds, cpu = time.monotonic() - first, time.process_time() - first_cpu
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"events": seen, "seconds": seconds, "cpu_s": cpu, "peak_rss_mb": rss_mb}), flush=True)
    finally:
        await consumer.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
