"""Apache Cassandra 5.0 nodes on loopback addresses, launched with `java` directly.

One node on 127.0.0.1 by default (SimpleSnitch). A cluster (``weatherstream stack up --cassandra-nodes 3``)
puts node N on 127.0.0.N, all on the same ports except JMX (which listens on 127.0.0.1 only), in one data
center with ``GossipingPropertyFileSnitch``, one token each, spread evenly over the ring; node 1 is the
seed. The nodes of a new cluster join without bootstrapping (there is no data to stream yet), one after
another, each once the ones before it see it.

The stock ``bin/cassandra`` script is not used: it refuses root, sizes the heap from the machine
(~6 GB here) and is not in the Maven artifacts. The JVM flags below are those of Cassandra 5.0's
``conf/jvm17-server.options`` that a node needs on Java 17.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from weatherstream.stack.jars import Distribution
from weatherstream.stack.process import port_open

logger = logging.getLogger(__name__)

CASSANDRA_VERSION = "5.0.6"
CASSANDRA = Distribution(
    name="cassandra",
    version=CASSANDRA_VERSION,
    artifacts=(f"org.apache.cassandra:cassandra-all:{CASSANDRA_VERSION}",),
)
HOST = "127.0.0.1"
DATA_CENTER = "datacenter1"
CLUSTER_HEAP = "768M"  # per node of a cluster: three nodes, three brokers and two workers fit the machine
MAX_NODES = 9  # 127.0.0.1 to 127.0.0.9


def node_host(node: int) -> str:
    """The loopback address of node ``node`` (1-based) of a local cluster."""
    if not 1 <= node <= MAX_NODES:
        raise ValueError(f"a local Cassandra cluster has 1 to {MAX_NODES} nodes, not {node}")
    return f"127.0.0.{node}"


def initial_token(node: int, nodes: int) -> int:
    """Node ``node``'s token: ``nodes`` tokens spread evenly over Murmur3's ring (0 for a single node)."""
    if nodes == 1:
        return 0
    return -(2**63) + (node - 1) * (2**64 // nodes)


_ADD_EXPORTS = (
    "java.base/jdk.internal.misc", "java.management.rmi/com.sun.jmx.remote.internal.rmi",
    "java.rmi/sun.rmi.registry", "java.rmi/sun.rmi.server", "java.sql/java.sql", "java.base/java.lang.ref",
    "jdk.unsupported/sun.misc", "jdk.compiler/com.sun.tools.javac.file", "jdk.attach/sun.tools.attach",
)  # fmt: skip
_ADD_OPENS = (
    "java.base/java.lang.module", "java.base/jdk.internal.loader", "java.base/jdk.internal.ref",
    "java.base/jdk.internal.reflect", "java.base/jdk.internal.math", "java.base/jdk.internal.module",
    "java.base/jdk.internal.util.jar", "jdk.management/com.sun.management.internal", "java.base/sun.nio.ch",
    "java.base/java.io", "java.base/java.lang.reflect", "jdk.compiler/com.sun.tools.javac",
    "java.base/java.lang", "java.base/java.util", "java.base/java.nio",
)  # fmt: skip

_LOGBACK = """\
<configuration scan="false">
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.apache.cassandra" level="INFO"/>
  <logger name="com.datastax" level="WARN"/>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
