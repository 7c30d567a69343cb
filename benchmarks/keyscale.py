"""Key scale: the same number of events over 50, 5,000, 50,000 and 100,000 stations, one worker each.

For each station count: a fresh namespace and keyspace, the workload preloaded, one ``weatherstream worker``
(pipeline and sink) started on it. Measured:

- worker CPU per event from the worker's first commit until the pipeline and the sink have committed every
  input (every observation row written), and its peak RSS;
- idle CPU: the worker's CPU per wall second over ``--idle`` seconds with no input, right after;
- ``GET /api/cities`` (first call, which loads the station catalog, then the median of warm calls for a page,
  a search and a sort by age), ``GET /metrics``, and the overview's ``/api/network`` and the map's ``/api/map``
  (all in ``timings``: every warm call);
- recovery: the worker is stopped, its RocksDB folder deleted, and a new worker started on the same
  namespace; the time from its start until ``/ready`` (its tables recovered from the changelogs) and the
  state changelog's size.

The result checks the key-scale :data:`TARGETS` (``targets``, also printed). Ratios are to the smallest station
count of the run (runs that were not correct get none). With
``--repeat N`` the station counts run N times in turn, each run's ratio is to the smallest count's run of its
round, and the summary gives each count's median ratio and range (the machine's speed drifts over minutes, so
only ratios within a round compare).
``--tree DIR`` runs the worker of another checkout (e.g. a ``git worktree`` of an older commit) on the same
workload, for a before/after comparison.

    .venv/bin/python -m benchmarks.keyscale [--events 200000] [--stations 50,5000,50000,100000] [--idle 60]
                                            [--repeat 1] [--tree DIR] [--profile]

Needs the local stack (`weatherstream stack up`); `make bench` runs it. Results: benchmarks/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import requests

from benchmarks.drain import (
    RESULTS,
    ROOT,
    WORK,
    clean_up,
    command,
    commit_of,
    count_rows,
    cpu_s,
    free_port,
    in_tree,
    peak_rss_mb,
    preload,
    progress,
    sink_topics,
    start_profiler,
    stop_process,
    stop_profiler,
    topic_messages,
    workload,
)
from weatherstream.db import connect_settings
from weatherstream.settings import Settings, load_settings
from weatherstream.sinks.schema import migrate
from weatherstream.topics import namespace_topic_counts


@dataclass
class Scale:
    stations: int
    events: int
    seconds: float = 0.0
    cpu_us_per_event: float = 0.0
    peak_rss_mb: float = 0.0
    idle_cpu_pct: float = 0.0
    cities_first_ms: float = 0.0
    cities_page_ms: float = 0.0
    cities_search_ms: float = 0.0
    cities_by_age_ms: float = 0.0
    metrics_ms: float = 0.0
    recovery_s: float = 0.0
    changelog_messages: int = 0
    rows: int = 0
    ok: bool = False
    note: str = ""
    profile: str = ""
    repeat: int = 1  # which round of ``--repeat`` it belongs to
    work: dict[str, float] = field(default_factory=dict)  # the worker's counters at the end of the drain
    timings: dict[str, list[float]] = field(default_factory=dict)


def _get_ms(url: str) -> tuple[float, Any]:
    started = time.perf_counter()
    response = requests.get(url, timeout=120)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed, response


def _warm_ms(url: str, times: int = 7) -> list[float]:
    return [_get_ms(url)[0] for _ in range(times)]


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> float:
    """Seconds until the worker's /ready answers 200."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"not ready after {timeout_s:.0f} s")


