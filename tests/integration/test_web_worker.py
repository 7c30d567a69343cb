"""The web API of real workers: any worker answers for any city (routed to the owner), windows live and
closed, alerts, health, readiness, security headers, and the Prometheus endpoint."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import cli, settings_env
from tests.integration.test_sink_worker import count_rows, wait_for
from weatherstream.settings import Settings
from weatherstream.sources.synthetic import SyntheticConfig, generate


def get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    response = requests.request(method, f"http://127.0.0.1:{port}{path}", timeout=30)
    return response.status_code, dict(response.headers), response.content


def get_json(port: int, path: str) -> tuple[int, Any]:
    status, _, body = get(port, path)
    return status, json.loads(body)


def wait_ready(port: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if get(port, "/ready")[0] == 200:
            return
        time.sleep(0.5)
    raise AssertionError(f"worker on port {port} never became ready")


def test_any_worker_answers_for_any_city(settings: Settings, start_worker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first, second = start_worker(name="a"), start_worker(name="b")
    cfg = SyntheticConfig(cities=12, count=1800, seed=4, start=float(int(time.time()) - 150 * 600 - 600))
    records = list(generate(cfg))
    newest: dict[int, dict[str, Any]] = {}
    for r in records:
        body = orjson.loads(r.payload)
        if body["id"] not in newest or body["dt"] > newest[body["id"]]["dt"]:
            newest[body["id"]] = body
    path = tmp_path / "input.jsonl"
    path.write_bytes(b"\n".join(r.payload for r in records) + b"\n")
    done = subprocess.run(cli("produce", "--source", "replay", "--file", str(path)), env=settings_env(settings),
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    wait_for("observation rows", lambda: count_rows(settings, "observations_by_city_day"), len(records))
    for worker in (first, second):
        wait_ready(worker.web_port)

    owners: dict[int, set[str]] = {}
    for city_id, body in newest.items():
        for worker in (first, second):
            status, city = get_json(worker.web_port, f"/api/cities/{city_id}")
            assert status == 200, city
            assert city["city_id"] == city_id
            assert city["latest"]["observed_at"] == body["dt"] and city["latest"]["temp_c"] == body["main"]["temp"]
            assert city["open_windows"] and all(not w["final"] for w in city["open_windows"])
            owners.setdefault(city_id, set()).add(city["served_by"])
    assert all(len(served) == 1 for served in owners.values()), owners  # one owner, whoever was asked
    assert len({next(iter(s)) for s in owners.values()}) == 2, "both workers own some of the 12 cities"

    # Closed windows from Cassandra, followed by the open ones from the owner's tables.
    city_id = next(iter(newest))
    status, result = get_json(second.web_port, f"/api/cities/{city_id}/aggregates?kind=tumbling-1h")
    assert status == 200
    finals = [a for a in result["aggregates"] if a["final"]]
    live = [a for a in result["aggregates"] if not a["final"]]
    assert len(finals) > 20 and 1 <= len(live) <= 2 and live[0]["window_start"] > finals[-1]["window_start"]
    assert {a["kind"] for a in result["aggregates"]} == {"tumbling-1h"}

    status, listed = get_json(first.web_port, "/api/cities")
    assert status == 200 and {c["city_id"] for c in listed["cities"]} == set(newest)
    assert all(c["age_s"] >= 0 for c in listed["cities"])
    status, alerts = get_json(first.web_port, f"/api/alerts?city={city_id}&since=2000-01-01T00:00Z")
    assert status == 200 and isinstance(alerts["alerts"], list)

    # Bad requests are explained; nothing changes state; no wildcard CORS; security headers everywhere.
    status, problem = get_json(first.web_port, "/api/cities/abc")
    assert status == 400 and "must be a number" in problem["error"]
    assert get_json(first.web_port, f"/api/cities/{city_id}/aggregates?kind=nope")[0] == 400
    status, network = get_json(first.web_port, "/api/alerts?severity=warning,critical&limit=5")
    assert status == 200 and network["limit"] == 5 and network["total"] >= len(network["alerts"])
    status, problem = get_json(first.web_port, "/api/alerts?kind=tornado")
    assert status == 400 and "kind must be one or more of" in problem["error"]
    assert get(first.web_port, "/api/cities", method="POST")[0] == 405
    status, headers, _ = get(first.web_port, "/health")
    assert status == 200 and headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
    assert "Access-Control-Allow-Origin" not in headers

    # The dashboard: its pages and files come from the worker itself, under the same security headers.
    status, headers, body = get(first.web_port, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"/static/overview.js" in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert get(second.web_port, f"/city/{city_id}")[0] == 200
    assert get(second.web_port, "/map")[0] == 200 and get(second.web_port, "/alerts")[0] == 200
    status, headers, _ = get(first.web_port, "/static/common.js")
    assert status == 200 and headers["Content-Type"].startswith("application/javascript")
    status, headers, body = get(first.web_port, "/static/vendor/uPlot.iife.min.js")
    assert status == 200 and headers["Content-Type"].startswith("application/javascript") and b"uPlot" in body
    assert get(first.web_port, "/static/..%2Fapi.py")[0] == 404 and get(first.web_port, "/static/city.html")[0] == 404
    assert get(first.web_port, "/static/vendor/..%2F..%2Fapi.py")[0] == 404
    assert get(first.web_port, "/static/vendor/versions.txt")[0] == 404

    # The overview and the map, for the whole network from any worker.
    status, summary = get_json(second.web_port, "/api/network")
    assert status == 200 and summary["stations"]["total"] == sum(
        summary["stations"][k] for k in ("reporting", "stale", "silent")) > 0  # fmt: skip
    status, points = get_json(first.web_port, "/api/map?quantity=temp")
    stations = summary["stations"]["total"]
    assert status == 200 and len(points["ids"]) == len(points["lat"]) == len(points["values"]) == stations
    assert get_json(first.web_port, "/api/map?quantity=rainbow")[0] == 400

    # Prometheus: parseable, with the project's metrics.
    status, headers, body = get(first.web_port, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(body.decode())}
    for name in ("weatherstream_events_in", "weatherstream_dead_letters", "weatherstream_windows_finalized",
                 "weatherstream_sink_write_seconds", "weatherstream_consumer_lag_messages",
                 "weatherstream_stations", "weatherstream_station_oldest_observation_age_seconds",
                 "weatherstream_table_keys", "weatherstream_rocksdb_memory_bytes"):  # fmt: skip
        assert name in names, (name, sorted(names))
    first.assert_healthy()
    second.assert_healthy()
