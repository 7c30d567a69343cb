"""``weatherstream demo``: the whole pipeline on built-in data, on the local stack, in one command.

It starts from a clean namespace ``demo`` (topics, keyspace and the worker's local state are recreated),
starts one worker, then sends three days of synthetic weather for 50 real cities with injected anomalies
(the first two days are the detectors' warm-up) at accelerated event time, 200 events/s, so the last
observations, which are "now", are sent after about two minutes. Then it says where to look.
Ctrl-C stops everything it started.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

from weatherstream.db import connect_settings
from weatherstream.errors import WeatherStreamError
from weatherstream.settings import Settings
from weatherstream.sinks.schema import migrate
from weatherstream.topics import create_namespace_topics, delete_namespace_topics

STEP_S = 600  # event-time spacing of each city's observations


class DemoError(WeatherStreamError):
    """The demo could not start."""


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "weatherstream", *args]


def _wait_ready(port: int, worker: subprocess.Popen[bytes], log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise DemoError(f"the worker exited with {worker.returncode}; its log: {log}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise DemoError(f"the worker was not ready after {timeout_s:.0f} s; its log: {log}")


def run(settings: Settings, say: Callable[[str], None], cities: int = 50, hours: float = 72,
        rate: float = 200.0, anomalies: int = 40) -> None:  # fmt: skip
    """Run the demo until Ctrl-C (or until the worker stops)."""
    work = Path(".demo").resolve()
    say(f"resetting namespace {settings.namespace} and keyspace {settings.keyspace} ...")
    asyncio.run(delete_namespace_topics(settings))
    cluster, session = connect_settings(settings)
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.keyspace}", timeout=120)
        migrate(session, settings)
    finally:
        cluster.shutdown()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    asyncio.run(create_namespace_topics(settings))

    env_settings = {
        "WEATHERSTREAM_NAMESPACE": settings.namespace,
        "WEATHERSTREAM_KEYSPACE": settings.keyspace,
        "WEATHERSTREAM_DATA_DIR": str(work / "data"),
        "WEATHERSTREAM_WEB_PORT": str(settings.web_port),
    }
    env = {**os.environ, **env_settings}
    worker_log = work / "worker.log"
    producer_log = work / "producer.log"
    children: list[subprocess.Popen[bytes]] = []

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # a kill or a closed terminal stops the demo's children too, like Ctrl-C

    # Ctrl-C must work even when the demo was started with SIGINT ignored (a shell's background job
    # passes that on, and Python then leaves it ignored), and a kill or a closed terminal acts the same.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    try:
        with worker_log.open("wb") as log:
            worker = subprocess.Popen(_command("worker", "--loglevel", "warning"), stdout=log, stderr=subprocess.STDOUT,
                                      env=env, start_new_session=True)  # fmt: skip
        children.append(worker)
        say(f"starting a worker (log: {worker_log}) ...")
        _wait_ready(settings.web_port, worker, worker_log)
        count = int(cities * hours * 3600 / STEP_S)
        start = int(time.time() // STEP_S * STEP_S - hours * 3600)
        with producer_log.open("wb") as log:
            producer = subprocess.Popen(
                _command("produce", "--source", "synthetic", "--cities", str(cities), "--count", str(count),
                         "--start", str(start), "--step", str(STEP_S), "--anomalies", str(anomalies),
                         "--rate", str(rate), "--labels", str(work / "labels.jsonl")),
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )  # fmt: skip
        children.append(producer)
        url = f"http://127.0.0.1:{settings.web_port}/"
        cql = f"SELECT city_name, observed_at, temp_c FROM {settings.keyspace}.latest_by_city WHERE bucket = 0"  # noqa: S608
        say(
            f"\nweatherstream demo is running: {cities} cities, {count:,} observations over {hours:.0f} h of "
            f"event time, sent at {rate:.0f}/s (about {count / rate / 60:.0f} min), {anomalies} injected anomalies.\n\n"
            f"  dashboard:   {url} (network overview; also {url}map and {url}alerts)\n"
            f"  alerts:      WEATHERSTREAM_NAMESPACE={settings.namespace} .venv/bin/weatherstream alerts tail "
            "--from-beginning\n"
            f'  Cassandra:   .venv/bin/cqlsh 127.0.0.1 {settings.cassandra_port} -e "{cql}"\n'
            f"  metrics:     {url}metrics\n"
            f"  logs:        {worker_log}, {producer_log}\n\n"
            "Ctrl-C stops the demo (the local stack keeps running: `make stack-down` stops it)."
        )
        while worker.poll() is None:
            if producer.poll() not in (None, 0):
                tail = producer_log.read_text(errors="replace").strip().splitlines()[-3:]
                raise DemoError("the synthetic producer failed: " + " ".join(line.strip() for line in tail))
            time.sleep(1)
        raise DemoError(f"the worker stopped with {worker.returncode}; its log: {worker_log}")
    except KeyboardInterrupt:
        say("\nstopping the demo ...")
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for child in reversed(children):
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"pid {child.pid} did not stop within 30 s of SIGTERM; killing it")
                child.kill()
                child.wait()
