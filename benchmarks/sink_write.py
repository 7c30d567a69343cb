"""Sustained write rate of the Cassandra sink to the local node, and its request latency.

Writes synthetic observations (normalized exactly as the pipeline does) through the sink's own
CassandraWriter into a scratch keyspace, the way the sink agent does: batches of records, rows of one
partition grouped into unlogged batches, at most WEATHERSTREAM_SINK_MAX_IN_FLIGHT requests at once.
Two shapes: a backlog (many rows per city and day per batch) and a live trickle (one row per request).

    .venv/bin/python benchmarks/sink_write.py [--rows 100000] [--keyspace bench_sink]

Needs the local stack (`weatherstream stack up`). Drops its keyspace at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from weatherstream.core.normalize import normalize
from weatherstream.db import connect_settings
from weatherstream.settings import load_settings
from weatherstream.sinks import rows
from weatherstream.sinks.writer import CassandraWriter, RowWrite
from weatherstream.sources.synthetic import SyntheticConfig, generate


def observations(count: int, cities: int) -> list[dict]:  # type: ignore[type-arg]
    now = time.time()
    cfg = SyntheticConfig(cities=cities, count=count, seed=1, start=float(int(now) - (count // cities) * 600 - 600))
    return [normalize(r.payload, now=now, source="synthetic").asdict() for r in generate(cfg)]


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(writer: CassandraWriter, records: list[dict], batch: int, by_partition: bool) -> dict:  # type: ignore[type-arg]
    writes = [RowWrite(rows.OBSERVATIONS, rows.row(rows.OBSERVATIONS, r)) for r in records]
    writer.latencies_s = []
    started = time.perf_counter()
    for i in range(0, len(writes), batch):
        chunk = writes[i : i + batch]
        if by_partition:
            await writer.write(chunk)
        else:  # one request per row: what a live trickle of single observations looks like
            await asyncio.gather(*(writer.write([w]) for w in chunk))
    elapsed = time.perf_counter() - started
    lat = writer.latencies_s
    return {
        "rows": len(writes), "seconds": round(elapsed, 2), "rows_per_s": round(len(writes) / elapsed),
        "requests": len(lat), "request_p50_ms": round(quantile(lat, 0.5) * 1000, 2),
        "request_p99_ms": round(quantile(lat, 0.99) * 1000, 2),
        "request_mean_ms": round(statistics.mean(lat) * 1000, 2),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--cities", type=int, default=50)
    parser.add_argument("--keyspace", default="bench_sink")
    args = parser.parse_args()
    settings = load_settings(keyspace=args.keyspace)
    records = observations(args.rows, args.cities)
    writer = CassandraWriter(settings)
    writer.open()
    try:
        results = {
            "backlog (1,000 records per batch, one-partition unlogged batches)": asyncio.run(
                run(writer, records, 1000, by_partition=True)
            ),
            "live (one row per request, 64 in flight)": asyncio.run(
                run(writer, records[: args.rows // 4], settings.sink_max_in_flight, by_partition=False)
            ),
        }
    finally:
        writer.close()
        cluster, session = connect_settings(settings)
        session.execute(f"DROP KEYSPACE IF EXISTS {args.keyspace}", timeout=120)
        cluster.shutdown()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