def run_scale(stations: int, events: int, idle_s: float, timeout_s: float, tree: Path | None = None,
              profile: bool = False) -> Scale:  # fmt: skip
    pairs = workload(events, stations, anomalies=0)  # plain weather: 2 observations per station leave no room
    tag = uuid.uuid4().hex[:8]
    settings = load_settings(namespace=f"keys{tag}", keyspace=f"keys_{tag}")
    result = Scale(stations, len(pairs))
    cluster, session = connect_settings(settings)
    try:
        migrate(session, settings)
    finally:
        cluster.shutdown()
    asyncio.run(preload(settings, pairs))
    data_dir, port = WORK / f"data-{tag}", free_port()
    argv, env, topics = command("weatherstream", settings, settings.app_id, len(pairs), data_dir, port)
    cwd, env = in_tree(env, tree)
    log_path = WORK / f"keyscale-{stations}-{tag}.log"
    try:
        with log_path.open("wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                    start_new_session=True)  # fmt: skip
            try:
                _drain(settings, proc, topics, result, timeout_s, profile)
                if result.note:
                    return result
                result.work = _work(port)
                _idle(proc, idle_s, result)
                _views(port, result)
            finally:
                stop_process(proc, 90)
            result.rows = count_rows(settings)
            refused = asyncio.run(topic_messages(settings, settings.topic_deadletter))
            distinct = len({(k, orjson.loads(v)["dt"]) for k, v in pairs})
            result.ok = result.rows + refused == distinct
            result.note += f"{result.rows} rows + {refused} dead letters, {distinct} distinct inputs"
            counts = asyncio.run(namespace_topic_counts(settings))
            result.changelog_messages = sum(c["messages"] for t, c in counts.items() if t.endswith("-changelog"))
            shutil.rmtree(data_dir, ignore_errors=True)  # the worker lost its RocksDB folder
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                    start_new_session=True)  # fmt: skip
            try:
                result.recovery_s = round(_wait_ready(port, proc, timeout_s), 2)
            finally:
                stop_process(proc, 90)
    finally:
        clean_up(settings)
        shutil.rmtree(data_dir, ignore_errors=True)
    return result


def _drain(settings: Settings, proc: subprocess.Popen[bytes], topics: list[str], result: Scale,
           timeout_s: float, profile: bool) -> None:  # fmt: skip
    profiler: list[tuple[subprocess.Popen[bytes], Path] | None] = [None]  # started at the first commit
    try:
        _drain_until_done(settings, proc, topics, result, timeout_s, profile, profiler)
    finally:
        result.profile = stop_profiler(profiler[0]) or ""


def _drain_until_done(settings: Settings, proc: subprocess.Popen[bytes], topics: list[str], result: Scale,
                      timeout_s: float, profile: bool,
                      profiler: list[tuple[subprocess.Popen[bytes], Path] | None]) -> None:  # fmt: skip
    started = time.monotonic()
    first: tuple[float, int, float] | None = None
    while True:
        if proc.poll() is not None:
            result.note = f"exited with {proc.returncode}"
            return
        done, at_end = asyncio.run(progress(settings, settings.app_id, topics))
        if at_end:
            _, at_end = asyncio.run(progress(settings, settings.sink_group, sink_topics(settings)))
        now = time.monotonic()
        if first is None and done > 0:
            first = (now, done, cpu_s(proc.pid))
            if profile:
                profiler[0] = start_profiler(f"keyscale-{result.stations}", uuid.uuid4().hex[:8], proc.pid)
        if first is not None and done >= result.events and at_end:
            handled = result.events - first[1]
            result.seconds = round(now - first[0], 2)
            result.cpu_us_per_event = round((cpu_s(proc.pid) - first[2]) / max(1, handled) * 1e6, 1)
            result.peak_rss_mb = round(peak_rss_mb(proc.pid), 1)
            return
        if now - started > timeout_s:
            result.note = f"not done after {timeout_s:.0f} s ({done} of {result.events} committed)"
            return
        time.sleep(0.2)


WORK_COUNTERS = (
    "weatherstream_events_in_total",
    "weatherstream_events_out_total",
    "weatherstream_windows_finalized_total",
    "weatherstream_sink_rows_total",
)


