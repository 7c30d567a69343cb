"""Fixed-rate latency: event-to-alert p50/p95/p99 at several input rates, and the sustainable rate.

For each rate, a fresh namespace and one worker (`--role all`: pipeline and Cassandra sink in one
process, as a user runs it), or with ``--layout split`` a pipeline worker and a sink worker, or with ``--layout
two`` two ``--role all`` workers sharing the partitions (CPU is summed over the workers). An open-loop
producer sends synthetic observations (50 cities, injected anomalies) on a fixed schedule: message i is
due at t0 + i/rate, and is sent late rather than skipped when the producer falls behind, so a slow system
cannot hide its delay (no coordinated omission). A separate subscriber reads the alerts topic. The latency
of an alert is its arrival at the subscriber minus the *scheduled* send time of the observation that raised
it. Alerts of the first ``--warmup`` seconds are left out. A rate is sustainable when the lag stays flat
(the median latency of the last third of the alerts is at most twice that of the first third, or at most
100 ms) and p99 meets ``--target-ms``. With ``--repeat N`` every rate is run N times (the rates in turn, so
that a slow spell of the shared machine does not fall on one rate only); the summary gives each rate's median
p99 and range, and a rate counts as sustainable when it was in more than half of its runs.
Whether the worker's committed offsets reached the end within 10 s of the last send is recorded too, and
where the time went: scheduled send -> detection (``detected_at`` of the alert), detection -> the alert's
record, record -> arrival; how late the producer itself sent; the worker's CPU seconds per second, the
messages it consumed, its batch sizes and how late its event loop woke a 0.25 s timer (from its ``/metrics``).

    .venv/bin/python -m benchmarks.latency [--rates 200,500,1000] [--seconds 60] [--warmup 10] [--repeat 1]
        [--layout all|split|two] [--tree DIR] [--profile]

Needs the local stack (`weatherstream stack up`). Results: benchmarks/results/latency-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import requests
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.drain import (
    RESULTS,
    ROOT,
    WORK,
    clean_up,
    command,
    free_port,
    in_tree,
    progress,
    start_profiler,
    stop_profiler,
)
from weatherstream.db import connect_settings
from weatherstream.settings import Settings, load_settings
from weatherstream.sinks.schema import migrate
from weatherstream.sources.synthetic import SyntheticConfig, generate
from weatherstream.topics import create_namespace_topics

CITIES = 50


def _ready(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def worker_counters(port: int) -> dict[str, float]:
    """The worker's CPU seconds so far, the messages it consumed by topic and, per agent, the events and
    batches it handled (from /metrics)."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out: dict[str, float] = {"wall_s": time.monotonic()}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "process_cpu_seconds_total":
                out["cpu_s"] = sample.value
            elif sample.name == "weatherstream_events_in_total":
                out[f"in_{sample.labels['topic']}"] = sample.value
            elif sample.name == "weatherstream_event_loop_delay_seconds_bucket":
                out[f"loop_le_{sample.labels['le']}"] = sample.value
            elif sample.name in ("weatherstream_batch_events_sum", "weatherstream_batch_events_count"):
                kind = "events" if sample.name.endswith("_sum") else "batches"
                out[f"{sample.labels['agent']}_{kind}"] = sample.value
    return out