"""


class CassandraServer:
    """Config, command line and readiness probe of the local node.

    Args:
        stack_dir: the stack folder.
        native_port: CQL native protocol port (clients).
        storage_port: inter-node (gossip) port; bound even by a single node.
        jmx_port: local JMX port, which enables ``nodetool``.
        node: this node's number (1-based); ``nodes``: how many the cluster has (1: a single node).
        name: the server's name in the stack (its folder, pid file and log are named after it).
    """

    dist = CASSANDRA

    def __init__(self, stack_dir: Path, native_port: int, storage_port: int, jmx_port: int,
                 auth: bool = False, *, node: int = 1, nodes: int = 1, name: str = "cassandra") -> None:  # fmt: skip
        self.auth = auth
        self.name = name
        self.node, self.nodes = node, nodes
        self.host = node_host(node)
        self.home = stack_dir.resolve() / name
        self.native_port = native_port
        self.storage_port = storage_port
        self.jmx_port = jmx_port
        self.config_file = self.home / "conf" / "cassandra.yaml"
        self.rackdc_file = self.home / "conf" / "cassandra-rackdc.properties"
        self.logback_file = self.home / "conf" / "logback.xml"
        self.data_dir = self.home / "data"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.native_port}"

    def ports(self) -> dict[str, tuple[str, int]]:
        """Every (host, port) the node binds, by purpose."""
        return {"native": (self.host, self.native_port), "storage": (self.host, self.storage_port),
                "jmx": (HOST, self.jmx_port)}  # fmt: skip

    def data_dirs(self) -> list[Path]:
        return [self.data_dir]

    def config_text(self) -> str:
        """The node's ``cassandra.yaml``: one token, loopback only, small thread pools, larger batch warnings."""
        d = self.data_dir
        cluster = self.nodes > 1
        return f"""\
cluster_name: weatherstream-local
num_tokens: 1
initial_token: {initial_token(self.node, self.nodes)}
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: {"GossipingPropertyFileSnitch" if cluster else "SimpleSnitch"}
auto_bootstrap: {"false" if cluster else "true"}
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{HOST}:{self.storage_port}"
listen_address: {self.host}
rpc_address: {self.host}
storage_port: {self.storage_port}
native_transport_port: {self.native_port}
start_native_transport: true
commitlog_sync: periodic
commitlog_sync_period: 10000ms
commitlog_segment_size: 32MiB
data_file_directories:
  - {d / "data"}
commitlog_directory: {d / "commitlog"}
saved_caches_directory: {d / "saved_caches"}
hints_directory: {d / "hints"}
cdc_raw_directory: {d / "cdc_raw"}
auto_snapshot: false
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 4
concurrent_compactors: 1
disk_failure_policy: stop
commit_failure_policy: stop
# The sink packs small partitions that share a replica into one unlogged batch, up to these (it reads them):
# with one observation per station, about 26 rows per request rather than 4 (docs/scaling.md).
unlogged_batch_across_partitions_warn_threshold: 50
batch_size_warn_threshold: 32KiB
""" + (self.AUTH_CONFIG if self.auth else "")

    #: PasswordAuthenticator with roles and permissions; the node creates the superuser
    #: ``cassandra`` (password ``cassandra``) on first start. For tests of a role limited to a keyspace.
    AUTH_CONFIG = """\
authenticator: PasswordAuthenticator
authorizer: CassandraAuthorizer
role_manager: CassandraRoleManager
"""
    SUPERUSER = ("cassandra", "cassandra")

    def prepare(self, java: str, lib: Path) -> None:
        """Write ``cassandra.yaml`` and the logging config."""
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.config_text())
        self.rackdc_file.write_text(f"dc={DATA_CENTER}\nrack=rack1\n")  # read by GossipingPropertyFileSnitch
        self.logback_file.write_text(_LOGBACK)

    def command(self, java: str, lib: Path) -> list[str]:
        """The command line that starts the node in the foreground."""
        heap = "1G" if self.nodes == 1 else CLUSTER_HEAP
        cmd = [
            java,
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-Xss256k",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=300",
            # a node out of heap stops, so `stack status` says so (it would otherwise stay up, answering nothing)
            "-XX:+ExitOnOutOfMemoryError",
        ]
        cmd += [f"--add-exports={m}=ALL-UNNAMED" for m in _ADD_EXPORTS]
        cmd += [f"--add-opens={m}=ALL-UNNAMED" for m in _ADD_OPENS]
        jamm = sorted(lib.glob("*jamm*.jar"))
        if jamm:  # accurate memtable sizing; the node runs without it too
            cmd.append(f"-javaagent:{jamm[-1]}")
        cmd += [
            "-Djdk.attach.allowAttachSelf=true",
            "-Dio.netty.tryReflectionSetAccessible=true",
            "-Djava.net.preferIPv4Stack=true",
            f"-Dcassandra.config={self.config_file.as_uri()}",
            "-Dcassandra-foreground=yes",
            f"-Dcassandra.storagedir={self.data_dir}",
            f"-Dcassandra.logdir={self.home / 'logs'}",
            f"-Dlogback.configurationFile={self.logback_file}",
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-Dcassandra.load_ring_state=false",
            "-Dcassandra.libjemalloc=-",
            f"-Dcassandra.jmx.local.port={self.jmx_port}",
            *(["-Dcassandra.superuser_setup_delay_ms=0"] if self.auth else []),
            "-cp", f"{self.config_file.parent}:{lib}/*",
            "org.apache.cassandra.service.CassandraDaemon",
        ]  # fmt: skip
        return cmd

    def probe(self) -> str | None:
        """The node's ``release_version`` once it answers CQL itself (and, in a cluster, sees the nodes started
        before it as up), else None."""
        if not port_open(self.host, self.native_port):
            return None
        from weatherstream.db import connect

        try:
            user, password = self.SUPERUSER if self.auth else (None, None)
            cluster, session = connect([self.host], self.native_port, connect_timeout_s=3, request_timeout_s=5,
                                       username=user, password=password, only_contact_points=True)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            logger.debug("cassandra probe failed: %s", exc)
            return None
        try:
            row = session.execute("SELECT release_version FROM system.local").one()
            if row is None:
                return None
            if self.nodes > 1 and len(self.ring_peers(session)) < self.node - 1:
                return None  # the nodes started before it are not in its view of the ring yet
            return str(row.release_version)
        except Exception as exc:  # noqa: BLE001
            logger.debug("cassandra probe query failed: %s", exc)
            return None
        finally:
            cluster.shutdown()

    def ring_peers(self, session: Any) -> list[str]:
        """The other nodes that this node's gossip has heard of as members of the ring (status NORMAL) taking
        clients (an earlier state: gossip keeps a node's last state after it went down)."""
        rows = session.execute("SELECT address, status_with_port, rpc_ready FROM system_views.gossip_info")
        return [
            str(r.address) for r in rows
            if str(r.address) != self.host and str(r.status_with_port).startswith("NORMAL") and r.rpc_ready == "true"
        ]  # fmt: skip
