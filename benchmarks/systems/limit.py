"""The ceiling for any Python consumer here: a bare aiokafka consumer that only decodes each message.

    python -m benchmarks.systems.limit TOPIC GROUP EXPECTED

Commits as it goes (every second), so the benchmark measures it like the others, and stops after
EXPECTED messages.
"""

from __future__ import annotations

import asyncio
import sys

import orjson
from aiokafka import AIOKafkaConsumer

from weatherstream.settings import load_settings


async def main(topic: str, group: str, expected: int) -> None:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=load_settings().bootstrap_servers, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=True, auto_commit_interval_ms=1000,
                                max_partition_fetch_bytes=4 << 20)  # fmt: skip
    await consumer.start()
    print("consuming", flush=True)
    seen = 0
    try:
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                for record in records:
                    orjson.loads(record.value)
                seen += len(records)
        await consumer.commit()
        await asyncio.sleep(1.5)  # one more auto-commit round, then leave
    finally:
        await consumer.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
