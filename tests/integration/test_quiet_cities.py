"""What happens without input, through real workers: ticks by due time (windows closed by the wall clock,
silent stations) also after a restart, and the upgrade path from state of an older format."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from models import Aggregate, Alert
from tests.integration.conftest import cli, read_topic, settings_env
from weatherstream.settings import Settings
from weatherstream.stateadmin import changelog_topic
from weatherstream.topics import create_changelog_topics, create_namespace_topics

CITIES = (2950159, 2643743, 5128581)
#: one-minute windows, no lateness, a city idle after 15 s: windows close by the wall clock within a minute
QUICK = {"WEATHERSTREAM_WINDOW_TUMBLING_S": "60", "WEATHERSTREAM_WINDOW_HOPPING_SIZE_S": "0",
         "WEATHERSTREAM_WINDOW_LOCAL_DAY": "false", "WEATHERSTREAM_ALLOWED_LATENESS_S": "0",
         "WEATHERSTREAM_IDLE_TIMEOUT_S": "15", "WEATHERSTREAM_TICK_INTERVAL_S": "1"}  # fmt: skip


def send(settings: Settings, messages: list[tuple[bytes, bytes]], *, topic: str | None = None) -> None:
    async def go() -> None:
        await create_namespace_topics(settings)
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            for key, value in messages:
                await producer.send_and_wait(topic or settings.topic_raw, value, key=key, headers=[("source", b"test")])
        finally:
            await producer.stop()

    asyncio.run(go())


def observations(now: float) -> list[tuple[bytes, bytes]]:
    """Four observations 5 s apart for each city, the last 5 s ago (a cadence of 5 s: silent after 15 s)."""
    out = []
    for city in CITIES:
        for k in range(4):
            doc = {"id": city, "dt": int(now) - 20 + 5 * k, "name": f"city {city}", "main": {"temp": 10.0 + k}}
            out.append((str(city).encode(), orjson.dumps(doc)))
    return out


def test_quiet_cities_get_their_ticks_by_due_time_also_after_a_restart(settings: Settings, start_worker) -> None:  # type: ignore[no-untyped-def]
    """A worker killed right after the input came: the next one rebuilds its index of due cities from the
    table (its own RocksDB folder for one city set, the changelog for a worker that has none) and ticks them:
    every city's minute windows close by the wall clock and its silence becomes an alert."""
    worker = start_worker(name="a", **QUICK)
    sent = time.time()
    send(settings, observations(sent))
    read_topic(settings, settings.topic_observations, expect=len(CITIES) * 4, timeout_s=120)
    os.killpg(worker.proc.pid, signal.SIGKILL)  # before any city fell quiet (15 s)
    worker.proc.wait()
    assert time.time() - sent < 15, "too slow to kill the worker before its cities fell quiet"
    restarted = start_worker(name="b", **QUICK)  # a new RocksDB folder: everything from the changelog

    def final(r: object) -> tuple[int, str]:
        agg = Aggregate.loads(r.value)  # type: ignore[attr-defined]
        return agg.city_id, agg.window_id

    windows = {(city, f"tumbling-1m:{(int(sent) - 20 + 5 * k) // 60 * 60}") for city in CITIES for k in range(4)}
    got = read_topic(settings, settings.topic_aggregates, expect=len(windows), timeout_s=180, settle_s=2,
                     distinct=final)  # fmt: skip
    aggregates = [Aggregate.loads(r.value) for r in got]
    assert {(a.city_id, a.window_id) for a in aggregates} == windows
    assert sum(a.count for a in aggregates if a.revision == 1) >= len(CITIES) * 4
    # The window of each city's last observation can only close by the wall clock (an earlier one closes by
    # data when a minute starts between two observations).
    last = f"tumbling-1m:{(int(sent) - 5) // 60 * 60}"
    by_tick = {a.city_id for a in aggregates if a.window_id == last and a.watermark_passed_at is None}
    assert by_tick == set(CITIES), "closed by idle ticks, not by data"
    alerts = [Alert.loads(r.value) for r in read_topic(settings, settings.topic_alerts, expect=len(CITIES),
                                                        timeout_s=120, settle_s=2)]  # fmt: skip
    silent = {a.city_id for a in alerts if a.kind == "silent_station" and a.state == "open"}
    assert silent == set(CITIES)
    restarted.assert_healthy()


def test_state_of_an_older_format_is_refused_until_state_reset_rebuilds_it(settings: Settings, start_worker,  # type: ignore[no-untyped-def]
                                                                          tmp_path: Path) -> None:  # fmt: skip
    old = changelog_topic(settings, "city_state")  # what a worker of state format 1 left behind
    asyncio.run(create_changelog_topics(settings, [old]))
    send(settings, [(b"2950159", b'{"windows": {"last_offset": 3}}')], topic=old)
    send(settings, observations(time.time()))
    env = settings_env(settings, WEATHERSTREAM_DATA_DIR=str(tmp_path / "refused-data"))
    refused = subprocess.run(cli("worker"), env=env, capture_output=True, text=True, timeout=120, check=False)
    said = " ".join(refused.stderr.split())  # the message may be wrapped to the terminal's width
    assert refused.returncode != 0
    assert "older format" in said and "weatherstream state reset" in said, refused.stderr
    assert "Traceback" not in said

    reset = subprocess.run(cli("state", "reset", "--yes"), env=env, capture_output=True, text=True, timeout=120,
                           check=False)  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    assert old in reset.stdout and f"from {len(CITIES) * 4} messages" in reset.stdout
    worker = start_worker()
    read_topic(settings, settings.topic_observations, expect=len(CITIES) * 4, timeout_s=120)

    running = subprocess.run(cli("state", "reset", "--yes"), env=env, capture_output=True, text=True, timeout=120,
                             check=False)  # fmt: skip
    assert running.returncode != 0 and "stop them all" in running.stderr, running.stderr
    worker.stop()
    again = subprocess.run(cli("state", "reset", "--yes"), env=env, capture_output=True, text=True, timeout=120,
                           check=False)  # fmt: skip
    assert again.returncode == 0 and changelog_topic(settings, "station_state") in again.stdout, again.stderr
    rebuilt = start_worker(name="rebuilt")
    # The state is rebuilt from the start of the raw topic: every observation is sent again (the sink overwrites).
    read_topic(settings, settings.topic_observations, expect=2 * len(CITIES) * 4, timeout_s=120)
    rebuilt.assert_healthy()
