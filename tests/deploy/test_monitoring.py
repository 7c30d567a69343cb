"""Prometheus and Grafana of deploy/docker-compose.yml: Prometheus finds every worker replica, Grafana gets
that Prometheus as its datasource, and the dashboard only asks for metrics weatherstream exports, in
PromQL that Prometheus' own ``promtool`` accepts."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from prometheus_client.metrics import MetricWrapperBase

from tests.deploy.conftest import DEPLOY, settings_of, tool
from weatherstream import metrics
from weatherstream.web import api

PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "weatherstream.json"
#: series names a panel may use besides weatherstream's own: Prometheus' scrape health, and the process
#: collector prometheus_client registers in every worker
OTHER_SERIES = {"up", "process_resident_memory_bytes", "process_cpu_seconds_total"}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
            "gauge": ("",), "summary": ("", "_count", "_sum", "_created")}  # fmt: skip


def promtool() -> str:
    return tool("promtool", "`make test` installs it (Debian package prometheus)")


def exported_series() -> set[str]:
    """Every series name the worker's /metrics can show: the families of weatherstream/metrics.py and of
    the gauges the web server fills at scrape time (weatherstream/web/api.py)."""
    names: set[str] = set()
    for module in (metrics, api):
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                for family in value.describe():
                    names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    assert "weatherstream_events_in_total" in names and "weatherstream_consumer_lag_messages" in names
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]
    assert queries, "the dashboard has no queries"
    return queries


def test_prometheus_config_passes_promtool() -> None:
    done = subprocess.run([promtool(), "check", "config", str(PROMETHEUS_CONFIG)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_discovers_every_worker_replica(compose: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    worker = compose["services"]["worker"]
    web_port = settings_of(worker["environment"]).web_port
    assert web_port in {p["target"] for p in worker["ports"]}
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "weatherstream-worker"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["worker"] and sd["type"] == "A" and sd["port"] == web_port
    assert "static_configs" not in job, "a static target list would miss scaled replicas"

    prometheus = compose["services"]["prometheus"]
    config_path = next(a.split("=", 1)[1] for a in prometheus["command"] if a.startswith("--config.file="))
    mounts = {v["target"]: Path(v["source"]) for v in prometheus["volumes"] if v["type"] == "bind"}
    assert mounts[config_path] == PROMETHEUS_CONFIG


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboard(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = {v["target"]: Path(v["source"]) for v in grafana["volumes"] if v["type"] == "bind"}
    assert mounts["/etc/grafana/provisioning"] == GRAFANA / "provisioning"

    (source,) = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())["datasources"]
    url = urlsplit(source["url"])
    assert source["type"] == "prometheus" and url.hostname in compose["services"] and url.port == 9090

    (provider,) = yaml.safe_load((GRAFANA / "provisioning/dashboards/weatherstream.yml").read_text())["providers"]
    assert mounts[provider["options"]["path"]] == DASHBOARD.parent

    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        for target in [panel, *panel["targets"]]:
            assert target["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]


def test_dashboard_queries_only_metrics_weatherstream_exports() -> None:
    exported = exported_series()
    used = set()
    for title, expr in dashboard_queries():
        # metric names: identifiers not followed by "(" (functions) and outside {...} and by (...)
        bare = re.sub(r"\{[^}]*\}|\b(by|without)\s*\([^)]*\)|\[[^\]]*\]|\"[^\"]*\"", " ", expr)
        names = {m for m in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*(?!\s*\()\b", bare) if not m.isdigit()}
        names -= {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool"}
        unknown = {n for n in names if n not in exported and n not in OTHER_SERIES}
        assert not unknown, f"panel {title!r} asks for {sorted(unknown)}, which no worker exports"
        used |= names
    for family in ("weatherstream_events_in_total", "weatherstream_consumer_lag_messages",
                   "weatherstream_sink_write_seconds_bucket", "weatherstream_dead_letters_total",
                   "weatherstream_alerts_total"):  # fmt: skip
        assert family in used, f"the dashboard does not show {family}"


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each query as a recording rule, which ``promtool check rules`` parses (Grafana's rate interval
    variable replaced by a duration)."""
    rules = [{"record": f"dashboard:query_{n}", "expr": expr.replace("$__rate_interval", "1m")}
             for n, (_, expr) in enumerate(dashboard_queries())]  # fmt: skip
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run([promtool(), "check", "rules", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
