"""The dashboard in a real browser (headless Debian Chromium, driven by Playwright) against a real worker, and the
Prometheus endpoint checked by Prometheus' own ``promtool``. `make test` installs both (Debian packages
``chromium`` and ``prometheus``; Playwright is a test dependency and uses that Chromium).

One workload with known answers (55 stations, one named like a script tag, 30 hours of recent event time with
injected incidents) and four pages: the overview, the map, a station's page and the alerts. Each loads with no
console error and no request to another site, shows the numbers the API and Cassandra hold, pages and searches,
and works from the keyboard. ``WEATHERSTREAM_SCREENSHOTS=docs/images`` keeps the screenshots there (the README's).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.integration.conftest import cli, settings_env
from tests.integration.test_sink_worker import count_rows, wait_for
from weatherstream.core.normalize import InvalidPayload, normalize
from weatherstream.settings import Settings
from weatherstream.sources.synthetic import SyntheticConfig, generate

SCRIPT_NAME = "<script>alert(1)</script>"
STATIONS, HOURS, STEP_S, ANOMALIES = 55, 30, 1800, 12


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: `make test` installs it (Debian package {package})"
    return path


@dataclass
class Workload:
    names: dict[int, str] = field(default_factory=dict)  # station -> name
    newest: dict[int, float] = field(default_factory=dict)  # station -> its newest observation time
    pressures: dict[tuple[int, float], float] = field(default_factory=dict)  # accepted (station, time) -> hPa
    sent: int = 0

    def tendency(self, city_id: int) -> float | None:
        """The newest pressure minus the first accepted one 3 h to 2.5 h before it (None without)."""
        t = self.newest[city_id]
        now = self.pressures.get((city_id, t))
        for start in (t - 3 * 3600, t - 2.5 * 3600):
            if now is not None and (city_id, start) in self.pressures:
                return round(now - self.pressures[(city_id, start)], 1)
        return None


def send_workload(settings: Settings, tmp_path: Path, stations: int = STATIONS, anomalies: int = 12) -> Workload:
    """``stations`` stations over ``HOURS`` hours of recent event time, sent in time order; the first is named like
    a script tag."""
    count = stations * HOURS * 3600 // STEP_S
    start = float(int(time.time()) // STEP_S * STEP_S - HOURS * 3600)
    work = Workload()
    names, newest = work.names, work.newest
    lines = []
    config = SyntheticConfig(cities=stations, count=count, seed=9, start=start, step_s=STEP_S, anomalies=anomalies)
    for record in generate(config):
        body: dict[str, Any] = orjson.loads(record.payload)
        if not names or body["id"] == next(iter(names)):
            body["name"] = SCRIPT_NAME
        names[body["id"]] = body["name"]
        newest[body["id"]] = max(newest.get(body["id"], 0.0), float(body["dt"]))
        lines.append(orjson.dumps(body))
        with contextlib.suppress(InvalidPayload):  # an impossible value: a dead letter, not in the history
            obs = normalize(lines[-1], now=time.time())
            if obs.pressure_hpa is not None:
                work.pressures[(obs.city_id, obs.observed_at)] = obs.pressure_hpa
    path = tmp_path / "stations.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    done = subprocess.run(cli("produce", "--source", "replay", "--file", str(path)), env=settings_env(settings),
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    work.sent = len(lines)
    return work


class Watched:
    """A page that records console errors, uncaught exceptions and requests to anywhere but the worker."""

    def __init__(self, browser: Browser, base: str) -> None:
        self.page: Page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.elsewhere: list[str] = []
        origin = urlsplit(base).netloc
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("response", lambda r: self.errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("request", lambda r: None if urlsplit(r.url).netloc == origin else self.elsewhere.append(r.url))

    def clean(self) -> None:
        assert self.errors == [], self.errors
        assert self.elsewhere == [], self.elsewhere


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=tool("chromium", "chromium"),
                                              args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        yield launched
        launched.close()


def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    keep = os.environ.get("WEATHERSTREAM_SCREENSHOTS")
    path = Path(keep) / f"{name}.png" if keep else tmp_path / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    image = path.read_bytes()
    assert image[:8] == b"\x89PNG\r\n\x1a\n" and len(image) > 10_000, f"{path}: {len(image)} bytes"


def tab_to(page: Page, selector: str, most: int = 40, back: bool = False) -> None:
    """Press Tab (``back``: Shift+Tab) until the element ``selector`` has the focus, as a keyboard user would."""
    for _ in range(most):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        if page.evaluate("(s) => document.activeElement === document.querySelector(s)", selector):
            return
    raise AssertionError(f"{selector} is not reachable with Tab")


def check_overview(browser: Browser, base: str, names: dict[int, str], newest: dict[int, float],
                   tmp_path: Path) -> None:  # fmt: skip
    watched = Watched(browser, base)
    page = watched.page
    page.goto(f"{base}/")
    expect(page.locator("#n-total")).to_have_text(str(len(names)))
    reporting = sum(time.time() - observed < 3600 for observed in newest.values())
    assert reporting >= len(names) - 3  # the workload ends with every station reporting (silences end before)
    expect(page.locator("#n-reporting")).to_have_text(str(reporting))
    expect(page.locator("#n-silent")).to_have_text("0")
    summary = requests.get(f"{base}/api/network", timeout=30).json()
    expect(page.locator("#n-incidents")).to_have_text(str(summary["incidents"]["open"]))
    expect(page.locator("#cities tbody tr")).to_have_count(50)  # the first page
    expect(page.locator("#pageinfo")).to_have_text("1–50")
    # the script-tag name is text on the page, never an element
    assert page.get_by_text(SCRIPT_NAME, exact=True).count() >= 1
    assert page.locator("script").count() == 2
    screenshot(page, tmp_path, "overview")
    # keyboard: next page, a search, a sort
    tab_to(page, "#next")
    page.keyboard.press("Enter")
    expect(page.locator("#pageinfo")).to_have_text(f"51–{len(names)}")
    expect(page.locator("#cities tbody tr")).to_have_count(len(names) - 50)
    some = sorted(name for name in names.values() if name != SCRIPT_NAME)[3]
    tab_to(page, "#q", back=True)
    page.keyboard.type(some)
    expect(page.locator("#count")).to_have_text(re.compile(r"^\d+ stations found$"))
    found = page.locator("#cities tbody tr td:first-child").all_inner_texts()
    assert some in found and all(some.casefold() in name.casefold() for name in found), found
    page.keyboard.press("Control+A")
    page.keyboard.press("Backspace")
    expect(page.locator("#count")).to_have_text(f"{len(names)} stations")
    tab_to(page, "button[data-sort=temp]")
    page.keyboard.press("Enter")
    expect(page.locator("th:has(button[data-sort=temp])")).to_have_attribute("aria-sort", "ascending")
    cells = page.locator("#cities tbody tr td:nth-child(3)").all_inner_texts()
    temps = [float(text.split()[0]) for text in cells if text != "–"]
    assert temps == sorted(temps) and len(temps) >= 40, temps
    watched.clean()


def check_map(browser: Browser, base: str, work: Workload, tmp_path: Path) -> None:
    names, newest = work.names, work.newest
    watched = Watched(browser, base)
    page = watched.page
    page.goto(f"{base}/map")
    expect(page.locator("#shown")).to_have_text(f"{len(names)} of {len(names)} stations in view")
    # the land is drawn: the canvas holds land colour as well as sea colour
    colours = page.evaluate("""() => {
        const c = document.getElementById('map'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const seen = new Set();
        for (let i = 0; i < d.length; i += 4 * 97) seen.add(`${d[i]},${d[i + 1]},${d[i + 2]}`);
        return [...seen];
    }""")
    assert "244,241,234" in colours and "219,231,242" in colours, colours[:20]
    screenshot(page, tmp_path, "map")
    # keyboard: focus the map, zoom in and move; 0 shows the whole world again
    tab_to(page, "#map")
    page.keyboard.press("+")
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("() => view.zoom") == 1.5
    page.keyboard.press("0")
    assert page.evaluate("() => [view.zoom, view.lon]") == [1, 0]
    # colour by freshness: every station is under an hour old
    page.select_option("#quantity", "age")
    expect(page.locator("#legend")).to_contain_text("under 1 h")
    page.wait_for_function("() => points && points.quantity === 'age'")
    ages = page.evaluate("() => Object.fromEntries(points.ids.map((id, i) => [id, points.values[i]]))")
    for city, observed in newest.items():  # the snapshot is a few seconds old at most
        assert abs(ages[str(city)] - (time.time() - observed)) < 120, (city, ages[str(city)])
    # colour by pressure tendency: each station's change over the 3 h before its newest observation
    page.select_option("#quantity", "tendency")
    expect(page.locator("#legend")).to_contain_text("+6.0 hPa in 3 h")
    page.wait_for_function("() => points && points.quantity === 'tendency'")
    shown = page.evaluate("() => Object.fromEntries(points.ids.map((id, i) => [id, points.values[i]]))")
    expected = {str(city): work.tendency(city) for city in names}
    assert sum(value is not None for value in expected.values()) >= len(names) - 5, expected
    assert shown == expected
    # a click on a station opens its page
    x, y, city_id = page.evaluate("""() => {
        const c = document.getElementById('map'), t = transform(c), r = devicePixelRatio;
        return [(t.x0 + points.lon[0] * t.k) / r, (t.y0 - points.lat[0] * t.k) / r, points.ids[0]];
    }""")
    box = page.locator("#map").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + x, box["y"] + y)
    expect(page.locator("#tip")).to_be_visible()
    page.mouse.click(box["x"] + x, box["y"] + y)
    page.wait_for_url(re.compile(rf"/city/{city_id}$"))
    watched.clean()


def check_city(browser: Browser, base: str, city_id: int, work: Workload, tmp_path: Path) -> None:
    watched = Watched(browser, base)
    page = watched.page
    page.goto(f"{base}/city/{city_id}")
    expect(page.locator("#name")).to_have_text(SCRIPT_NAME)
    tendency = work.tendency(city_id)
    if tendency is not None:  # the newest pressure and its change over 3 h
        expect(page.locator("#now")).to_contain_text(f"({'+' if tendency > 0 else ''}{tendency:.1f} hPa in 3 h)")
    expect(page.locator(".uplot")).to_have_count(3)
    api = requests.get(f"{base}/api/cities/{city_id}/aggregates", params={"kind": "tumbling-1h",
                       "from": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2 * 86400))},
                       timeout=30).json()["aggregates"]  # fmt: skip
    expect(page.locator("#windows tbody tr")).to_have_count(len(api))
    finals = sum(row["final"] for row in api)
    assert finals >= HOURS - 3, api
    table = page.locator("#windows tbody tr td:nth-child(2)").all_text_contents()  # in a closed <details>
    assert sum(text.startswith("final") for text in table) == finals and table.count("open") == len(api) - finals
    assert sum("corrected" in text for text in table) == sum(row["final"] and row["revision"] > 1 for row in api)
    newest_final = max((row for row in api if row["final"]), key=lambda row: row["window_start"])
    row = page.locator("#windows tbody tr").filter(has_text=newest_final["window_start"][:16].replace("T", " "))
    expect(row.locator("td:nth-child(4)")).to_have_text(f"{newest_final['temp_mean_c']:.1f} °C")
    # real axes: local time below, UTC above, units; hovering reads values out in units
    chart = page.locator("#chart-temp")
    labels = page.evaluate("() => state.charts.temp.axes.map((axis) => axis.label)")  # drawn on the canvas
    assert labels[0].startswith("local time (UTC") and labels[1] == "UTC" and labels[2] == "°C", labels
    expect(chart.locator(".u-legend")).to_contain_text("mean final")
    plot = chart.locator(".u-over").bounding_box()
    assert plot is not None
    page.mouse.move(plot["x"] + plot["width"] * 0.5, plot["y"] + plot["height"] / 2)
    expect(chart.locator(".u-legend")).to_contain_text(" °C")
    screenshot(page, tmp_path, "city")
    # keyboard: the window kinds are radio buttons
    tab_to(page, "input[name=kind]:checked")
    before = page.evaluate("() => state.kind")
    page.keyboard.press("ArrowDown")
    page.wait_for_function("(k) => state.kind !== k", arg=before)
    kind = page.evaluate("() => state.kind")
    wanted = requests.get(f"{base}/api/cities/{city_id}/aggregates", params={"kind": kind,
                          "from": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2 * 86400))},
                          timeout=30).json()["aggregates"]  # fmt: skip
    expect(page.locator("#windows tbody tr")).to_have_count(len(wanted))
    watched.clean()


def check_alerts(browser: Browser, base: str, settings: Settings, tmp_path: Path) -> None:
    stored = count_rows(settings, "alerts_by_day")
    since = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() - 2 * 86400))  # before the workload
    everything = requests.get(f"{base}/api/alerts", params={"limit": 500, "since": f"{since}:00Z"}, timeout=30).json()
    assert everything["total"] == stored and 0 < stored <= 500, (everything["total"], stored)
    critical = sum(row["severity"] == "critical" for row in everything["alerts"])
    watched = Watched(browser, base)
    page = watched.page
    page.goto(f"{base}/alerts?since={since}:00Z")
    expect(page.locator("#since")).to_have_value(since)
    expect(page.locator("#count")).to_have_text(f"{stored} alert messages")
    expect(page.locator("#alerts tbody tr")).to_have_count(min(stored, 50))
    first = everything["alerts"][0]
    expect(page.locator("#alerts tbody tr").first.locator("td:last-child")).to_have_text(first["message"])
    screenshot(page, tmp_path, "alerts")
    # keyboard: tick "critical" and submit; the address keeps the filter
    tab_to(page, "input[name=severity][value=critical]")
    page.keyboard.press("Space")
    tab_to(page, "#filters button[type=submit]")
    page.keyboard.press("Enter")
    expect(page.locator("#count")).to_have_text(f"{critical} alert messages")
    assert "severity=critical" in page.url
    if stored > 50:
        page.goto(f"{base}/alerts?since={since}:00Z")
        tab_to(page, "#next")
        page.keyboard.press("Enter")
        expect(page.locator("#pageinfo")).to_have_text(f"51–{min(stored, 100)}")
    watched.clean()


def test_dashboard_pages_in_headless_chromium(settings: Settings, start_worker, browser: Browser,  # type: ignore[no-untyped-def]
                                              tmp_path: Path) -> None:  # fmt: skip
    worker = start_worker()
    work = send_workload(settings, tmp_path, anomalies=ANOMALIES)
    names, newest, sent = work.names, work.newest, work.sent
    # every observation is a row, but for the injected impossible values (every 7th incident): dead letters
    wait_for("observation rows", lambda: count_rows(settings, "observations_by_city_day"), sent - (ANOMALIES + 1) // 7)
    wait_for("stations", lambda: count_rows(settings, "latest_by_city"), len(names))
    base = f"http://127.0.0.1:{worker.web_port}"
    script_city = next(city for city, name in names.items() if name == SCRIPT_NAME)
    check_overview(browser, base, names, newest, tmp_path)
    check_map(browser, base, work, tmp_path)
    check_city(browser, base, script_city, work, tmp_path)
    check_alerts(browser, base, settings, tmp_path)


def test_metrics_pass_promtool_check(settings: Settings, start_worker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    worker = start_worker()
    sent = send_workload(settings, tmp_path, stations=3, anomalies=0).sent
    wait_for("observation rows", lambda: count_rows(settings, "observations_by_city_day"), sent)
    text = requests.get(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=30).text
    families = ("weatherstream_events_in_total", "weatherstream_sink_write_seconds_bucket",
                "weatherstream_stations", "weatherstream_consumer_lag_messages")  # fmt: skip
    for family in families:
        assert family in text, family
    done = subprocess.run([tool("promtool", "prometheus"), "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
