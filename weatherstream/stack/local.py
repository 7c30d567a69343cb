"""The local stack: Kafka brokers and Cassandra nodes (one of each by default), started and stopped together.

``up`` fetches the jars (first time only), writes the configs into the stack folder, starts the JVMs in
the background (the brokers and the first Cassandra node at once, each further node once the one before
it is ready) and waits until a Kafka metadata request and ``SELECT release_version FROM system.local``
succeed on each. A healthy running stack is reused. ``down`` stops them by their recorded pids. ``up``
records how many brokers and nodes it started (``run/topology.json``), so that ``down``, ``status`` and
``logs`` find them all.
"""

from __future__ import annotations

import fcntl
import json
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
from weatherstream.stack.cassandra import DATA_CENTER, CassandraServer
from weatherstream.stack.errors import (
    PortInUseError,
    ServerStartError,
    ServerUnhealthyError,
    StackError,
    ToolNotFoundError,
)
from weatherstream.stack.jars import Distribution, ensure_jars, is_cached, require_tool
from weatherstream.stack.kafka import KafkaServer, replication
from weatherstream.stack.process import ManagedProcess, exit_description, port_open, process_rss_bytes, tail

logger = logging.getLogger(__name__)

MIN_JAVA = 17
POLL_INTERVAL_S = 1.0
PORT_STEP = 100  # broker N of a cluster listens on the first broker's ports plus PORT_STEP x (N - 1)


class Server(Protocol):
    """What the stack needs to know about one server."""

    name: str
    dist: Distribution

    @property
    def host(self) -> str: ...
    @property
    def address(self) -> str: ...
    def ports(self) -> dict[str, tuple[str, int]]: ...
    def data_dirs(self) -> list[Path]: ...
    def prepare(self, java: str, lib: Path) -> None: ...
    def command(self, java: str, lib: Path) -> list[str]: ...
    def probe(self) -> str | None: ...


