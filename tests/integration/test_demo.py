"""`weatherstream demo` (what `make demo` runs once the stack is up): a dashboard with live data and alerts
within 3 minutes, and Ctrl-C stops everything it started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import requests

from tests.integration.conftest import cli, free_port, settings_env
from weatherstream.settings import Settings

BUDGET_S = 180


def processes_of(namespace: str) -> list[int]:
    """Processes (other than this one) whose environment names ``namespace``."""
    found = []
    marker = f"WEATHERSTREAM_NAMESPACE={namespace}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def moved(newest: list[float]) -> bool:
    """The newest observation's event time moved on by more than a minute while one watched."""
    return len(newest) > 1 and newest[-1] > newest[0] + 60


def test_demo_shows_live_data_and_alerts_within_three_minutes(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    env = settings_env(settings, WEATHERSTREAM_WEB_PORT=str(port))
    out = (tmp_path / "demo.out").open("wb")
    started = time.monotonic()
    # Started with SIGINT ignored, as a shell's background job (and so CI) starts it: Ctrl-C must still work.
    demo = subprocess.Popen(cli("demo", "--namespace", settings.namespace, "--keyspace", settings.keyspace),
                            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    cities: list[dict] = []  # type: ignore[type-arg]
    alerts: list[dict] = []  # type: ignore[type-arg]
    newest: list[float] = []  # the newest observation's event time at each poll that listed cities
    try:
        while time.monotonic() - started < BUDGET_S and not (len(cities) == 50 and alerts and moved(newest)):
            assert demo.poll() is None, (tmp_path / "demo.out").read_text()[-3000:]
            time.sleep(3)
            try:
                cities = requests.get(f"{base}/api/cities", timeout=10).json().get("cities", [])
                if cities:
                    newest.append(time.time() - min(c["age_s"] for c in cities if c["age_s"] is not None))
                for city in cities if not alerts else []:
                    alerts = requests.get(f"{base}/api/alerts?city={city['city_id']}", timeout=10).json()["alerts"]
                    if alerts:
                        break
            except (requests.RequestException, ValueError):
                continue  # the worker is still starting
        took = time.monotonic() - started
        said = (tmp_path / "demo.out").read_text()
        assert len(cities) == 50, f"{len(cities)} cities after {took:.0f} s:\n{said[-3000:]}"
        assert alerts, f"no alerts after {took:.0f} s:\n{said[-3000:]}"
        assert f"dashboard:   {base}/" in said and "alerts tail" in said and "cqlsh" in said, said
        assert moved(newest), "live data: the newest observation moves on while one watches"
        assert requests.get(f"{base}/", timeout=10).status_code == 200
        print(f"demo: 50 cities and {len(alerts)}+ alerts on the dashboard after {took:.0f} s")
        assert processes_of(settings.namespace), "the demo's worker and producer run with its namespace"
    finally:
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            demo.wait(timeout=90)
        except subprocess.TimeoutExpired:
            for pid in [demo.pid, *processes_of(settings.namespace)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            worker_log = tmp_path / ".demo" / "worker.log"
            raise AssertionError(
                f"the demo did not exit within 90 s of Ctrl-C:\n{(tmp_path / 'demo.out').read_text()[-2000:]}\n"
                f"--- worker log ---\n{worker_log.read_text(errors='replace')[-3000:]}"
            ) from None
        finally:
            out.close()
    deadline = time.monotonic() + 30
    while processes_of(settings.namespace) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_of(settings.namespace) == [], "Ctrl-C stops everything the demo started"
