"""Backlog drain, side by side: events/s per worker process, CPU per event, peak RSS, broker and Cassandra CPU.

Every system reads the same pre-generated input (preloaded into a fresh topic of 8 partitions per run) on
the same local broker and Cassandra node, in interleaved order, repeated. Rates are taken from the
consumer group's committed offsets (sampled every 0.2 s) between the first commit and the moment every
input topic of the system is committed to its end, so start-up is not counted for anyone.

    .venv/bin/python -m benchmarks.drain [--events 100000] [--cities 50] [--repeat 3] [--systems A,B,...]
                                         [--baseline DIR] [--profile]

``--systems`` defaults to every one of :data:`SYSTEMS`, in that order. ``--baseline DIR`` also runs each
weatherstream system from another checkout (``<system>@baseline``), interleaved with this one's.

The result checks the drain's :data:`TARGETS` (``targets``, also printed): the ratio of CPU per event of each
round in which both systems ran correctly, their median, and whether it is within the target.

Needs the local stack (`weatherstream stack up`); `make bench` runs it. Results: benchmarks/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError
from cassandra.query import SimpleStatement

from weatherstream.db import connect_settings
from weatherstream.settings import Settings, load_settings
from weatherstream.sinks.schema import migrate
from weatherstream.sources.synthetic import SyntheticConfig, generate
from weatherstream.topics import create_namespace_topics, delete_namespace_topics, namespace_topic_counts

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
RESULTS = ROOT / "benchmarks" / "results"
TICK = os.sysconf("SC_CLK_TCK")
SYSTEMS = ("weatherstream", "weatherstream-nosink", "quix", "quix-nosink", "naive", "naive-nosink", "faust-floor",
           "limit")  # fmt: skip


def workload(events: int, cities: int, anomalies: int | None = None) -> list[tuple[bytes, bytes]]:
    """(key, payload) pairs, generated once and kept in benchmarks/.work/ (``anomalies``: one per 1,000 events
    unless given)."""
    anomalies = max(1, events // 1000) if anomalies is None else anomalies
    path = WORK / f"workload-{events}-{cities}{'' if anomalies == max(1, events // 1000) else f'-a{anomalies}'}.jsonl"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        start = float(int(time.time()) // 600 * 600 - (events // cities) * 600)
        cfg = SyntheticConfig(cities=cities, count=events, seed=7, start=start, anomalies=anomalies)
        try:
            records = list(generate(cfg))
        except ValueError as exc:  # e.g. too few events per city for the planned anomalies
            raise SystemExit(f"cannot generate {events} events for {cities} cities: {exc}") from exc
        partial = path.with_suffix(".partial")  # renamed once complete: a failed run leaves no empty workload
        partial.write_bytes(b"".join(orjson.dumps({"k": str(r.city_id), "v": r.payload.decode()}) + b"\n"
                                     for r in records))  # fmt: skip
        partial.replace(path)
    pairs = []
    for line in path.read_bytes().splitlines():
        doc = orjson.loads(line)
        pairs.append((doc["k"].encode(), doc["v"].encode()))
    return pairs


async def preload(settings: Settings, pairs: list[tuple[bytes, bytes]]) -> None:
    await create_namespace_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=20,
                                max_batch_size=1 << 20, enable_idempotence=True)  # fmt: skip
    await producer.start()
    try:
        futures = [await producer.send(settings.topic_raw, value, key=key, headers=[("source", b"synthetic")])
                   for key, value in pairs]  # fmt: skip
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def progress(settings: Settings, group: str, topics: list[str]) -> tuple[int, bool]:
    """(committed offsets of the first topic, whether every partition of ``topics`` is committed to its end)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(settings.partitions)]
        ends = await consumer.end_offsets(tps)
        try:
            committed = await admin.list_consumer_group_offsets(group)
        except GroupCoordinatorNotAvailableError:  # a broker just started is still creating __consumer_offsets
            return 0, False
        first = sum(max(0, committed[tp].offset) for tp in tps if tp.topic == topics[0] and tp in committed)
        at_end = all(tp in committed and committed[tp].offset >= end for tp, end in ends.items() if end > 0)
        return first, at_end
    finally:
        await consumer.stop()
        await admin.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def topic_messages(settings: Settings, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        ends, starts = await consumer.end_offsets(tps), await consumer.beginning_offsets(tps)
        return sum(ends[tp] - starts[tp] for tp in tps)
    finally:
        await consumer.stop()


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError):
        return 0.0


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def server_pids() -> dict[str, int]:
    pids = {}
    for name in ("kafka", "cassandra"):
        path = ROOT / ".stack" / "run" / f"{name}.pid"
        if path.exists():
            pids[name] = int(path.read_text().strip())
    return pids


