"""The dashboard at network scale: what the overview and the map cost at 1,000 to 100,000 stations.

For each station count, a station catalog snapshot is built from synthetic stations (the same code the worker
runs on Cassandra's rows) and measured:

- server side: ``/api/network``'s freshness counts, ``/api/map``'s columns (first, then kept per snapshot) and
  their JSON (orjson, as served), and a page of ``/api/cities`` sorted by age: medians of repeated calls, and
  the map body's size;
- browser side, in headless Chromium (Playwright): the map page loaded with those points served to it (no worker:
  the page's requests are answered by the benchmark), the time of a full draw (land and every station), of the
  dot lookup under the pointer, and of the whole load until the stations are on the map.

    .venv/bin/python -m benchmarks.dashboard [--stations 1000,10000,100000] [--repeat 7]

Needs Debian's chromium (`make test` installs it). Results: benchmarks/results/dashboard-*.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import time
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import orjson
from playwright.sync_api import Route, sync_playwright

from benchmarks.drain import RESULTS
from weatherstream.sources.synthetic import synthetic_cities
from weatherstream.web import assets
from weatherstream.web.catalog import Snapshot
from weatherstream.web.pages import STATIC


def stations(n: int, now: float) -> list[dict[str, Any]]:
    """``n`` stations (the built-in cities, then stations around them) with a recent observation each."""
    return [{"city_id": c.city_id, "city_name": c.name, "country": c.country, "lat": c.lat, "lon": c.lon,
             "observed_at": now - (i * 37 % 30000), "temp_c": (i % 60) - 20.0, "humidity_pct": 60.0,
             "pressure_hpa": 1010.0, "wind_speed_ms": 3.0} for i, c in enumerate(synthetic_cities(n))]  # fmt: skip


def median_ms(call: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def server_side(snap: Snapshot, repeat: int, now: float) -> dict[str, Any]:
    started = time.perf_counter()
    body = orjson.dumps(snap.points("temp"))
    first_ms = (time.perf_counter() - started) * 1000
    return {
        "freshness_ms": median_ms(lambda: snap.freshness(now), repeat),
        "map_points_first_ms": round(first_ms, 1),  # built once per snapshot and quantity, then kept
        "map_points_ms": median_ms(lambda: orjson.dumps(snap.points("temp")), repeat),
        "cities_page_by_age_ms": median_ms(lambda: snap.page("", "age", True, 0, 50, now=now), repeat),
        "map_body_bytes": len(body),
    }


def browser_side(body: bytes, repeat: int) -> dict[str, Any]:
    static = resources.files("weatherstream.web").joinpath("static")

    def answer(route: Route) -> None:
        path = urlsplit(route.request.url).path
        if path == "/map":
            route.fulfill(body=static.joinpath("map.html").read_bytes(), content_type="text/html")
        elif path == "/api/map":
            route.fulfill(body=body, content_type="application/json")
        elif path.startswith("/static/vendor/"):
            route.fulfill(body=assets.read(path.rsplit("/", 1)[1]), content_type="application/json")
        elif path.startswith("/static/") and path[8:] in STATIC:
            route.fulfill(body=static.joinpath(path[8:]).read_bytes(), content_type=STATIC[path[8:]])
        else:
            route.fulfill(status=404, body="")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.route("**/*", answer)  # nothing reaches the network: the benchmark answers every request
        started = time.perf_counter()
        page.goto("http://127.0.0.1:8/map")
        shown = "() => points !== null && /stations in view/.test(document.getElementById('shown').textContent)"
        page.wait_for_function(shown, timeout=120_000)
        load_ms = (time.perf_counter() - started) * 1000
        timings = page.evaluate("""(repeat) => {
            const run = (f) => { const t = []; for (let i = 0; i < repeat; i++) { const s = performance.now(); f();
                t.push(performance.now() - s); } t.sort((a, b) => a - b); return t[Math.floor(t.length / 2)]; };
            const canvas = document.getElementById('map');
            return { draw_ms: run(draw), lookup_ms: run(() => { for (let i = 0; i < 100; i++)
                stationAt(Math.random() * canvas.clientWidth, Math.random() * canvas.clientHeight); }) / 100 };
        }""", repeat)  # fmt: skip
        browser.close()
    assert not errors, errors
    return {"page_load_ms": round(load_ms, 1), **{k: round(v, 3) for k, v in timings.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stations", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    now = time.time()
    runs = []
    for n in (int(x) for x in args.stations.split(",")):
        started = time.perf_counter()
        snap = Snapshot.of(stations(n, now), loaded_at=now)
        snap.order("name")
        result = {"stations": n, "snapshot_build_ms": round((time.perf_counter() - started) * 1000, 1)}
        result.update(server_side(snap, args.repeat, now))
        result.update(browser_side(orjson.dumps({**snap.points("temp"), "quantity": "temp", "now": now}), args.repeat))
        runs.append(result)
        print(json.dumps(result))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"dashboard-{stamp}.json"
    out.write_text(json.dumps({"machine": platform.platform(), "runs": runs}, indent=1))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
