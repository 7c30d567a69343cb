import os
import signal
import sys
import time
from pathlib import Path

import pytest

from weatherstream.stack import process as process_module
from weatherstream.stack.process import ManagedProcess, exit_description, port_open, tail


def _sleeper(stack_dir: Path, ignore_term: bool = False) -> list[str]:
    code = "import signal, time\n"
    if ignore_term:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "time.sleep(120)\n"
    # The stack folder is an argument so the process is recognisably ours, as the real servers are.
    return [sys.executable, "-c", code, str(stack_dir.resolve())]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_start_records_pid_and_stop_terminates(tmp_path: Path) -> None:
    proc = ManagedProcess("demo", tmp_path)
    pid = proc.start(_sleeper(tmp_path), cwd=tmp_path)
    assert proc.recorded_pid() == pid and proc.running_pid() == pid
    assert proc.stop(timeout_s=10) is True
    assert not _alive(pid)
    assert not proc.pid_file.exists()
    assert proc.stop() is False


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    proc = ManagedProcess("stubborn", tmp_path)
    pid = proc.start(_sleeper(tmp_path, ignore_term=True), cwd=tmp_path)
    import time

    time.sleep(0.5)  # let it install its SIGTERM handler
    assert proc.stop(timeout_s=1) is True
    assert not _alive(pid)


def test_a_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    proc = ManagedProcess("demo", tmp_path)
    proc.pid_file.parent.mkdir(parents=True)
    proc.pid_file.write_text(f"{os.getpid()}\n")  # a live process that is not ours: this test runner
    assert proc.running_pid() is None
    assert proc.stop() is False  # and this process is still here to assert it
    assert not proc.pid_file.exists()


def test_output_goes_to_the_log_and_tail_reads_it(tmp_path: Path) -> None:
    proc = ManagedProcess("talker", tmp_path)
    pid = proc.start([sys.executable, "-c", "print('hello from the server')", str(tmp_path)], cwd=tmp_path)
    os.waitpid(pid, 0)
    assert "hello from the server" in tail(proc.log_file)
    assert "no log" in tail(tmp_path / "missing.log")


def test_port_open_sees_a_listener(tmp_path: Path) -> None:
    import socket

    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        assert port_open("127.0.0.1", port)
    assert not port_open("127.0.0.1", port)


def test_a_server_started_a_moment_ago_counts_as_running_before_it_execs(tmp_path: Path) -> None:
    # Between fork and exec the child's command line is still this process's: it must not look "exited".
    proc = ManagedProcess("demo", tmp_path)
    proc.pid_file.parent.mkdir(parents=True)
    pid = os.fork()
    if pid == 0:  # the child: never execs, exits by itself
        time.sleep(3)
        os._exit(0)
    try:
        proc.pid_file.write_text(f"{pid}\n")
        assert proc.running_pid() == pid
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_a_server_in_the_middle_of_exec_is_not_taken_for_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # During exec the kernel shows an empty command line for a moment; CI once saw a starting Cassandra
    # "exit" that way. The first reads come back empty here, as they do in that window.
    proc = ManagedProcess("demo", tmp_path)
    pid = proc.start(_sleeper(tmp_path), cwd=tmp_path)
    empty_reads = {"left": 5}

    class ExecWindowPath(type(Path())):  # type: ignore[misc]
        def read_bytes(self) -> bytes:
            if self.name == "cmdline" and str(pid) in self.parts and empty_reads["left"] > 0:
                empty_reads["left"] -= 1
                return b""
            return super().read_bytes()

    monkeypatch.setattr(process_module, "Path", ExecWindowPath)
    try:
        assert proc.running_pid() == pid
        assert empty_reads["left"] == 0
    finally:
        monkeypatch.undo()
        proc.stop(timeout_s=10)


def test_exit_description_says_how_a_started_server_ended(tmp_path: Path) -> None:
    proc = ManagedProcess("demo", tmp_path)
    pid = proc.start([sys.executable, "-c", "import sys; sys.exit(7)", str(tmp_path.resolve())], cwd=tmp_path)
    deadline = time.monotonic() + 10
    while proc.running_pid() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert exit_description(pid) == "the process exited with code 7"

    killed = ManagedProcess("killed", tmp_path)
    pid = killed.start(_sleeper(tmp_path), cwd=tmp_path)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while killed.running_pid() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert exit_description(pid) == "the process was killed by SIGKILL"
    assert exit_description(None) == "the process exited"
