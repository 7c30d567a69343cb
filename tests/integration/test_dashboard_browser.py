"""The dashboard in a real browser (headless Debian Chromium) against a real worker, and the Prometheus
endpoint checked by Prometheus' own ``promtool``. `make test` installs both (Debian packages
``chromium`` and ``prometheus``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import requests

from tests.integration.conftest import cli, settings_env
from tests.integration.test_sink_worker import count_rows, wait_for
from weatherstream.settings import Settings
from weatherstream.sources.synthetic import SyntheticConfig, generate

SCRIPT_NAME = "<script>alert(1)</script>"
HOURS = 10


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: `make test` installs it (Debian package {package})"
    return path


def chromium(tmp_path: Path, url: str, *args: str) -> str:
    """Load ``url`` in headless Chromium and let its scripts run; returns what Chromium printed (with
    ``--dump-dom``: the DOM the scripts produced)."""
    profile = tmp_path / "chromium-profile"
    done = subprocess.run(
        [tool("chromium", "chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--window-size=1280,900", "--virtual-time-budget=10000", *args, url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def send_cities(settings: Settings, tmp_path: Path) -> tuple[dict[int, str], int]:
    """Three cities over ``HOURS`` hours of recent event time; one of them is named like a script tag."""
    step = 600
    count = 3 * HOURS * 3600 // step
    start = float(int(time.time()) // step * step - HOURS * 3600)
    names: dict[int, str] = {}
    lines = []
    for record in generate(SyntheticConfig(cities=3, count=count, seed=9, start=start)):
        body: dict[str, Any] = orjson.loads(record.payload)
        if not names or body["id"] == next(iter(names)):
            body["name"] = SCRIPT_NAME
        names[body["id"]] = body["name"]
        lines.append(orjson.dumps(body))
    path = tmp_path / "cities.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    done = subprocess.run(cli("produce", "--source", "replay", "--file", str(path)), env=settings_env(settings),
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return names, len(lines)


def test_dashboard_in_headless_chromium(settings: Settings, start_worker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    worker = start_worker()
    names, sent = send_cities(settings, tmp_path)
    wait_for("observation rows", lambda: count_rows(settings, "observations_by_city_day"), sent)
    script_city = next(city for city, name in names.items() if name == SCRIPT_NAME)
    base = f"http://127.0.0.1:{worker.web_port}"
    aggregates = requests.get(f"{base}/api/cities/{script_city}/aggregates?kind=tumbling-1h", timeout=30).json()
    assert sum(a["final"] for a in aggregates["aggregates"]) >= HOURS - 2, aggregates

    home = chromium(tmp_path, f"{base}/", "--dump-dom")
    rows = home.count("<tr")
    assert rows >= 1 + len(names), home[-3000:]  # a header row and one row per city
    for name in names.values():
        if name != SCRIPT_NAME:
            assert name in home
    # The script-tag name is text: escaped in the DOM, never an element the browser would run.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in home
    assert SCRIPT_NAME not in home

    screenshot = tmp_path / "city.png"
    page = chromium(tmp_path, f"{base}/city/{script_city}", "--dump-dom")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and SCRIPT_NAME not in page
    chart = page[page.index('id="chart-temp"') :]
    chart = chart[: chart.index("</svg>")]
    line = re.search(r'<path d="([^"]+)" class="line">', chart)
    assert line, chart
    assert line.group(1).count(" L") >= HOURS - 3, chart  # a line through the hourly windows
    chromium(tmp_path, f"{base}/city/{script_city}", f"--screenshot={screenshot}")
    image = screenshot.read_bytes()
    assert image[:8] == b"\x89PNG\r\n\x1a\n" and len(image) > 10_000, f"screenshot {screenshot}: {len(image)} bytes"
    print(f"dashboard screenshot: {screenshot}")


def test_metrics_pass_promtool_check(settings: Settings, start_worker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    worker = start_worker()
    _, sent = send_cities(settings, tmp_path)
    wait_for("observation rows", lambda: count_rows(settings, "observations_by_city_day"), sent)
    text = requests.get(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=30).text
    families = ("weatherstream_events_in_total", "weatherstream_sink_write_seconds_bucket",
                "weatherstream_stations", "weatherstream_consumer_lag_messages")  # fmt: skip
    for family in families:
        assert family in text, family
    done = subprocess.run([tool("promtool", "prometheus"), "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
