"""The stack lifecycle against real JVMs: reuse, down, conflicts and failures reported clearly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from weatherstream.cli import cli
from weatherstream.settings import Settings, load_settings
from weatherstream.stack import LocalStack, PortInUseError, ServerStartError, ServerUnhealthyError
from weatherstream.stack.process import port_open


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _isolated_settings(tmp_path: Path, **extra: object) -> Settings:
    kafka, controller, native, storage, jmx = _free_ports(5)
    return load_settings(
        stack_dir=tmp_path / "stack",
        stack_kafka_port=kafka,
        stack_kafka_controller_port=controller,
        cassandra_port=native,
        stack_cassandra_storage_port=storage,
        stack_cassandra_jmx_port=jmx,
        **extra,
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"


@pytest.fixture
def isolated_stack(tmp_path: Path) -> Iterator[LocalStack]:
    stack = LocalStack(_isolated_settings(tmp_path))
    try:
        yield stack
    finally:
        stack.down(timeout_s=10)


def test_up_again_reuses_the_running_stack(local_stack: LocalStack) -> None:
    before = {s.name: s.pid for s in local_stack.status()}
    rows = LocalStack(load_settings()).up()
    assert {r.name: r.pid for r in rows} == before
    assert all(r.state == "running" for r in rows)


def test_status_and_logs_commands_on_the_running_stack(local_stack: LocalStack) -> None:
    runner = CliRunner()
    status = runner.invoke(cli, ["stack", "status", "--json"])
    assert status.exit_code == 0, status.output
    assert '"state": "running"' in status.output and '"version": "5.0.' in status.output
    logs = runner.invoke(cli, ["stack", "logs", "kafka", "-n", "200"])
    assert logs.exit_code == 0


def test_fresh_stack_up_twice_then_down_frees_every_port(isolated_stack: LocalStack) -> None:
    rows = isolated_stack.up()
    assert {r.name: r.state for r in rows} == {"kafka": "running", "cassandra": "running"}
    assert {r.name: r.version for r in rows}["cassandra"].startswith("5.0.")
    pids = {r.name: r.pid for r in rows}
    assert all(r.rss_bytes and r.rss_bytes > 0 for r in rows)

    again = isolated_stack.up()
    assert {r.name: r.pid for r in again} == pids  # reused, not restarted

    assert isolated_stack.down() == {"kafka": True, "cassandra": True}
    ports = [*isolated_stack.kafka.ports().values(), isolated_stack.cassandra.native_port,
             isolated_stack.cassandra.storage_port]  # fmt: skip
    assert [p for p in ports if port_open("127.0.0.1", p)] == []
    assert [pid for pid in pids.values() if pid and _pid_alive(pid)] == []
    assert {s.state for s in isolated_stack.status()} == {"stopped"}

    assert any(p.exists() for p in isolated_stack.kafka.data_dirs())
    isolated_stack.down(wipe=True)
    assert not any(p.exists() for s in isolated_stack.servers for p in s.data_dirs())


def test_a_port_taken_by_a_stranger_is_reported_and_nothing_starts(tmp_path: Path) -> None:
    settings = _isolated_settings(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.stack_kafka_port))
        squatter.listen()
        stack = LocalStack(settings)
        with pytest.raises(PortInUseError, match="WEATHERSTREAM_STACK_KAFKA_PORT"):
            stack.up(timeout_s=5)
    assert stack.process("kafka").recorded_pid() is None
    assert stack.process("cassandra").recorded_pid() is None


def _fake_servers(stack: LocalStack, kafka_code: str) -> None:
    """Replace both JVMs by small Python processes (carrying the stack folder in their command line)."""
    marker = str(stack.stack_dir)
    stack.kafka.prepare = lambda java, lib: None  # type: ignore[method-assign]
    stack.cassandra.prepare = lambda java, lib: None  # type: ignore[method-assign]
    stack.kafka.command = lambda java, lib: [sys.executable, "-c", kafka_code, marker]  # type: ignore[method-assign]
    stack.cassandra.command = lambda java, lib: [  # type: ignore[method-assign]
        sys.executable, "-c", "import time; time.sleep(120)", marker,
    ]  # fmt: skip


def test_a_server_that_exits_is_named_with_its_log_tail(isolated_stack: LocalStack) -> None:
    _fake_servers(isolated_stack, "import sys; print('FATAL simulated broker failure'); sys.exit(3)")
    with pytest.raises(ServerStartError) as info:
        isolated_stack.up(timeout_s=20)
    assert info.value.server == "kafka"
    assert "FATAL simulated broker failure" in str(info.value)
    assert "exited with code 3" in str(info.value)
    assert str(isolated_stack.process("kafka").log_file) in str(info.value)


def test_a_half_dead_stack_is_reported_clearly(isolated_stack: LocalStack) -> None:
    _fake_servers(isolated_stack, "import time; time.sleep(120)")  # alive, never answers
    with pytest.raises(ServerStartError, match="did not answer"):
        isolated_stack.up(timeout_s=2)
    with pytest.raises(ServerUnhealthyError, match="half-dead"):
        isolated_stack.up(timeout_s=2)
    assert {s.state for s in isolated_stack.status()} == {"unhealthy"}


def test_cli_prints_a_clear_error_and_exit_code(tmp_path: Path) -> None:
    settings = _isolated_settings(tmp_path)
    env = {**os.environ, "WEATHERSTREAM_STACK_DIR": str(settings.stack_dir),
           "WEATHERSTREAM_STACK_KAFKA_PORT": str(settings.stack_kafka_port)}  # fmt: skip
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.stack_kafka_port))
        squatter.listen()
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "weatherstream"), "stack", "up"],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
    assert proc.returncode == 1
    assert "error:" in proc.stderr and f"port {settings.stack_kafka_port}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_data_size_skips_files_and_folders_that_vanish_while_it_walks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka removes a deleted topic's partition folders while ``stack status`` sums its data folder (the race that
    once failed a CI run); what vanishes midway is left out of the total instead of raising."""
    from weatherstream.stack import local

    kept = tmp_path / "kafka" / "topic-0"
    kept.mkdir(parents=True)
    (kept / "00.log").write_bytes(b"x" * 100)
    (kept / "link").symlink_to(kept / "00.log")  # a link's target is not counted twice
    doomed = tmp_path / "kafka" / "deleted-topic-0"
    doomed.mkdir()
    (doomed / "00.log").write_bytes(b"y" * 7)
    real_lstat = os.lstat

    def lstat_after_deletion(path: str) -> os.stat_result:
        if str(path).startswith(str(doomed)):
            (doomed / "00.log").unlink(missing_ok=True)  # the server deletes it between listing and stat
        return real_lstat(path)

    monkeypatch.setattr(local.os, "lstat", lstat_after_deletion)
    assert local._dir_size([tmp_path / "kafka", tmp_path / "never-created"]) == 100
