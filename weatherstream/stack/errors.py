"""Errors of the local Kafka + Cassandra stack. Each message says what to do next."""

from __future__ import annotations

from pathlib import Path

from weatherstream.errors import WeatherStreamError


class StackError(WeatherStreamError):
    """Something about the local stack (``weatherstream stack ...``) went wrong."""


class ToolNotFoundError(StackError):
    """A program the stack needs (java, mvn) is not installed or not on PATH."""


class JarFetchError(StackError):
    """Maven could not fetch the server jars from Maven Central."""


class PortInUseError(StackError):
    """A port the stack needs is taken by a process the stack did not start."""


class ServerStartError(StackError):
    """A server exited or never became ready; carries the tail of its log."""

    def __init__(self, server: str, reason: str, log_path: Path, log_tail: str) -> None:
        self.server = server
        self.log_path = log_path
        self.log_tail = log_tail
        super().__init__(
            f"{server} failed to start: {reason}\n"
            f"--- last lines of {log_path} ---\n{log_tail}\n--- end of log ---\n"
            f"Fix the cause above, then run `weatherstream stack down` and `weatherstream stack up` again "
            f"(add --wipe to `down` to start from empty data)."
        )


class ServerUnhealthyError(StackError):
    """A server process of ours is running but does not answer (a half-dead stack)."""