@dataclass
class Run:
    system: str
    repetition: int
    events: int
    seconds: float = 0.0
    events_per_s: float = 0.0
    cpu_us_per_event: float = 0.0
    peak_rss_mb: float = 0.0
    server_cpu_s: dict[str, float] = field(default_factory=dict)
    rows: int | None = None
    aggregates: dict[str, int] = field(default_factory=dict)
    topic_messages: dict[str, int] = field(default_factory=dict)  # what the run left in each topic
    ok: bool = False
    note: str = ""


def sink_topics(settings: Settings) -> list[str]:
    """The topics weatherstream's sink reads (committed in ``settings.sink_group``)."""
    return [settings.topic_observations, settings.topic_aggregates, settings.topic_alerts]


def in_tree(env: dict[str, str], tree: Path | None) -> tuple[Path, dict[str, str]]:
    """The working directory and environment that run the worker of checkout ``tree`` (None: this one), for a
    before/after comparison: ``python -m`` finds the package in the working directory first."""
    if tree is None:
        return ROOT, env
    return tree, {**env, "PYTHONPATH": os.pathsep.join(p for p in (str(tree), env.get("PYTHONPATH", "")) if p)}


def commit_of(tree: Path) -> str:
    """The commit checked out in ``tree`` (``+changes`` when its files differ from it), for the result file."""
    try:
        head = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, timeout=30).stdout.strip()  # fmt: skip
        changed = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, check=True, timeout=30).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"{head}+changes" if changed else head


def command(
    system: str, settings: Settings, group: str, events: int, data_dir: Path, port: int
) -> tuple[list[str], dict[str, str], list[str]]:
    """The process to start, its environment and the topics whose committed offsets say it is done."""
    env = {**os.environ, "WEATHERSTREAM_NAMESPACE": settings.namespace, "WEATHERSTREAM_KEYSPACE": settings.keyspace,
           "WEATHERSTREAM_DATA_DIR": str(data_dir), "WEATHERSTREAM_WEB_PORT": str(port)}  # fmt: skip
    py = sys.executable
    if system == "weatherstream":
        return (
            [py, "-m", "weatherstream", "worker", "--role", "all", "--loglevel", "warning"],
            env,
            [settings.topic_raw],  # and the sink's topics in the sink's group: see sink_topics
        )
    if system == "weatherstream-sink":  # only the sink, beside a pipeline worker (the latency benchmark's split)
        return (
            [py, "-m", "weatherstream", "worker", "--role", "sink", "--loglevel", "warning"],
            env,
            [],  # its topics are committed in the sink's group; the latency benchmark does not wait for them
        )
    if system == "weatherstream-nosink":
        return (
            [py, "-m", "weatherstream", "worker", "--role", "pipeline", "--loglevel", "warning"],
            env,
            [settings.topic_raw],
        )
    if system in ("naive", "naive-nosink"):
        extra = ["--no-sink"] if system == "naive-nosink" else []
        return (
            [py, "-m", "benchmarks.systems.naive", settings.topic_raw, group, settings.keyspace, *extra],
            env,
            [settings.topic_raw],
        )
    if system in ("quix", "quix-nosink"):
        extra = ["--no-sink"] if system == "quix-nosink" else []
        return (
            [py, "-m", "benchmarks.systems.quix", settings.topic_raw, group, settings.keyspace, str(data_dir), *extra],
            env,
            [settings.topic_raw],
        )
    if system == "faust-floor":
        return [py, "-m", "benchmarks.systems.faust_floor", settings.topic_raw, group], env, [settings.topic_raw]
    if system == "limit":
        return [py, "-m", "benchmarks.systems.limit", settings.topic_raw, group, str(events)], env, [settings.topic_raw]
    raise SystemExit(f"unknown system {system!r}")


#: window kinds each system computes (Quix Streams has no per-city local-day window)
KINDS = {"weatherstream": ("tumbling-1h", "hopping-24h-1h", "day-local"), "quix": ("tumbling-1h", "hopping-24h-1h")}


