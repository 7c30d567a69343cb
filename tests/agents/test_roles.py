"""Worker roles: which agents, tables and sink a worker declares, and which consumer groups it joins."""

from pathlib import Path

import pytest

from agents import register_all
from weatherstream.app import create_app
from weatherstream.settings import load_settings


@pytest.mark.parametrize(
    ("role", "agents", "tables", "sink", "group"),
    [
        ("all", {"pipeline"}, {"station_state"}, True, "unit.app"),
        ("pipeline", {"pipeline"}, {"station_state"}, False, "unit.app"),
        ("sink", set(), set(), True, "unit.sink-worker"),
    ],
)
def test_role_decides_agents_tables_and_groups(tmp_path: Path, role: str, agents: set[str], tables: set[str],
                                               sink: bool, group: str) -> None:  # fmt: skip
    settings = load_settings(store="memory://", namespace="unit", data_dir=tmp_path, worker_role=role)
    app = create_app(settings)
    parts = register_all(app)
    assert {name.rsplit(".", 1)[-1] for name in app.agents} == agents
    assert set(app.tables) == tables
    assert app.conf.id == group
    # The sink is a task with a consumer of its own, in one group wherever it runs (never the faust app's).
    assert (parts.sink is not None) is sink
    assert (parts.pipeline is not None) is bool(agents)
    assert settings.sink_group == "unit.sink" != app.conf.id