def loop_delay(spent: dict[str, float]) -> dict[str, Any]:
    """How late the workers' event loops woke their 0.25 s timer during the step (``weatherstream_event_loop_delay_
    seconds``, summed over the workers): wake-ups, how many came over 25 and 100 ms late, and the bucket of the
    latest one. Late wake-ups mean a batch, a collection or a blocking call held the loop that long."""
    buckets = sorted((float(name[8:]), n) for name, n in spent.items() if name.startswith("loop_le_"))
    if not buckets:
        return {}
    total = buckets[-1][1]
    within = dict(buckets)
    latest = next((le for le, n in buckets if n >= total), None)
    return {"wakeups": round(total), "over_25ms": round(total - within.get(0.025, total)),
            "over_100ms": round(total - within.get(0.1, total)),
            "latest_within_ms": None if latest is None or latest == float("inf") else latest * 1000}  # fmt: skip


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(
    settings: Settings, rate: float, seconds: float
) -> tuple[dict[tuple[int, float], float], list[Any], float | None, list[float], list[Any]]:
    """Send at ``rate`` for ``seconds``; returns (scheduled send time per (city, event time), alerts seen,
    seconds after the last scheduled send until the worker had committed all input (None if not within 10 s),
    how late the producer sent each message, the aggregates seen on their topic)."""
    count = int(rate * seconds)
    if count < 1:
        raise SystemExit(f"--rates x --seconds must be at least one message (got {rate} x {seconds})")
    now = time.time()
    cfg = SyntheticConfig(cities=CITIES, count=count, seed=11, step_s=600,
                          start=float(int(now - (count / CITIES) * 600) // 600 * 600),
                          anomalies=max(2, count // 500))  # fmt: skip
    records = list(generate(cfg))
    scheduled: dict[tuple[int, float], float] = {}
    seen: list[tuple[dict[str, Any], float, float]] = []  # (alert, its record's timestamp, arrival)
    aggregates: list[tuple[int, str, float, int]] = []
    late: list[float] = []  # per message: how far behind its schedule the producer sent it (s)
    stop = asyncio.Event()

    async def subscribe(ready: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(settings.topic_alerts, bootstrap_servers=settings.bootstrap_servers,
                                    auto_offset_reset="earliest", fetch_max_wait_ms=10)  # fmt: skip
        await consumer.start()
        ready.set()
        try:
            while not stop.is_set():
                for batch in (await consumer.getmany(timeout_ms=50)).values():
                    arrived = time.time()
                    seen.extend((orjson.loads(r.value), r.timestamp / 1000, arrived) for r in batch)
        finally:
            await consumer.stop()

    async def count_aggregates() -> None:
        """Aggregate messages and distinct aggregates (city, kind, window, revision): repeats are counted."""
        consumer = AIOKafkaConsumer(settings.topic_aggregates, bootstrap_servers=settings.bootstrap_servers,
                                    auto_offset_reset="earliest")  # fmt: skip
        await consumer.start()
        try:
            while not stop.is_set():
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    for r in batch:
                        a = orjson.loads(r.value)
                        aggregates.append((a["city_id"], a["kind"], a["window_start"], a["revision"]))
        finally:
            await consumer.stop()

    ready = asyncio.Event()
    subscriber = asyncio.create_task(subscribe(ready))
    counter = asyncio.create_task(count_aggregates())
    await ready.wait()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=0)
    await producer.start()
    try:
        t0 = time.time() + 0.5
        for i, r in enumerate(records):
            due = t0 + i / rate
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            scheduled[(r.city_id, float(r.event_time))] = due
            late.append(time.time() - due)
            await producer.send(settings.topic_raw, r.payload, key=str(r.city_id).encode(), headers=r.headers())
        await producer.flush()
    finally:
        await producer.stop()
    # Ten more seconds for the alerts of the last observations; meanwhile, did the worker catch up: its
    # committed offsets of the raw topic reach the end (the first time they do, after the last scheduled send)?
    sent_end = max(scheduled.values())
    caught_up_after: float | None = None
    while time.time() < sent_end + 10:
        if caught_up_after is None:
            _, at_end = await progress(settings, settings.app_id, [settings.topic_raw])
            if at_end:
                caught_up_after = max(0.0, time.time() - sent_end)
        await asyncio.sleep(0.2)
    stop.set()
    await subscriber
    await counter
    return scheduled, seen, caught_up_after, late, aggregates


#: worker processes per layout: (name, the drain's system whose command starts it)
LAYOUTS = {
    "all": [("worker", "weatherstream")],  # one `--role all` process, as most users run it
    "split": [("pipeline", "weatherstream-nosink"), ("sink", "weatherstream-sink")],  # the roles apart
    "two": [("worker1", "weatherstream"), ("worker2", "weatherstream")],  # scaled out: the partitions shared
}


def run_rate(rate: float, seconds: float, warmup_s: float, target_ms: float, profile: bool = False,
             layout: str = "all", tree: Path | None = None) -> dict[str, Any]:  # fmt: skip
    tag = uuid.uuid4().hex[:8]
    settings = load_settings(namespace=f"lat{tag}", keyspace=f"lat_{tag}")
    cluster, session = connect_settings(settings)
    try:
        migrate(session, settings)
    finally:
        cluster.shutdown()
    asyncio.run(create_namespace_topics(settings))
    workers: list[tuple[subprocess.Popen[bytes], int, Path]] = []
    try:
        for name, system in LAYOUTS[layout]:
            port = free_port()
            argv, env, _ = command(system, settings, settings.app_id, 0, WORK / f"data-{tag}-{name}", port)
            cwd, env = in_tree(env, tree)
            log_path = WORK / f"latency-{tag}-{name}.log"
            with log_path.open("wb") as log:
                proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                        start_new_session=True)  # fmt: skip
            workers.append((proc, port, log_path))
        ready_by = time.monotonic() + 120
        for proc, port, log_path in workers:
            while not _ready(port):
                if proc.poll() is not None or time.monotonic() > ready_by:
                    raise SystemExit(f"the worker did not get ready; its log: {log_path}")
                time.sleep(0.5)
        before = [worker_counters(port) for _, port, _ in workers]
        profiler = start_profiler(f"latency-{rate:.0f}", tag, workers[0][0].pid) if profile else None
        try:
            scheduled, seen, caught_up_after, late, aggregates = asyncio.run(drive(settings, rate, seconds))
        finally:
            profiled = stop_profiler(profiler)
        after = [worker_counters(port) for _, port, _ in workers]
    finally:
        for proc, _, _ in workers:
            proc.terminate()
        for proc, _, _ in workers:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        clean_up(settings)
    t0 = min(scheduled.values())
    latencies = []
    timeline: list[tuple[float, float]] = []  # (scheduled time since start, latency ms)
    ids: dict[tuple[str, int], int] = {}
    # Where an alert's latency went: scheduled -> detected (the producer's own delay, the worker's queue and
    # batch up to the city's turn), detected -> its record created (the rest of the batch, the state changelog's
    # acknowledgement), created -> arrived (the producer's linger, the broker, the subscriber's fetch).
    stages: dict[str, list[float]] = {"due_to_detected": [], "detected_to_sent": [], "sent_to_arrived": []}
    for alert, created, arrived in seen:
        ids[(alert["alert_id"], alert["seq"])] = ids.get((alert["alert_id"], alert["seq"]), 0) + 1
        due = scheduled.get((alert["city_id"], float(alert["observed_at"])))
        if alert["state"] != "open" or alert["kind"] == "silent_station" or due is None or due - t0 < warmup_s:
            continue  # a silent station is raised by a timer, not by an observation
        latencies.append((arrived - due) * 1000)
        timeline.append((due - t0, latencies[-1]))
        stages["due_to_detected"].append((alert["detected_at"] - due) * 1000)
        stages["detected_to_sent"].append((created - alert["detected_at"]) * 1000)
        stages["sent_to_arrived"].append((arrived - created) * 1000)
    result: dict[str, Any] = {
        "rate": rate, "seconds": seconds, "events": len(scheduled), "alerts": len(seen),
        "measured_alerts": len(latencies), "repeated_alert_messages": sum(n - 1 for n in ids.values()),
        "caught_up_after_s": caught_up_after, "aggregate_messages": len(aggregates),
        "distinct_aggregates": len(set(aggregates)),
    }  # fmt: skip
    if profiled:
        result["profile"] = profiled
    if latencies:
        result.update(p50_ms=round(quantile(latencies, 0.5), 1), p95_ms=round(quantile(latencies, 0.95), 1),
                      p99_ms=round(quantile(latencies, 0.99), 1), max_ms=round(max(latencies), 1),
                      mean_ms=round(statistics.fmean(latencies), 1))  # fmt: skip
    if latencies:
        result["stage_p50_ms"] = {name: round(quantile(v, 0.5), 1) for name, v in stages.items()}
        result["stage_p99_ms"] = {name: round(quantile(v, 0.99), 1) for name, v in stages.items()}
    result["producer_late_ms"] = {
        "p50": round(quantile(late, 0.5) * 1000, 1),
        "p99": round(quantile(late, 0.99) * 1000, 1),
    }
    spent: dict[str, float] = {}
    for b, a in zip(before, after, strict=True):
        for name in a:
            spent[name] = spent.get(name, 0.0) + a[name] - b.get(name, 0.0)
    result["layout"] = layout
    # CPU of all its processes from ready to the end of the step (the input's seconds and the 10 s after them),
    # per second of input: the figures in docs/benchmarks.md compare steps measured alike
    result["worker_cpu_s_per_s"] = round(spent["cpu_s"] / seconds, 3)
    result["worker_cpu_s_per_wall_s"] = round(spent["cpu_s"] / max(spent["wall_s"] / len(workers), 1e-9), 3)
    result["worker_events_in"] = {name[3:]: round(n) for name, n in spent.items() if name.startswith("in_")}
    for agent in ("pipeline", "sink"):
        if spent.get(f"{agent}_batches"):
            result[f"{agent}_events_per_batch"] = round(spent[f"{agent}_events"] / spent[f"{agent}_batches"], 1)
    result["event_loop_delay"] = loop_delay(spent)
    # Lag stays flat: the alerts of the last third are not slower than twice those of the first third.
    timeline.sort()
    third = len(timeline) // 3
    if third:
        first, last = [lat for _, lat in timeline[:third]], [lat for _, lat in timeline[-third:]]
        result["p50_first_third_ms"] = round(statistics.median(first), 1)
        result["p50_last_third_ms"] = round(statistics.median(last), 1)
    flat = bool(third) and result["p50_last_third_ms"] <= 2 * max(result["p50_first_third_ms"], 50.0)
    result["sustainable"] = bool(flat and latencies and result["p99_ms"] <= target_ms)
    return result


def rate_summary(rate: float, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One rate over its runs: median and range of p50 and p99, and whether it was sustainable in most runs."""
    p99 = [r["p99_ms"] for r in runs if "p99_ms" in r]
    p50 = [r["p50_ms"] for r in runs if "p50_ms" in r]
    ok = sum(bool(r["sustainable"]) for r in runs)
    return {
        "rate": rate, "runs": len(runs), "sustainable_runs": ok, "sustainable": ok * 2 > len(runs),
        "p99_ms_median": statistics.median(p99) if p99 else None, "p99_ms_min": min(p99, default=None),
        "p99_ms_max": max(p99, default=None), "p50_ms_median": statistics.median(p50) if p50 else None,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="200,500,1000")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--target-ms", type=float, default=100)
    parser.add_argument("--repeat", type=int, default=1, help="Runs of every rate (the rates in turn).")
    parser.add_argument("--profile", action="store_true",
                        help="Sample the worker with py-spy while the input is sent "
                             "(benchmarks/results/profile-latency-*.txt).")  # fmt: skip
    parser.add_argument("--tree", type=Path, help="Run the worker of this checkout instead (a before/after run).")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="all",
                        help="all: one `worker --role all` process (default); split: a pipeline and a sink "
                             "worker; two: two `--role all` workers sharing the partitions.")  # fmt: skip
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    steps = []
    rates = [float(r) for r in args.rates.split(",")]
    for repeat in range(1, args.repeat + 1):
        for rate in rates:
            r = run_rate(rate, args.seconds, args.warmup, args.target_ms, args.profile, args.layout, args.tree)
            r["repeat"] = repeat
            steps.append(r)
            loop = r["event_loop_delay"]
            print(f"  {rate:7.0f} ev/s (run {repeat}): {r['measured_alerts']:4d} alerts  p50 {r.get('p50_ms', '-')} "
                  f"ms  p95 {r.get('p95_ms', '-')} ms  p99 {r.get('p99_ms', '-')} ms  p50 first/last third "
                  f"{r.get('p50_first_third_ms')}/{r.get('p50_last_third_ms')} ms  loop late >25/>100 ms: "
                  f"{loop.get('over_25ms')}/{loop.get('over_100ms')} of {loop.get('wakeups')}  "
                  f"{'sustainable' if r['sustainable'] else 'NOT sustainable'}", file=sys.stderr)  # fmt: skip
    summary = [rate_summary(rate, [r for r in steps if r["rate"] == rate]) for rate in rates]
    if args.repeat > 1:
        for r in summary:
            print(f"  {r['rate']:7.0f} ev/s, {r['runs']} runs: p99 median {r['p99_ms_median']} ms (range "
                  f"{r['p99_ms_min']}-{r['p99_ms_max']}), p50 median {r['p50_ms_median']} ms, sustainable in "
                  f"{r['sustainable_runs']} of {r['runs']}", file=sys.stderr)  # fmt: skip
    sustainable = [r["rate"] for r in summary if r["sustainable"]]
    out = {
        "benchmark": "latency", "system": "weatherstream", "layout": args.layout, "tree": str(args.tree or ROOT),
        "at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": len(__import__("os").sched_getaffinity(0)),
                    "platform": platform.platform()},
        "target_p99_ms": args.target_ms, "repeat": args.repeat, "steps": steps, "summary": summary,
        "sustainable_rate": max(sustainable) if sustainable else None,
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"latency-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"results: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