def expected_windows(pairs: list[tuple[bytes, bytes]], lateness_s: float) -> dict[tuple[int, str, float], Any]:
    """The final aggregates (revision 1) the independent oracle of the tests expects for the workload."""
    from tests.oracle import Obs, expected_aggregates
    from weatherstream.core.normalize import InvalidPayload, normalize

    arrivals = []
    for _, payload in pairs:
        try:
            o = normalize(payload, now=time.time(), units="metric", source="synthetic")
        except InvalidPayload:
            continue
        arrivals.append(Obs(o.city_id, o.observed_at, o.timezone_offset_s or 0, o.temp_c, o.humidity_pct,
                            o.pressure_hpa, o.wind_speed_ms, o.wind_gust_ms or 0.0, o.condition_main))  # fmt: skip
    return {
        (city, wid.partition(":")[0], float(values["window_start"])): values
        for (city, wid, revision), values in expected_aggregates(arrivals, lateness_s).items()
        if revision == 1
    }


def check_aggregates(settings: Settings, system: str, expected: dict[tuple[int, str, float], Any]) -> dict[str, int]:
    """Compare the system's aggregate rows with the oracle: matched, wrong (count or mean), missing, extra."""
    kinds = KINDS[system]
    want = {k: v for k, v in expected.items() if k[1] in kinds}
    cluster, session = connect_settings(settings)
    try:
        got = {
            (r.city_id, r.kind, r.window_start.replace(tzinfo=dt.timezone.utc).timestamp()): r
            for r in session.execute(
                f"SELECT city_id, kind, window_start, revision, count, temp_mean_c FROM {settings.keyspace}.aggregates_by_city",  # noqa: S608, E501
                timeout=300,
            )
            if r.revision == 1 and r.kind in kinds
        }
    finally:
        cluster.shutdown()
    matched = wrong = 0
    for key, values in want.items():
        row = got.get(key)
        if row is None:
            continue
        same = row.count == values["count"] and abs((row.temp_mean_c or 0) - (values["temp_mean_c"] or 0)) < 1e-6
        matched += same
        wrong += not same
    return {"expected": len(want), "matched": matched, "wrong": wrong, "missing": len(set(want) - set(got)),
            "extra": len(set(got) - set(want))}  # fmt: skip


def count_rows(settings: Settings) -> int:
    """Rows of ``observations_by_city_day``, counted page by page (a ``COUNT(*)`` over 100,000 partitions is one
    request, which overran the node's 10 s range-read timeout)."""
    cluster, session = connect_settings(settings)
    try:
        query = f"SELECT city_id FROM {settings.keyspace}.observations_by_city_day"  # noqa: S608
        return sum(1 for _ in session.execute(SimpleStatement(query, fetch_size=5000), timeout=60))
    finally:
        cluster.shutdown()