@dataclass(frozen=True)
class Topology:
    """How many Kafka brokers and Cassandra nodes a stack has; recorded in its folder by ``up``."""

    kafka_brokers: int = 1
    cassandra_nodes: int = 1

    FILE = Path("run") / "topology.json"

    @classmethod
    def read(cls, stack_dir: Path) -> Topology | None:
        try:
            doc = json.loads((stack_dir / cls.FILE).read_text())
            return cls(int(doc["kafka_brokers"]), int(doc["cassandra_nodes"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise StackError(
                f"{stack_dir / cls.FILE} is damaged ({exc}): delete it and run `weatherstream stack down` with "
                "--kafka-brokers / --cassandra-nodes as the stack was started"
            ) from exc

    def write(self, stack_dir: Path) -> None:
        path = stack_dir / self.FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"kafka_brokers": self.kafka_brokers, "cassandra_nodes": self.cassandra_nodes}))

    def applied_to(self, settings: Settings) -> Settings:
        return settings.model_copy(
            update={"stack_kafka_brokers": self.kafka_brokers, "stack_cassandra_nodes": self.cassandra_nodes}
        )

    def describe(self) -> str:
        return f"{self.kafka_brokers} Kafka broker(s) and {self.cassandra_nodes} Cassandra node(s)"


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
        sasl = KafkaSecurity.from_settings(settings) if settings.stack_kafka_sasl else None
        brokers, nodes = settings.stack_kafka_brokers, settings.stack_cassandra_nodes
        voters = {i: settings.stack_kafka_controller_port + PORT_STEP * (i - 1) for i in range(1, brokers + 1)}
        self.kafka_brokers = [
            KafkaServer(self.stack_dir, settings.stack_kafka_port + PORT_STEP * (i - 1), voters[i], sasl,
                        node_id=i, voters=voters, name="kafka" if brokers == 1 else f"kafka-{i}",
                        secret_file=None if brokers == 1 else self.stack_dir / "kafka-broker-scram.secret")
            for i in voters
        ]  # fmt: skip
        self.cassandra_nodes = [
            CassandraServer(self.stack_dir, settings.cassandra_port, settings.stack_cassandra_storage_port,
                            settings.stack_cassandra_jmx_port + PORT_STEP * (i - 1), auth=settings.stack_cassandra_auth,
                            node=i, nodes=nodes, name="cassandra" if nodes == 1 else f"cassandra-{i}")
            for i in range(1, nodes + 1)
        ]  # fmt: skip
        self.kafka, self.cassandra = self.kafka_brokers[0], self.cassandra_nodes[0]
        self.servers: tuple[Server, ...] = (*self.kafka_brokers, *self.cassandra_nodes)
        # Cassandra nodes join one after another; the brokers start together (a quorum needs a majority).
        self.after = {n.name: p.name for p, n in zip(self.cassandra_nodes, self.cassandra_nodes[1:], strict=False)}

    @classmethod
    def recorded(cls, settings: Settings) -> LocalStack:
        """The stack last brought up in ``settings.stack_dir`` (its number of brokers and nodes), to stop or
        inspect it; the settings' own numbers if none was."""
        topology = Topology.read(settings.stack_dir.resolve())
        if topology is None:
            return cls(settings)
        return cls(topology.applied_to(settings))

    @property
    def topology(self) -> Topology:
        return Topology(len(self.kafka_brokers), len(self.cassandra_nodes))

    def client_settings(self) -> dict[str, str]:
        """The environment variables that point weatherstream at this stack (replication too, for a cluster)."""
        env = {
            "WEATHERSTREAM_BROKER": ",".join(f"kafka://{b.address}" for b in self.kafka_brokers),
            "WEATHERSTREAM_CASSANDRA_HOSTS": ",".join(n.host for n in self.cassandra_nodes),
            "WEATHERSTREAM_CASSANDRA_PORT": str(self.settings.cassandra_port),
        }
        if len(self.kafka_brokers) > 1:
            replicas, min_insync = replication(len(self.kafka_brokers))  # what the brokers' own topics have
            env["WEATHERSTREAM_TOPIC_REPLICATION_FACTOR"] = str(replicas)
            env["WEATHERSTREAM_TOPIC_MIN_INSYNC_REPLICAS"] = str(min_insync)
        if len(self.cassandra_nodes) > 1:
            replicas = min(3, len(self.cassandra_nodes))
            env["WEATHERSTREAM_CASSANDRA_LOCAL_DC"] = DATA_CENTER
            env["WEATHERSTREAM_CASSANDRA_REPLICATION"] = f"NetworkTopologyStrategy:{DATA_CENTER}={replicas}"
            env["WEATHERSTREAM_CASSANDRA_CONSISTENCY"] = "LOCAL_QUORUM"
        return env

    def process(self, name: str) -> ManagedProcess:
        """The managed process of server ``name`` ("kafka" and "cassandra", or "kafka-1", "cassandra-2", ...)."""
        names = [s.name for s in self.servers]
        if name not in names:
            raise StackError(f"unknown server {name!r}: this stack has {', '.join(names)}")
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
            self._check_topology()
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
                for purpose, (host, port) in server.ports().items():
                    if port_open(host, port):
                        raise PortInUseError(
                            f"port {port} on {host} ({server.name} {purpose}) is in use by a process this stack did "
                            f"not start. Stop that process, or choose another port with "
                            f"WEATHERSTREAM_{_port_setting(server.name, purpose)}."
                        )
                to_start.append(server)
            report()

            libs: dict[str, Path] = {}
            if to_start:
                major = _java_major(java)
                if major < MIN_JAVA:
                    raise ToolNotFoundError(
                        f"`{java}` is Java {major or 'of unknown version'}; the stack needs Java {MIN_JAVA} or "
                        f"newer (Cassandra 5.0). Put a Java 17 runtime first on PATH."
                    )
                libs = self._fetch(to_start, phases, report)
                self.topology.write(self.stack_dir)

            waiting = list(to_start)  # not started yet: each starts once the server it comes after is ready
            pending = {s.name: s for s in self.servers}
            versions: dict[str, str] = {}
            while pending:
                for server in list(waiting):
                    before = self.after.get(server.name)
                    if before is not None and before in pending:
                        phases[server.name] = f"waits for {before}"
                        continue
                    phases[server.name] = "starting"
                    report()
                    lib = libs[server.dist.name]
                    server.prepare(java, lib)
                    self.process(server.name).start(server.command(java, lib), cwd=self.stack_dir)
                    waiting.remove(server)
                for name, server in list(pending.items()):
                    if server in waiting:
                        continue
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
                    name = next(n for n in pending if pending[n] not in waiting)
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

    def kill(self, name: str) -> bool:
        """SIGKILL server ``name`` (a crash: no clean shutdown); ``up`` starts it again."""
        return self.process(name).kill()

    def active_controller(self) -> str | None:
        """The name of the broker whose controller leads the KRaft quorum (None: no node knows of a leader)."""
        known = [b.quorum_leader() for b in self.kafka_brokers]
        leader = max((k for k in known if k is not None and k[0] >= 0), key=lambda k: k[1], default=None)
        if leader is None:
            return None
        return next((b.name for b in self.kafka_brokers if b.node_id == leader[0]), None)

    def _check_topology(self) -> None:
        """Refuse to start servers next to a running stack of another size in the same folder."""
        recorded = Topology.read(self.stack_dir)
        if recorded is None or recorded == self.topology:
            return
        other = LocalStack.recorded(self.settings)
        running = [srv.name for srv in other.servers if other.process(srv.name).running_pid() is not None]
        if running:
            raise StackError(
                f"the stack in {self.stack_dir} runs with {recorded.describe()} ({', '.join(running)}), not "
                f"{self.topology.describe()}: run `weatherstream stack down` first, or use another --stack-dir"
            )

    def _fetch(self, servers: list[Server], phases: dict[str, str], report: Callable[[], None]) -> dict[str, Path]:
        """The jar folder of each distribution the servers need, by distribution name."""
        cache = self.settings.cache_dir
        for server in servers:
            phases[server.name] = "jars cached" if is_cached(cache, server.dist) else "fetching jars from Maven Central"
        report()
        dists = {s.dist.name: s.dist for s in servers}
        with ThreadPoolExecutor(max_workers=len(dists)) as pool:
            futures = {name: pool.submit(ensure_jars, cache, dist) for name, dist in dists.items()}
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
    server = server.split("-")[0]  # kafka-2 -> kafka
    return {
        ("kafka", "client"): "STACK_KAFKA_PORT",
        ("kafka", "controller"): "STACK_KAFKA_CONTROLLER_PORT",
        ("cassandra", "native"): "CASSANDRA_PORT",
        ("cassandra", "storage"): "STACK_CASSANDRA_STORAGE_PORT",
        ("cassandra", "jmx"): "STACK_CASSANDRA_JMX_PORT",
    }[(server, purpose)]
