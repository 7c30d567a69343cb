"""The local stack: one Kafka broker and one Cassandra node, started and stopped together.

``up`` fetches the jars (first time only), writes the configs into the stack folder, starts both JVMs
in the background at once and waits until a Kafka metadata request and
``SELECT release_version FROM system.local`` both succeed. A healthy running stack is reused. ``down``
stops both by their recorded pids.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from weatherstream.settings import Settings
from weatherstream.stack.cassandra import CassandraServer
from weatherstream.stack.errors import (
    PortInUseError,
    ServerStartError,
    ServerUnhealthyError,
    StackError,
    ToolNotFoundError,
)
from weatherstream.stack.jars import Distribution, ensure_jars, is_cached, require_tool
from weatherstream.stack.kafka import KafkaServer
from weatherstream.stack.process import ManagedProcess, exit_description, port_open, process_rss_bytes, tail

logger = logging.getLogger(__name__)

MIN_JAVA = 17
POLL_INTERVAL_S = 1.0


class Server(Protocol):
    """What the stack needs to know about one server."""

    name: str
    dist: Distribution

    @property
    def address(self) -> str: ...
    def ports(self) -> dict[str, int]: ...
    def data_dirs(self) -> list[Path]: ...
    def prepare(self, java: str, lib: Path) -> None: ...
    def command(self, java: str, lib: Path) -> list[str]: ...
    def probe(self) -> str | None: ...


@dataclass(frozen=True)
class ServerStatus:
    """One server as ``stack status`` shows it.

    Attributes:
        state: "running" (answers), "unhealthy" (process alive, not answering) or "stopped".
        rss_bytes: resident memory of the JVM, when running.
        data_bytes: size of the server's data folders on disk.
    """

    name: str
    state: str
    pid: int | None
    address: str
    version: str | None
    rss_bytes: int | None
    data_bytes: int
    log_path: Path


@dataclass
class Progress:
    """What ``up`` reports while it waits: per server, a phase and the seconds since ``up`` began."""

    phases: dict[str, str]
    elapsed_s: float


ProgressCallback = Callable[[Progress], None]


def _dir_size(paths: list[Path]) -> int:
    """Bytes in regular files under ``paths``. A running server deletes files and folders while this walks (Kafka
    removes a deleted topic's partition folders), so whatever vanishes midway is skipped, not an error."""
    total = 0
    for root in paths:
        for folder, _dirs, files in os.walk(root):  # os.walk ignores folders that vanish before it lists them
            for name in files:
                try:
                    st = os.lstat(os.path.join(folder, name))
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    total += st.st_size
    return total


def _java_major(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


class LocalStack:
    """The Kafka + Cassandra pair owned by one stack folder.

    Args:
        settings: ports, stack folder and jar cache come from here.
    """

    def __init__(self, settings: Settings) -> None:
        from weatherstream.kafka_clients import KafkaSecurity  # aiokafka: imported only when a stack is used

        self.settings = settings
        self.stack_dir = settings.stack_dir.resolve()
        self.kafka = KafkaServer(
            self.stack_dir,
            settings.stack_kafka_port,
            settings.stack_kafka_controller_port,
            sasl=KafkaSecurity.from_settings(settings) if settings.stack_kafka_sasl else None,
        )
        self.cassandra = CassandraServer(
            self.stack_dir,
            settings.cassandra_port,
            settings.stack_cassandra_storage_port,
            settings.stack_cassandra_jmx_port,
            auth=settings.stack_cassandra_auth,
        )
        self.servers: tuple[Server, ...] = (self.kafka, self.cassandra)

    def process(self, name: str) -> ManagedProcess:
        """The managed process of server ``name`` ("kafka" or "cassandra")."""
        if name not in {s.name for s in self.servers}:
            raise StackError(f"unknown server {name!r}: use 'kafka' or 'cassandra'")
        return ManagedProcess(name, self.stack_dir)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        # Two `up`s at once (two terminals, parallel test runners) must not start two JVMs.
        lock_path = self.stack_dir / "run" / "stack.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def up(self, timeout_s: float | None = None, progress: ProgressCallback | None = None) -> list[ServerStatus]:
        """Start what is not running and wait until both servers answer.

        Returns:
            The status of both servers once ready.

        Raises:
            ToolNotFoundError: java or mvn is missing, or java is older than 17.
            JarFetchError: Maven Central could not be reached.
            PortInUseError: a port is taken by a process this stack did not start.
            ServerStartError: a server exited or did not answer in time (with its log tail).
            ServerUnhealthyError: a server of ours was already running but never answered.
            StackError: the Kafka security settings do not fit ``WEATHERSTREAM_STACK_KAFKA_SASL`` (which
                variables to set), or the broker refuses the configured SASL credentials.
        """
        timeout_s = self.settings.stack_start_timeout_s if timeout_s is None else timeout_s
        self.kafka.check_sasl()  # a running broker too: its probe logs in with these settings
        started = time.monotonic()
        phases = {s.name: "checking" for s in self.servers}

        def report() -> None:
            if progress is not None:
                progress(Progress(dict(phases), time.monotonic() - started))

        with self._lock():
            java = require_tool(
                "java", "Install a Java 17 runtime (Debian: `apt-get install openjdk-17-jre-headless`)."
            )
            to_start: list[Server] = []
            preexisting: set[str] = set()
            for server in self.servers:
                proc = self.process(server.name)
                if proc.running_pid() is not None:
                    preexisting.add(server.name)
                    phases[server.name] = "running, checking"
                    continue
                if proc.recorded_pid() is not None:
                    logger.warning("%s was not running (stale pid file); starting it again", server.name)
                    proc.pid_file.unlink(missing_ok=True)
                for purpose, port in server.ports().items():
                    if port_open("127.0.0.1", port):
                        raise PortInUseError(
                            f"port {port} ({server.name} {purpose}) is in use by a process this stack did not "
                            f"start. Stop that process, or choose another port with "
                            f"WEATHERSTREAM_{_port_setting(server.name, purpose)}."
                        )
                to_start.append(server)
            report()

            if to_start:
                major = _java_major(java)
                if major < MIN_JAVA:
                    raise ToolNotFoundError(
                        f"`{java}` is Java {major or 'of unknown version'}; the stack needs Java {MIN_JAVA} or "
                        f"newer (Cassandra 5.0). Put a Java 17 runtime first on PATH."
                    )
                libs = self._fetch(to_start, phases, report)
                for server in to_start:
                    phases[server.name] = "starting"
                    report()
                    server.prepare(java, libs[server.name])
                    self.process(server.name).start(server.command(java, libs[server.name]), cwd=self.stack_dir)

            pending = {s.name: s for s in self.servers}
            versions: dict[str, str] = {}
            while pending:
                for name, server in list(pending.items()):
                    proc = self.process(name)
                    if proc.running_pid() is None:
                        raise ServerStartError(
                            name, exit_description(proc.recorded_pid()), proc.log_file, tail(proc.log_file)
                        )
                    version = server.probe()
                    if version is not None:
                        versions[name] = version
                        phases[name] = f"ready ({version})"
                        del pending[name]
                    elif name not in preexisting:
                        phases[name] = "waiting for it to answer"
                report()
                if not pending:
                    break
                if time.monotonic() - started > timeout_s:
                    name = next(iter(pending))
                    proc = self.process(name)
                    if name in preexisting:
                        raise ServerUnhealthyError(
                            f"{name} (pid {proc.running_pid()}) is running but has not answered on "
                            f"{pending[name].address} for {timeout_s:.0f} s: the stack is half-dead. "
                            f"Look at {proc.log_file}, then run `weatherstream stack down` and "
                            f"`weatherstream stack up`."
                        )
                    raise ServerStartError(
                        name,
                        f"it did not answer on {pending[name].address} within {timeout_s:.0f} s",
                        proc.log_file,
                        tail(proc.log_file),
                    )
                time.sleep(POLL_INTERVAL_S)
        return [self._status(s, versions.get(s.name)) for s in self.servers]

    def _fetch(self, servers: list[Server], phases: dict[str, str], report: Callable[[], None]) -> dict[str, Path]:
        cache = self.settings.cache_dir
        for server in servers:
            phases[server.name] = "jars cached" if is_cached(cache, server.dist) else "fetching jars from Maven Central"
        report()
        with ThreadPoolExecutor(max_workers=len(servers)) as pool:
            futures = {s.name: pool.submit(ensure_jars, cache, s.dist) for s in servers}
            return {name: fut.result() for name, fut in futures.items()}

    def down(self, wipe: bool = False, timeout_s: float = 30.0) -> dict[str, bool]:
        """Stop both servers (SIGTERM, then SIGKILL after ``timeout_s``); ``wipe`` deletes their data.

        Returns:
            Per server, whether a running process was stopped.
        """
        with self._lock():
            with ThreadPoolExecutor(max_workers=len(self.servers)) as pool:
                futures = {s.name: pool.submit(self.process(s.name).stop, timeout_s) for s in self.servers}
                stopped = {name: fut.result() for name, fut in futures.items()}
            if wipe:
                for server in self.servers:
                    for path in server.data_dirs():
                        if path.exists():
                            logger.info("deleting %s data in %s", server.name, path)
                            shutil.rmtree(path)
        return stopped

    def status(self) -> list[ServerStatus]:
        """The state of both servers (probing the running ones)."""
        return [self._status(s, None) for s in self.servers]

    def _status(self, server: Server, version: str | None) -> ServerStatus:
        proc = self.process(server.name)
        pid = proc.running_pid()
        if pid is None:
            state = "stopped"
        else:
            for attempt in range(3):  # one slow answer on a busy machine is not a dead server
                try:
                    version = version or server.probe()
                except StackError as exc:  # it answers, but not to us (e.g. refused credentials)
                    logger.warning("%s", exc)
                    break
                if version or attempt == 2:
                    break
                time.sleep(1.0)
            state = "running" if version else "unhealthy"
        return ServerStatus(
            name=server.name,
            state=state,
            pid=pid,
            address=server.address,
            version=version if pid is not None else None,
            rss_bytes=process_rss_bytes(pid) if pid is not None else None,
            data_bytes=_dir_size(server.data_dirs()),
            log_path=proc.log_file,
        )


def _port_setting(server: str, purpose: str) -> str:
    return {
        ("kafka", "client"): "STACK_KAFKA_PORT",
        ("kafka", "controller"): "STACK_KAFKA_CONTROLLER_PORT",
        ("cassandra", "native"): "CASSANDRA_PORT",
        ("cassandra", "storage"): "STACK_CASSANDRA_STORAGE_PORT",
        ("cassandra", "jmx"): "STACK_CASSANDRA_JMX_PORT",
    }[(server, purpose)]