def start_profiler(system: str, tag: str, pid: int) -> tuple[subprocess.Popen[bytes], Path]:
    """py-spy sampling the system's process (native frames too), stopped with SIGINT when the drain ends."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise SystemExit(f"--profile needs py-spy next to {sys.executable}: run `.venv/bin/pip install py-spy`")
    out = RESULTS / f"profile-{system}-{tag}.txt"
    argv = [str(spy), "record", "--pid", str(pid), "--rate", "200", "--format", "raw", "--output", str(out),
            "--subprocesses", "--nonblocking"]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out


def stop_profiler(profiler: tuple[subprocess.Popen[bytes], Path] | None) -> str:
    """Stop py-spy; returns where its profile is ("" without a profiler)."""
    if profiler is None:
        return ""
    proc, out = profiler
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
    return f"profile {out.relative_to(ROOT)}" if out.exists() else "py-spy wrote no profile"


def run_one(
    name: str,
    repetition: int,
    pairs: list[tuple[bytes, bytes]],
    timeout_s: float,
    profile: bool = False,
    baseline: Path | None = None,
) -> Run:
    """One drain of ``name``: a system, or ``<system>@baseline`` for the same system run from ``baseline``'s tree."""
    system, _, variant = name.partition("@")
    tag = uuid.uuid4().hex[:8]
    settings = load_settings(namespace=f"bench{tag}", keyspace=f"bench_{tag}")
    result = Run(name, repetition, len(pairs))
    cluster, session = connect_settings(settings)
    try:
        migrate(session, settings)
    finally:
        cluster.shutdown()
    asyncio.run(preload(settings, pairs))
    group = settings.app_id if system.startswith("weatherstream") else f"{settings.namespace}.{system}"
    data_dir = WORK / f"data-{tag}"
    argv, env, topics = command(system, settings, group, len(pairs), data_dir, free_port())
    cwd, env = in_tree(env, baseline if variant == "baseline" else None)
    log = (WORK / f"{system}-{tag}.log").open("wb")
    servers = server_pids()
    server_before = {server: cpu_s(pid) for server, pid in servers.items()}
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
    started = time.monotonic()
    if system == "limit":  # it measures itself: it drains faster than committed offsets can be sampled
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            result.note = f"not done after {timeout_s:.0f} s"
            return result
        finally:
            log.close()
        report = json.loads((WORK / f"{system}-{tag}.log").read_text().strip().splitlines()[-1])
        result.seconds = report["seconds"]
        result.events_per_s = report["events"] / report["seconds"] if report["seconds"] else 0.0
        result.cpu_us_per_event = report["cpu_s"] / max(1, report["events"]) * 1e6
        result.peak_rss_mb = report["peak_rss_mb"]
        result.ok = report["events"] >= len(pairs)
        clean_up(settings)
        return result
    first: tuple[float, int, float] | None = None  # (time, committed, cpu) at the first commit
    profiler: tuple[subprocess.Popen[bytes], Path] | None = None
    try:
        while True:
            if proc.poll() is not None:
                result.note = f"exited with {proc.returncode}; log {log.name}"
                return result
            done, at_end = asyncio.run(progress(settings, group, topics))
            if at_end and system == "weatherstream":  # done only once the sink has written everything
                _, at_end = asyncio.run(progress(settings, settings.sink_group, sink_topics(settings)))
            now = time.monotonic()
            if first is None and done > 0:
                first = (now, done, cpu_s(proc.pid))
                server_before = {server: cpu_s(pid) for server, pid in servers.items()}
                if profile:
                    profiler = start_profiler(system, tag, proc.pid)
            if first is not None and done >= len(pairs) and at_end:
                cpu = cpu_s(proc.pid) - first[2]
                result.seconds = now - first[0]
                handled = len(pairs) - first[1]
                result.events_per_s = handled / result.seconds if result.seconds > 0 else 0.0
                result.cpu_us_per_event = cpu / max(1, handled) * 1e6
                result.peak_rss_mb = peak_rss_mb(proc.pid)
                result.server_cpu_s = {
                    server: round(cpu_s(pid) - server_before[server], 2) for server, pid in servers.items()
                }
                break
            if now - started > timeout_s:
                result.note = f"not done after {timeout_s:.0f} s ({done} of {len(pairs)} inputs committed)"
                return result
            time.sleep(0.2)
    finally:
        profiled = stop_profiler(profiler)
        if profiled:
            result.note += f"; {profiled}"
        stop_process(proc)
        log.close()
    if system in ("weatherstream", "naive", "quix"):
        result.rows = count_rows(settings)
        distinct = len({(k, orjson.loads(v)["dt"]) for k, v in pairs})
        # weatherstream and the Quix job dead-letter what they refuse (the injected impossible values)
        refused = asyncio.run(topic_messages(settings, settings.topic_deadletter)) if system != "naive" else 0
        result.ok = result.rows + refused == distinct
        result.note = f"{result.rows} rows + {refused} dead letters, {distinct} distinct inputs"
        if system in KINDS:
            result.aggregates = check_aggregates(settings, system, expected_windows(pairs, settings.allowed_lateness_s))
            result.note += ", aggregates vs oracle " + " ".join(f"{k} {v}" for k, v in result.aggregates.items())
            result.ok = result.ok and result.aggregates["wrong"] == 0 and result.aggregates["missing"] == 0
    else:
        result.ok = True
    try:
        counts = asyncio.run(namespace_topic_counts(settings))
        result.topic_messages = {
            topic.removeprefix(f"{settings.namespace}."): c["messages"] for topic, c in counts.items()
        }
    finally:
        clean_up(settings)
    return result


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """SIGTERM, then SIGKILL if it has not exited after ``timeout_s``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def clean_up(settings: Settings) -> None:
    """Drop the run's topics and keyspace."""
    asyncio.run(delete_namespace_topics(settings))
    cluster, session = connect_settings(settings)
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.keyspace}", timeout=120)
    finally:
        cluster.shutdown()


def summary(runs: list[Run]) -> list[dict[str, Any]]:
    by_system: dict[str, list[Run]] = {}
    for r in runs:
        by_system.setdefault(r.system, []).append(r)

    def median(system: str, attr: str) -> float:
        values = [getattr(r, attr) for r in by_system.get(system, []) if r.ok]
        return statistics.median(values) if values else 0.0

    naive, limit = median("naive", "events_per_s"), median("limit", "events_per_s")
    rows = []
    for system, rs in by_system.items():
        rate = median(system, "events_per_s")
        rows.append({
            "system": system, "runs_ok": sum(r.ok for r in rs), "runs": len(rs),
            "events_per_s": round(rate, 1), "cpu_us_per_event": round(median(system, "cpu_us_per_event"), 1),
            "peak_rss_mb": round(median(system, "peak_rss_mb"), 1),
            "x_naive": round(rate / naive, 2) if naive else None,
            "of_limit": round(rate / limit, 3) if limit else None,
        })  # fmt: skip
    return rows


