"""Sustained write rate of the Cassandra sink to the local node, and its request latency.

Writes synthetic observations (normalized exactly as the pipeline does) through the sink's own
CassandraWriter into a scratch keyspace, the way the sink agent does: batches of records, rows of one
partition grouped into unlogged batches, at most WEATHERSTREAM_SINK_MAX_IN_FLIGHT requests at once.
Three shapes: a backlog (many rows per city and day per batch), a live trickle (one row per request), and
a network of many stations with one row each (``--stations``; every row a partition of its own), packed
within the cluster's batch thresholds and within Cassandra's defaults (10 partitions, 5 KiB), in turn.
Each gives the writer's CPU per row as well as its rate.

    .venv/bin/python benchmarks/sink_write.py [--rows 100000] [--stations 40000] [--keyspace bench_sink]

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
    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(0, len(writes), batch):
        chunk = writes[i : i + batch]
        if by_partition:
            await writer.write(chunk)
        else:  # one request per row: what a live trickle of single observations looks like
            await asyncio.gather(*(writer.write([w]) for w in chunk))
    elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    lat = writer.latencies_s
    return {
        "rows": len(writes), "seconds": round(elapsed, 2), "rows_per_s": round(len(writes) / elapsed),
        "cpu_us_per_row": round(cpu_s / len(writes) * 1e6, 1),
        "requests": len(lat), "request_p50_ms": round(quantile(lat, 0.5) * 1000, 2),
        "request_p99_ms": round(quantile(lat, 0.99) * 1000, 2),
        "request_mean_ms": round(statistics.mean(lat) * 1000, 2),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--cities", type=int, default=50)
    parser.add_argument("--stations", type=int, default=40_000, help="Stations (and rows) of the third shape.")
    parser.add_argument("--keyspace", default="bench_sink")
    args = parser.parse_args()
    settings = load_settings(keyspace=args.keyspace)
    records = observations(args.rows, args.cities)
    writer = CassandraWriter(settings)
    writer.open()
    cassandra_defaults = CassandraWriter(settings.model_copy(update={"sink_batch_partitions": 10, "sink_batch_kib": 5}))
    network = observations(args.stations, args.stations)
    try:
        cassandra_defaults.open()
        many: dict[str, list[dict]] = {}  # type: ignore[type-arg]
        for _ in range(3):  # in turn: the machine's speed drifts
            for name, packing in ((f"the cluster's thresholds {writer.limits}", writer),
                                  ("Cassandra's default thresholds", cassandra_defaults)):  # fmt: skip
                many.setdefault(name, []).append(asyncio.run(run(packing, network, 1000, by_partition=True)))
        results = {
            "backlog (1,000 records per batch, one-partition unlogged batches)": asyncio.run(
                run(writer, records, 1000, by_partition=True)
            ),
            "live (one row per request, 64 in flight)": asyncio.run(
                run(writer, records[: args.rows // 4], settings.sink_max_in_flight, by_partition=False)
            ),
        }
        for name, runs in many.items():
            results[f"{args.stations:,} stations, one row each, packed within {name}"] = {
                "cpu_us_per_row": [r["cpu_us_per_row"] for r in runs], "requests": runs[0]["requests"],
                "rows_per_s": [r["rows_per_s"] for r in runs],
            }  # fmt: skip
    finally:
        writer.close()
        cassandra_defaults.close()
        cluster, session = connect_settings(settings)
        session.execute(f"DROP KEYSPACE IF EXISTS {args.keyspace}", timeout=120)
        cluster.shutdown()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
