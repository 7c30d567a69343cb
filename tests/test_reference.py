"""docs/reference.md names what the code has: every setting, every dead-letter reason, every Cassandra table and
every web path, and nothing that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

from models.deadletter import Reason
from weatherstream.settings import Settings
from weatherstream.sinks import rows

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = (ROOT / "docs/reference.md").read_text()


def section(title: str) -> str:
    """The text of the ``## {title}`` section."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", REFERENCE, re.M | re.S)
    assert match, f"docs/reference.md has no section '## {title}'"
    return match.group(1)


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"WEATHERSTREAM_([A-Z0-9_]+)", section("Settings")))
    missing = [name.upper() for name in Settings.model_fields if name.upper() not in documented]
    assert not missing, f"settings missing from the settings table of docs/reference.md: {missing}"
    named = set(re.findall(r"WEATHERSTREAM_([A-Z0-9_]+)", REFERENCE))
    unknown = sorted(d for d in named if d.lower() not in Settings.model_fields and not d.startswith("_"))
    assert not unknown, f"docs/reference.md names settings that do not exist: {unknown}"
    readme = set(re.findall(r"WEATHERSTREAM_([A-Z0-9_]+)", (ROOT / "README.md").read_text()))
    unknown = sorted(d for d in readme if d.lower() not in Settings.model_fields and not d.startswith("_"))
    assert not unknown, f"the README names settings that do not exist: {unknown}"


def test_every_dead_letter_reason_is_explained() -> None:
    text = section("Input: observations, dead letters and repeats")
    missing = [reason.value for reason in Reason if f"`{reason.value}`" not in text]
    assert not missing, f"reason codes missing from docs/reference.md: {missing}"


def test_every_cassandra_table_is_described() -> None:
    described = set(re.findall(r"^\| `(\w+)` \|", section("Cassandra"), re.M))
    tables = {
        t.name for t in (rows.OBSERVATIONS, rows.AGGREGATES, rows.LATEST, rows.ALERTS_BY_CITY, rows.ALERTS_BY_DAY)
    }
    assert described == tables


def test_every_web_path_is_described() -> None:
    source = (ROOT / "weatherstream/web/api.py").read_text()
    served = {p for p in re.findall(r'@app\.page\("([^"]+)"\)', source) if not p.startswith("/static")}
    described = section("Web API and metrics")
    missing = sorted(p for p in served if f"`{p.split('{')[0].rstrip('/')}" not in described)
    assert not missing, f"web paths missing from docs/reference.md: {missing}"