def _work(port: int) -> dict[str, float]:
    """What the worker did during the drain: its message, window and row counters, per label set."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=60).text
    work: dict[str, float] = {}
    for line in text.splitlines():
        name, _, rest = line.partition("{")
        if name in WORK_COUNTERS:
            labels, _, value = rest.rpartition("} ")
            key = f"{name.removeprefix('weatherstream_').removesuffix('_total')}{{{labels}}}"
            work[key] = float(value)
    return work


def _idle(proc: subprocess.Popen[bytes], idle_s: float, result: Scale) -> None:
    time.sleep(5)  # the last confirmations and commits
    before, started = cpu_s(proc.pid), time.monotonic()
    time.sleep(idle_s)
    result.idle_cpu_pct = round((cpu_s(proc.pid) - before) / (time.monotonic() - started) * 100, 2)


def _views(port: int, result: Scale) -> None:
    base = f"http://127.0.0.1:{port}"
    first, response = _get_ms(f"{base}/api/cities?limit=50")
    result.cities_first_ms = round(first, 1)
    body = response.json()
    total = body.get("total", len(body.get("cities", [])))  # an older worker answers every city, unpaged
    if total != result.stations:
        result.note += f"; /api/cities lists {total} stations"
    timings = {
        "cities_page": _warm_ms(f"{base}/api/cities?limit=50&offset={max(0, total // 2)}"),
        "cities_search": _warm_ms(f"{base}/api/cities?limit=50&q=ber"),
        "cities_by_age": _warm_ms(f"{base}/api/cities?limit=50&sort=age&order=desc"),
        "metrics": _warm_ms(f"{base}/metrics"),
        "network": _warm_ms(f"{base}/api/network"),
        "map": _warm_ms(f"{base}/api/map?quantity=temp"),
    }
    result.timings = {k: [round(v, 1) for v in vs] for k, vs in timings.items()}
    result.cities_page_ms = round(statistics.median(timings["cities_page"]), 1)
    result.cities_search_ms = round(statistics.median(timings["cities_search"]), 1)
    result.cities_by_age_ms = round(statistics.median(timings["cities_by_age"]), 1)
    result.metrics_ms = round(statistics.median(timings["metrics"]), 1)


def round_ratios(this_round: list[Scale]) -> list[tuple[Scale, float]]:
    """Each correct run's CPU per event over that of the round's smallest station count (none when that run
    failed: a failed run's CPU figure means nothing)."""
    base = min(this_round, key=lambda r: r.stations)
    if not base.ok or not base.cpu_us_per_event:
        return []
    return [(r, r.cpu_us_per_event / base.cpu_us_per_event) for r in this_round if r.ok]


def count_ratios(results: list[Scale], stations: int) -> list[float]:
    """The ratios of ``stations``' runs to their rounds' smallest count (see :func:`round_ratios`), unrounded."""
    rounds = sorted({r.repeat for r in results})
    return [ratio for rnd in rounds for r, ratio in round_ratios([r for r in results if r.repeat == rnd])
            if r.stations == stations]  # fmt: skip


def summarize(results: list[Scale], scales: list[int]) -> list[dict[str, Any]]:
    """Per station count: the median CPU per event of its correct runs, and the median and range of the ratios of
    the rounds whose run and base run were both correct (None where there are none)."""
    out: list[dict[str, Any]] = []
    for stations in scales:
        runs = [r for r in results if r.stations == stations and r.ok]
        ratios = [round(x, 2) for x in count_ratios(results, stations)]
        out.append({
            "stations": stations, "runs_ok": len(runs), "runs": sum(r.stations == stations for r in results),
            "cpu_us_per_event": round(statistics.median(r.cpu_us_per_event for r in runs), 1) if runs else None,
            "ratio": round(statistics.median(ratios), 2) if ratios else None,
            "ratio_low": min(ratios, default=None), "ratio_high": max(ratios, default=None),
            "peak_rss_mb": max((r.peak_rss_mb for r in runs), default=None),
        })  # fmt: skip
    return out


#: the key-scale targets: (station count, what, the summary's or a run's figure, the largest allowed value);
#: the ratio is to the smallest count of the run, which the target means to be 50 stations
TARGETS = (
    (100_000, "CPU per event vs 50 stations", "ratio", 1.3),
    (100_000, "peak RSS, MB", "peak_rss_mb", 350.0),
    (50, "idle CPU, % of a core", "idle_cpu_pct", 1.0),
    (100_000, "idle CPU, % of a core", "idle_cpu_pct", 3.0),
    (100_000, "/api/cities page, ms", "cities_page_ms", 100.0),
    (100_000, "/metrics, ms", "metrics_ms", 200.0),
)


def check_targets(results: list[Scale]) -> list[dict[str, Any]]:
    """Each target whose station count ran correctly: the value (the median of the rounds' ratios, the largest
    RSS, the median of the runs for the rest), the range over the runs, and whether the value is within the
    target (judged unrounded: a ratio of 1.304 is over 1.3)."""
    out = []
    smallest = min((r.stations for r in results), default=None)
    for stations, what, name, limit in TARGETS:
        if name == "ratio":
            values = count_ratios(results, stations) if smallest == 50 else []
        else:
            values = [getattr(r, name) for r in results if r.stations == stations and r.ok]
        if not values:
            continue
        value = max(values) if name == "peak_rss_mb" else statistics.median(values)
        out.append({"stations": stations, "target": what, "limit": limit, "value": round(value, 3),
                    "low": round(min(values), 3), "high": round(max(values), 3), "met": value <= limit})  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--stations", default="50,5000,50000,100000")
    parser.add_argument("--idle", type=float, default=60.0, help="Seconds of idle CPU measured after the drain.")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--tree", type=Path, help="Run the worker of this checkout instead (a before/after run).")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="Sample the worker with py-spy during the drain (slows it; benchmarks/results/profile-*).",
    )
    parser.add_argument(
        "--repeat", type=int, default=1,
        help="Rounds over the station counts; a run's ratio is to the smallest count's run of its round, and the "
        "summary gives the median and range of each count's ratios (the machine's speed drifts over minutes).",
    )  # fmt: skip
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be 1 or more")
    scales = [int(s) for s in args.stations.split(",")]
    results: list[Scale] = []
    for repeat in range(1, args.repeat + 1):
        this_round: list[Scale] = []
        for stations in scales:
            r = run_scale(stations, args.events, args.idle, args.timeout, args.tree, args.profile)
            r.repeat = repeat
            this_round.append(r)
            print(f"  {stations:>7} stations: {r.cpu_us_per_event:8.1f} us/ev  rss {r.peak_rss_mb:6.1f} MB  idle "
                  f"{r.idle_cpu_pct:5.2f} %  /api/cities {r.cities_page_ms} ms (first {r.cities_first_ms})  "
                  f"/metrics {r.metrics_ms} ms  recovery {r.recovery_s} s  {'ok' if r.ok else 'FAILED'} {r.note} "
                  f"{r.profile}", file=sys.stderr)  # fmt: skip
        for r, ratio in round_ratios(this_round):
            r.timings["x_cpu_per_event"] = [round(ratio, 2)]
        results += this_round
    summary = summarize(results, scales)
    if args.repeat > 1:
        for row in summary:
            print(f"  {row['stations']:>7} stations, {row['runs_ok']} of {row['runs']} runs correct: median "
                  f"{row['cpu_us_per_event']} us/ev, ratio {row['ratio']}x ({row['ratio_low']}-{row['ratio_high']})",
                  file=sys.stderr)  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"keyscale-{stamp}.json"
    tree = args.tree or ROOT
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    doc = {"mode": "keyscale", "at": stamp, "events": args.events, "tree": str(tree), "commit": commit_of(tree),
           "machine": machine, "summary": summary, "targets": check_targets(results),
           "runs": [r.__dict__ for r in results]}  # fmt: skip
    out.write_text(json.dumps(doc, indent=2))
    for t in doc["targets"]:
        print(f"target: {t['target']} at {t['stations']:,} stations <= {t['limit']:g}: {t['value']:g} (runs "
              f"{t['low']:g}-{t['high']:g}): {'met' if t['met'] else 'NOT met'}", file=sys.stderr)  # fmt: skip
    print(f"results: {out}", file=sys.stderr)
    sys.exit(0 if all(r.ok for r in results) else 1)


if __name__ == "__main__":
    main()