#: the drain's targets: (system, the system it is compared with, the largest allowed ratio of CPU per event)
TARGETS = (
    ("weatherstream-nosink", "faust-floor", 2.0),  # the pipeline without the sink: at most twice the floor
    ("weatherstream", "quix", 0.4),  # with the sink: at most 0.4x the same job in Quix Streams
)


def round_ratios(runs: list[Run], system: str, reference: str) -> list[float]:
    """``system``'s CPU per event over ``reference``'s, for each round (repetition) in which both ran correctly:
    only runs of one round compare, the machine's speed drifts over minutes."""
    by_round: dict[tuple[str, int], Run] = {(r.system, r.repetition): r for r in runs if r.ok}
    out = []
    for (name, repetition), run in sorted(by_round.items(), key=lambda item: item[0][1]):
        other = by_round.get((reference, repetition))
        if name == system and other is not None and other.cpu_us_per_event > 0:
            out.append(run.cpu_us_per_event / other.cpu_us_per_event)
    return out


def check_targets(runs: list[Run]) -> list[dict[str, Any]]:
    """Each target whose two systems ran (also for ``<system>@baseline``): the ratio of each round, their median,
    and whether the median is within the target."""
    out = []
    for system, reference, limit in TARGETS:
        for name in (system, f"{system}@baseline"):
            ratios = round_ratios(runs, name, reference)
            if ratios:
                median = statistics.median(ratios)  # judged unrounded: 2.0004 is over 2
                out.append({"system": name, "against": reference, "limit": limit,
                            "per_round": [round(x, 3) for x in ratios], "median": round(median, 3),
                            "met": median <= limit})  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--cities", type=int, default=50, help="Cities (the 71 built-in ones first, then synthetic stations near them)."
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--timeout", type=float, default=1800, help="Seconds one system may take to drain.")
    parser.add_argument("--profile", action="store_true",
                        help="Sample each system with py-spy from its first commit to the end (slows it down; "
                             "flame-graph input in benchmarks/results/profile-*.txt).")  # fmt: skip
    parser.add_argument(
        "--baseline",
        type=Path,
        help="Also run each weatherstream system from this checkout (e.g. a `git worktree` of an older commit), "
        "interleaved, as <system>@baseline: a before/after in one run.",
    )
    args = parser.parse_args()
    systems = args.systems.split(",")
    if args.baseline is not None:
        systems = [v for s in systems for v in ((s, f"{s}@baseline") if s.startswith("weatherstream") else (s,))]
    pairs = workload(args.events, args.cities)
    print(f"workload: {len(pairs):,} events, {args.cities} cities", file=sys.stderr)
    runs: list[Run] = []
    for repetition in range(1, args.repeat + 1):
        for system in systems:  # interleaved: A B C A B C ...
            r = run_one(system, repetition, pairs, args.timeout, args.profile, args.baseline)
            runs.append(r)
            print(f"  {system:22} rep {repetition}: {r.events_per_s:9.1f} ev/s  {r.cpu_us_per_event:8.1f} us/ev  "
                  f"rss {r.peak_rss_mb:6.1f} MB  servers {r.server_cpu_s}  {'ok' if r.ok else 'FAILED'} {r.note}",
                  file=sys.stderr)  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"drain-{stamp}.json"
    commits = {"tree": commit_of(ROOT), "baseline": commit_of(args.baseline) if args.baseline else None}
    doc = {"mode": "drain", "at": stamp, "events": args.events, "cities": args.cities, "commits": commits, "machine": {
        "cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "runs": [r.__dict__ for r in runs], "summary": summary(runs), "targets": check_targets(runs)}  # fmt: skip
    out.write_text(json.dumps(doc, indent=2))
    for row in doc["summary"]:
        print(json.dumps(row))
    for t in doc["targets"]:
        print(f"target: {t['system']} <= {t['limit']}x {t['against']}: per round "
              f"{', '.join(f'{x:.2f}' for x in t['per_round'])}; median {t['median']:.2f}x: "
              f"{'met' if t['met'] else 'NOT met'}", file=sys.stderr)  # fmt: skip
    print(f"results: {out}", file=sys.stderr)
    sys.exit(0 if all(r.ok for r in runs) else 1)


if __name__ == "__main__":
    main()
