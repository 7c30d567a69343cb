"""`weatherstream produce --source owm` against a fake API on 127.0.0.1, into the real broker."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.fake_owm import API_KEY, FakeOwm
from tests.integration.conftest import cli, read_topic, settings_env
from weatherstream.settings import Settings


def test_owm_source_polls_into_kafka_and_never_shows_the_key(settings: Settings, tmp_path: Path) -> None:
    key_file = tmp_path / "owm.key"
    key_file.write_text(API_KEY + "\n")
    cities = tmp_path / "cities.txt"
    cities.write_text("# ids, one per line\n2950159\n404404\n503503\n")
    with FakeOwm(1_795_000_000) as fake:
        fake.rate_limit_next = 1  # the very first call is rate limited
        env = settings_env(settings, WEATHERSTREAM_OWM_API_KEY_FILE=str(key_file),
                           WEATHERSTREAM_OWM_BASE_URL=fake.url)  # fmt: skip
        done = subprocess.run(
            cli("--log-level", "DEBUG", "produce", "--source", "owm", "--cities-file", str(cities),
                "--city", "2643743", "--period", "2", "--rounds", "2"),
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert API_KEY not in output
    assert "appid=***" in output  # urllib3's request log was there, masked
    assert "404404" in output and "disabled" in output  # the 404 city was named and dropped
    assert "rate limit" in output and "backing off" in output
    # Berlin, flaky (503 twice then 200) and London once each; the second round returned the same dt.
    assert "sent 3, failed 0" in output and "unchanged 3" in output and "cities not found 1" in output
    raw = read_topic(settings, settings.topic_raw, expect=3, settle_s=1)
    assert sorted(r.key for r in raw) == [b"2643743", b"2950159", b"503503"]
    assert {dict(r.headers)["source"] for r in raw} == {b"owm"}


def test_rejected_key_stops_with_a_clear_message(settings: Settings) -> None:
    with FakeOwm(1_795_000_000) as fake:
        env = settings_env(settings, WEATHERSTREAM_OWM_API_KEY="not-the-right-key-123",
                           WEATHERSTREAM_OWM_BASE_URL=fake.url)  # fmt: skip
        done = subprocess.run(cli("--log-level", "DEBUG", "produce", "--source", "owm", "--city", "2950159"),
                              env=env, capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 1
    assert "rejected the API key" in output and "WEATHERSTREAM_OWM_API_KEY" in output
    assert "not-the-right-key-123" not in output
    assert "Traceback" not in output


def test_missing_key_is_a_clear_error(settings: Settings) -> None:
    done = subprocess.run(cli("produce", "--source", "owm", "--city", "2950159"), env=settings_env(settings),
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1
    assert "no OpenWeatherMap API key" in done.stderr
