"""Ingestion through the real broker and a running worker process (issue: ingestion, must-show 1-3)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from models import DeadLetter, Observation
from tests.corpus import VALID, cases
from tests.integration.conftest import cli, read_topic, settings_env
from weatherstream.settings import Settings
from weatherstream.topics import create_namespace_topics


def _send(settings: Settings, messages: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]) -> None:
    async def go() -> None:
        await create_namespace_topics(settings)
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", enable_idempotence=True,
                                    max_request_size=4 * 1024 * 1024)  # fmt: skip
        await producer.start()
        try:
            for key, value, headers in messages:
                await producer.send_and_wait(settings.topic_raw, value, key=key, headers=headers)
        finally:
            await producer.stop()

    asyncio.run(go())


def test_hostile_corpus_each_input_has_exactly_one_outcome(settings: Settings, start_worker) -> None:  # type: ignore[no-untyped-def]
    corpus = cases(time.time())
    worker = start_worker()
    _send(settings, [(c.key, c.value, c.headers) for c in corpus])

    valid = [c for c in corpus if c.expected == VALID]
    repeats = [c for c in corpus if c.expected == "duplicate"]  # counted, not dead-lettered
    bad = [c for c in corpus if c.expected not in (VALID, "duplicate")]
    observations = read_topic(settings, settings.topic_observations, expect=len(valid))
    letters = read_topic(settings, settings.topic_deadletter, expect=len(bad))
    assert worker.metric("weatherstream_repeats_total", reason="duplicate") == len(repeats) > 0

    got_obs = Counter(Observation.loads(r.value).payload_json for r in observations)
    assert got_obs == Counter((c.value or b"").decode() for c in valid)
    assert {r.key for r in observations} == {str(orjson.loads(c.value or b"")["id"]).encode() for c in valid}

    got_letters = Counter()
    for r in letters:
        letter = DeadLetter.from_message(r.key, r.value or b"", r.headers)
        assert letter.topic == settings.topic_raw and letter.offset >= 0 and letter.message
        got_letters[(letter.payload, letter.reason.value)] += 1
    assert got_letters == Counter((c.value or b"", c.expected) for c in bad)
    worker.assert_healthy()


def test_synthetic_10000_gives_10000_minus_injected_invalid(settings: Settings, start_worker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    labels = tmp_path / "labels.jsonl"
    start_worker()
    done = subprocess.run(
        cli("produce", "--source", "synthetic", "--cities", "50", "--count", "10000", "--anomalies", "35",
            "--labels", str(labels)),
        env=settings_env(settings), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "sent 10000, failed 0" in done.stderr
    injected_invalid = sum(1 for line in labels.read_text().splitlines() if '"expected":"deadletter"' in line)
    assert injected_invalid > 0
    observations = read_topic(settings, settings.topic_observations, expect=10_000 - injected_invalid, timeout_s=240)
    assert len(observations) == 10_000 - injected_invalid
    letters = read_topic(settings, settings.topic_deadletter, expect=injected_invalid, settle_s=1)
    assert Counter(dict(r.headers)["ws-reason"] for r in letters) == {b"out_of_range": injected_invalid}
    assert len({Observation.loads(r.value).city_id for r in observations}) == 50


def test_real_dataset_replays_end_to_end(settings: Settings, start_worker) -> None:  # type: ignore[no-untyped-def]
    worker = start_worker()
    done = subprocess.run(
        cli("produce", "--source", "replay", "--dataset", "pvlib-greensboro"),
        env=settings_env(settings), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "sent 8760, failed 0" in done.stderr
    observations = read_topic(settings, settings.topic_observations, expect=8760, timeout_s=240)
    decoded = sorted((Observation.loads(r.value) for r in observations), key=lambda o: o.observed_at)
    assert len(decoded) == 8760
    assert {o.city_id for o in decoded} == {4469146}
    assert decoded[0].observed_at_utc.isoformat() == "2023-01-01T06:00:00+00:00" and decoded[0].temp_c == 10.0
    assert all(o.source == "replay" for o in decoded)
    # Greensboro is warmer in July than in January.
    july = [o.temp_c for o in decoded if o.observed_at_utc.month == 7 and o.temp_c is not None]
    january = [o.temp_c for o in decoded if o.observed_at_utc.month == 1 and o.temp_c is not None]
    assert sum(july) / len(july) > sum(january) / len(january) + 15
    worker.assert_healthy()

    # Replaying the same file again adds no observation and no dead letter: repeats within the 48 h correction
    # horizon behind the city's newest observation are duplicates, older ones are too late to tell; both are
    # counted.
    again = subprocess.run(
        cli("produce", "--source", "replay", "--dataset", "pvlib-greensboro"),
        env=settings_env(settings), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    deadline = time.monotonic() + 240
    while worker.metric("weatherstream_repeats_total", reason="too_late") < 8760 - 49:
        assert time.monotonic() < deadline, "the worker did not count the repeated replay in time"
        time.sleep(1)
    assert worker.metric("weatherstream_repeats_total", reason="duplicate") == 49
    assert worker.metric("weatherstream_repeats_total", reason="too_late") == 8760 - 49
    assert read_topic(settings, settings.topic_deadletter, expect=0, settle_s=3) == []
    assert len(read_topic(settings, settings.topic_observations, expect=8760, settle_s=1)) == 8760
