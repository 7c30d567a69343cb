"""Alerts through the real broker and worker: detection quality, restart safety, the subscriber CLI."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from models import Alert
from tests.integration.conftest import cli, read_topic, settings_env
from weatherstream.core.normalize import InvalidPayload, normalize
from weatherstream.settings import Settings
from weatherstream.sources.synthetic import SyntheticConfig, generate, plan_anomalies
from weatherstream.topics import create_namespace_topics, namespace_topic_counts


def _processed(settings: Settings) -> int:
    """Observations the pipeline has handled (it sends each one after judging it and sending its alerts)."""
    counts = asyncio.run(namespace_topic_counts(settings))
    return counts.get(settings.topic_observations, {}).get("messages", 0)


def _valid(records: list) -> int:  # type: ignore[type-arg]
    """How many of ``records`` pass validation (the rest become dead letters, not observations)."""
    count = 0
    for r in records:
        try:
            normalize(r.payload, now=time.time())
            count += 1
        except InvalidPayload:
            pass
    return count


def _wait_processed(settings: Settings, count: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while _processed(settings) < count:
        assert time.monotonic() < deadline, f"only {_processed(settings)} of {count} observations processed"
        time.sleep(1)


def test_detection_quality_over_100_incidents_in_50_cities(settings: Settings, start_worker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    labels = tmp_path / "labels.jsonl"
    start_worker()
    done = subprocess.run(
        cli("produce", "--source", "synthetic", "--cities", "50", "--count", "22000", "--anomalies", "125",
            "--labels", str(labels), "--start", "2026-01-01T00:00:00Z"),
        env=settings_env(settings), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [orjson.loads(line) for line in labels.read_text().splitlines()]
    expected_alerts = [r for r in rows if r["expected"] == "alert"]
    assert len(expected_alerts) >= 100 and len({r["city_id"] for r in rows}) >= 40
    invalid = sum(1 for r in rows if r["expected"] == "deadletter")
    _wait_processed(settings, 22000 - invalid)
    scored = subprocess.run(
        cli("alerts", "score", "--labels", str(labels), "--min-recall", "0.95", "--min-precision", "0.90", "--json"),
        env=settings_env(settings), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    figures = orjson.loads(scored.stdout)
    print(f"\ndetection over {figures['incidents']} injected incidents: recall {figures['recall']:.3f}, "
          f"precision {figures['precision']:.3f} ({figures['alert_incidents']} alert incidents)")  # fmt: skip
    assert scored.returncode == 0, scored.stdout + scored.stderr
    assert figures["incidents"] == len(expected_alerts)


def test_restart_keeps_baselines_and_open_incidents(settings: Settings, start_worker) -> None:  # type: ignore[no-untyped-def]
    cfg = SyntheticConfig(cities=8, count=5600, anomalies=14, seed=5, start=1_767_225_600.0)
    labels = plan_anomalies(cfg)
    drop = next(lb for lb in labels if lb.kind == "pressure_drop")
    records = list(generate(cfg))
    # Cut the stream two hours into a pressure drop, while its incident is open.
    cut = next(i for i, r in enumerate(records) if r.city_id == drop.city_id and r.event_time == drop.start + 7200)

    async def send(part: list) -> None:  # type: ignore[type-arg]
        await create_namespace_topics(settings)
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=5)
        await producer.start()
        try:
            for r in part:
                await producer.send(settings.topic_raw, r.payload, key=str(r.city_id).encode(), headers=r.headers())
            await producer.flush()
        finally:
            await producer.stop()

    worker = start_worker(name="w")
    asyncio.run(send(records[: cut + 1]))
    _wait_processed(settings, _valid(records[: cut + 1]))
    before = [Alert.loads(r.value) for r in read_topic(settings, settings.topic_alerts, expect=1, settle_s=2)]
    running = [a for a in before if a.city_id == drop.city_id and a.kind == "pressure_drop"]
    assert [a.state for a in running] == ["open"], "the pressure drop incident should be open at the cut"
    worker.stop()
    restarted = start_worker(name="w2", data="w")
    asyncio.run(send(records[cut + 1 :]))
    _wait_processed(settings, _valid(records))
    alerts = [Alert.loads(r.value) for r in read_topic(settings, settings.topic_alerts, expect=len(before) + 1)]
    opens = Counter(a.alert_id for a in alerts if a.state == "open")
    assert max(opens.values()) == 1, [k for k, v in opens.items() if v > 1]  # no second open for any incident
    same = [a for a in alerts if a.alert_id == running[0].alert_id]
    assert same[0].state == "open" and same[-1].state == "resolved"
    # Baselines survived: statistical alerts for incidents after the restart need no new warm-up.
    after = [lb for lb in labels if lb.start > drop.start + 7200 and lb.kind in ("heat_spike", "cold_snap")]
    for lb in after:
        assert any(a.city_id == lb.city_id and a.kind in ("temp_high", "temp_low") and
                   lb.start - 3600 <= a.incident_start <= lb.end + 7200 for a in alerts), lb.incident_id  # fmt: skip
    restarted.assert_healthy()


def test_alerts_tail_prints_and_filters(settings: Settings, start_worker) -> None:  # type: ignore[no-untyped-def]
    start_worker()
    now = int(time.time())

    async def send() -> None:
        await create_namespace_topics(settings)
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
        await producer.start()
        try:
            for i, temp in enumerate([30.0, 41.0, 46.0, 30.0, 30.0]):
                body = {"id": 292223, "dt": now - 3000 + i * 600, "name": "Dubai <b>", "main": {"temp": temp}}
                await producer.send_and_wait(settings.topic_raw, orjson.dumps(body), key=b"292223")
        finally:
            await producer.stop()

    asyncio.run(send())
    read_topic(settings, settings.topic_alerts, expect=3, settle_s=1)
    tail = cli("alerts", "tail", "--from-beginning", "--kind", "heat", "--max", "3", "--timeout", "30")
    out = subprocess.run(tail, env=settings_env(settings), capture_output=True, text=True, timeout=60, check=False)
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and len(lines) == 3, out.stdout + out.stderr
    assert ["OPEN", "UPDATE", "RESOLVED"] == [line.split()[2] for line in lines]
    assert "Dubai <b> (292223)" in lines[0] and "critical" in lines[1]
    as_json = subprocess.run(cli("alerts", "tail", "--from-beginning", "--city", "292223", "--json", "--max", "1",
                                 "--timeout", "30"), env=settings_env(settings), capture_output=True, text=True,
                             timeout=60, check=False)  # fmt: skip
    assert orjson.loads(as_json.stdout.splitlines()[0])["alert_id"] == f"292223:heat:{now - 3000 + 600}"
    none = subprocess.run(cli("alerts", "tail", "--city", "1", "--timeout", "2"), env=settings_env(settings),
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert none.returncode == 0 and none.stdout == ""
