"""deploy/Dockerfile: slim Python 3.11, everything the package needs copied in, an unprivileged user, the
worker as default command, RocksDB data on a volume, and a health check that really tells up from down."""

from __future__ import annotations

import configparser
import http.server
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY, ROOT, Instruction, env_of, settings_of


def only(stage: list[Instruction], cmd: str) -> Instruction:
    found = [i for i in stage if i.cmd == cmd]
    assert len(found) == 1, f"{len(found)} {cmd} instructions in the image stage"
    return found[0]


def test_base_is_slim_python_311(dockerfile_stages: list[list[Instruction]]) -> None:
    for stage in dockerfile_stages:
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", stage[0].value[0]), stage[0].value


def test_build_stage_copies_what_setup_cfg_installs(dockerfile_stages: list[list[Instruction]]) -> None:
    """Every top-level package setup.cfg finds, the files its metadata reads, and nothing excluded by the
    build context's ignore file."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    packages = {p.split(".")[0] for p in cfg["options.packages.find"]["include"].split()}
    long_description = cfg["metadata"]["long_description"].removeprefix("file:").strip()
    needed = packages | {"setup.cfg", "pyproject.toml", long_description}

    copied: set[str] = set()
    for ins in dockerfile_stages[0]:
        if ins.cmd == "COPY" and not any(f.startswith("--from") for f in ins.flags):
            copied.update(Path(src).as_posix().rstrip("/") for src in ins.value[:-1])
    assert needed <= copied, f"not copied into the build stage: {sorted(needed - copied)}"
    for name in needed:
        assert (ROOT / name).exists(), name

    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    assert "*" in ignore, "the ignore file should exclude everything, then list what the build needs"
    reincluded = {line[1:].strip().rstrip("/") for line in ignore if line.startswith("!")}
    assert needed <= reincluded, f"excluded from the build context: {sorted(needed - reincluded)}"
    assert any("pip install ." in i.value[0] for i in dockerfile_stages[0] if i.cmd == "RUN")


def test_image_runs_as_the_unprivileged_user_it_creates(dockerfile_stages: list[list[Instruction]]) -> None:
    image = dockerfile_stages[-1]
    user = only(image, "USER").value[0]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0, f"USER {user}: give a numeric non-root uid (Kubernetes checks it)"
    created = " ".join(i.value[0] for i in image if i.cmd == "RUN")
    assert f"--uid {uid}" in created and (not gid or f"--gid {gid}" in created), created
    # USER comes after every RUN, so nothing later runs as root
    positions = [n for n, i in enumerate(image) if i.cmd in ("RUN", "USER")]
    assert image[positions[-1]].cmd == "USER"


def test_worker_is_the_default_command(dockerfile_stages: list[list[Instruction]]) -> None:
    image = dockerfile_stages[-1]
    entrypoint, cmd = only(image, "ENTRYPOINT"), only(image, "CMD")
    assert entrypoint.json and entrypoint.value == ("weatherstream",)
    assert cmd.json and cmd.value == ("worker",)


def test_rocksdb_data_dir_is_a_volume_owned_by_the_user(dockerfile_stages: list[list[Instruction]]) -> None:
    image = dockerfile_stages[-1]
    env = env_of(image)
    data_dir = env["WEATHERSTREAM_DATA_DIR"]
    assert data_dir in only(image, "VOLUME").value
    uid = only(image, "USER").value[0]
    assert any(f"chown {uid} {data_dir}" in i.value[0] for i in image if i.cmd == "RUN")
    # the image's settings are valid, and the web server is reachable from outside the container
    settings = settings_of(env)
    assert settings.web_bind == "0.0.0.0"  # noqa: S104 - compared, not bound
    assert str(settings.web_port) in only(image, "EXPOSE").value


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run_healthcheck(dockerfile_stages: list[list[Instruction]], port: int) -> int:
    check = only(dockerfile_stages[-1], "HEALTHCHECK")
    assert check.value[0] == "CMD", "HEALTHCHECK NONE: the web server offers /health"
    # the image's `python` is this venv's interpreter here (the host may have no bare `python` on PATH)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "WEATHERSTREAM_WEB_PORT": str(port)}
    return subprocess.run(["/bin/sh", "-c", check.value[1]], env=env, timeout=30, check=False).returncode


def test_healthcheck_passes_when_health_answers_and_fails_otherwise(
    dockerfile_stages: list[list[Instruction]], health_server: http.server.HTTPServer
) -> None:
    port = health_server.server_address[1]
    assert run_healthcheck(dockerfile_stages, port) == 0
    _Health.status = 503
    try:
        assert run_healthcheck(dockerfile_stages, port) != 0
    finally:
        _Health.status = 200
    health_server.shutdown()
    health_server.server_close()
    assert run_healthcheck(dockerfile_stages, port) != 0  # nothing listening


def test_health_endpoint_exists_in_the_web_server() -> None:
    api = (ROOT / "weatherstream" / "web" / "api.py").read_text(encoding="utf-8")
    assert '@app.page("/health")' in api and '@app.page("/ready")' in api
