"""Worker roles: which agents and tables a worker declares, and which consumer group it joins."""

from pathlib import Path

import pytest

from weatherstream.app import create_app
from weatherstream.settings import load_settings


@pytest.mark.parametrize(
    ("role", "agents", "tables", "group"),
    [
        ("all", {"pipeline", "sink"}, {"city_state", "window_panes"}, "unit.app"),
        ("pipeline", {"pipeline"}, {"city_state", "window_panes"}, "unit.app"),
        ("sink", {"sink"}, set(), "unit.sink"),
    ],
)
def test_role_decides_agents_tables_and_group(tmp_path: Path, role: str, agents: set[str], tables: set[str],
                                              group: str) -> None:  # fmt: skip
    app = create_app(load_settings(store="memory://", namespace="unit", data_dir=tmp_path, worker_role=role))
    assert {name.rsplit(".", 1)[-1] for name in app.agents} == agents
    assert set(app.tables) == tables
    assert app.conf.id == group
