"""Start, identify and stop the stack's server processes by their recorded process ids.

A server is started in its own session with its output going to a log file, and its pid is
written to ``{stack_dir}/run/{name}.pid``. A pid is only trusted while the process behind it still
has the stack folder in its command line, so a recycled pid is never signalled.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

_EXEC_WINDOW_RETRIES = 40  # x 50 ms


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file, or a note that it does not exist."""
    if not path.is_file():
        return f"(no log at {path})"
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 64 * 1024))
        data = fh.read().decode("utf-8", "replace")
    return "\n".join(data.splitlines()[-lines:])


def process_rss_bytes(pid: int) -> int | None:
    """Resident memory of ``pid`` in bytes (Linux /proc), or None when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _exited(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


_children: dict[int, subprocess.Popen[bytes]] = {}


def exit_description(pid: int | None) -> str:
    """How a server this very process started ended ("exit code 1", "killed by SIGKILL"), if known."""
    proc = _children.get(pid) if pid is not None else None
    if proc is None:
        return "the process exited"
    code = proc.poll()
    if code is None:
        return "the process exited"
    if code < 0:
        try:
            return f"the process was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"the process was killed by signal {-code}"
    return f"the process exited with code {code}"


class ManagedProcess:
    """One background server process owned by a stack folder.

    Args:
        name: server name ("kafka", "cassandra"); names the pid and log files.
        stack_dir: the stack folder; its absolute path must appear in the process's command line.
    """

    def __init__(self, name: str, stack_dir: Path) -> None:
        self.name = name
        self.stack_dir = stack_dir.resolve()
        self.pid_file = self.stack_dir / "run" / f"{name}.pid"
        self.log_file = self.stack_dir / "logs" / f"{name}.log"

    def recorded_pid(self) -> int | None:
        """The pid in the pid file, or None when there is none or it is unreadable."""
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _is_ours(self, pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return False
        cmdline = Path(f"/proc/{pid}/cmdline")
        if not cmdline.exists():  # no /proc (not Linux): trust the live pid
            return True
        try:
            state, ppid = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[:2]
            if state == "Z":
                return False  # a zombie waiting for its parent is not a running server
            command = cmdline.read_bytes()
            for _ in range(_EXEC_WINDOW_RETRIES):
                # A process in the middle of exec reads as an empty command line for a moment (Popen
                # returns once exec has closed its close-on-exec pipe, before the new arguments are
                # mapped); read again rather than take the live server for gone.
                if command or _exited(pid):
                    break
                time.sleep(0.05)
                command = cmdline.read_bytes()
            if int(ppid) == os.getpid() and command == Path("/proc/self/cmdline").read_bytes():
                return True  # just started by this very process and not yet exec'd: its cmdline is still ours
            return str(self.stack_dir) in command.decode("utf-8", "replace")
        except OSError:
            return False

    def running_pid(self) -> int | None:
        """The pid of our live server process, or None when it is not running."""
        pid = self.recorded_pid()
        if pid is not None and self._is_ours(pid):
            return pid
        return None

    def start(self, cmd: Sequence[str], cwd: Path) -> int:
        """Start ``cmd`` in the background (own session, output appended to the log) and record its pid."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n===== weatherstream stack: starting {self.name} at {time.ctime()} =====\n".encode())
            log.flush()
            proc = subprocess.Popen(
                list(cmd),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        _children[proc.pid] = proc
        self.pid_file.write_text(f"{proc.pid}\n")
        logger.info("started %s (pid %d), log %s", self.name, proc.pid, self.log_file)
        return proc.pid

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM our process, SIGKILL it after ``timeout_s``; remove the pid file.

        Returns:
            True when a running process was stopped, False when none was running.
        """
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        logger.info("stopping %s (pid %d)", self.name, pid)
        os.kill(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout_s):
            logger.warning("%s (pid %d) ignored SIGTERM for %.0f s; sending SIGKILL", self.name, pid, timeout_s)
            self._sigkill(pid)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> bool:
        """SIGKILL our process at once (a crash, for failure tests) and remove the pid file.

        Returns:
            True when a running process was killed, False when none was running.
        """
        pid = self.running_pid()
        if pid is not None:
            logger.info("killing %s (pid %d)", self.name, pid)
            self._sigkill(pid)
        self.pid_file.unlink(missing_ok=True)
        return pid is not None

    def _sigkill(self, pid: int) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._wait_gone(pid, 30.0)

    def _wait_gone(self, pid: int, timeout_s: float) -> bool:
        """Wait until ``pid`` has exited (reaping it if it is our child); True when it did in time."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._reap(pid)
            if _exited(pid):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    @staticmethod
    def _reap(pid: int) -> None:
        # When this very process started the server, collect it so it does not linger as a zombie.
        child = _children.get(pid)
        if child is not None:
            child.poll()  # keeps the exit status for exit_description
            return
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
