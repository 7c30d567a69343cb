"""A single-node Apache Kafka 3.9 broker in KRaft combined mode (broker + controller), on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from pathlib import Path

from weatherstream.stack.errors import ServerStartError
from weatherstream.stack.jars import Distribution
from weatherstream.stack.process import port_open

logger = logging.getLogger(__name__)

KAFKA_VERSION = "3.9.1"
KAFKA = Distribution(
    name="kafka",
    version=KAFKA_VERSION,
    # The broker's pom carries no logging binding; reload4j is the one Kafka itself ships.
    artifacts=(
        f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}",
        "org.slf4j:slf4j-reload4j:1.7.36",
        "ch.qos.reload4j:reload4j:1.2.25",
    ),
)
# A fixed KRaft cluster id (22 characters of URL-safe base64, as `kafka-storage random-uuid` prints).
CLUSTER_ID = "V2VhdGhlcnN0cmVhbUxvYw"
HOST = "127.0.0.1"

_LOG4J = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.kafka.raft=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.state.change.logger=WARN
"""

JVM_FLAGS = (
    "-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
)  # fmt: skip


class KafkaServer:
    """Config, command line and readiness probe of the local broker.

    Args:
        stack_dir: the stack folder (absolute paths are derived from it).
        port: client (PLAINTEXT) port.
        controller_port: KRaft controller port.
    """

    name = "kafka"
    dist = KAFKA

    def __init__(self, stack_dir: Path, port: int, controller_port: int) -> None:
        self.home = stack_dir.resolve() / "kafka"
        self.port = port
        self.controller_port = controller_port
        self.config_file = self.home / "server.properties"
        self.log4j_file = self.home / "log4j.properties"
        self.data_dir = self.home / "data"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def ports(self) -> dict[str, int]:
        """Every port the broker binds, by purpose."""
        return {"client": self.port, "controller": self.controller_port}

    def data_dirs(self) -> list[Path]:
        return [self.data_dir]

    def config_text(self) -> str:
        """The broker's ``server.properties``."""
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # weatherstream creates its topics with the intended partition count; never by accident.
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "min.insync.replicas": "1",
            "default.replication.factor": "1",
            "group.initial.rebalance.delay.ms": "0",
            "delete.topic.enable": "true",
            "num.network.threads": "2",
            "num.io.threads": "4",
        }
        return "".join(f"{k}={v}\n" for k, v in settings.items())

    def prepare(self, java: str, lib: Path) -> None:
        """Write the configs and format the KRaft storage once."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.config_text())
        self.log4j_file.write_text(_LOG4J)
        if (self.data_dir / "meta.properties").is_file():
            return
        cmd = [
            java, *JVM_FLAGS, f"-Dlog4j.configuration=file:{self.log4j_file}",
            "-cp", f"{lib}/*", "kafka.tools.StorageTool",
            "format", "-t", CLUSTER_ID, "-c", str(self.config_file), "--ignore-formatted",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ServerStartError(
                self.name,
                f"formatting the KRaft storage in {self.data_dir} failed (exit code {proc.returncode})",
                self.config_file,
                (proc.stdout + proc.stderr)[-4000:],
            )

    def command(self, java: str, lib: Path) -> list[str]:
        """The command line that starts the broker in the foreground."""
        return [
            java, *JVM_FLAGS, f"-Dlog4j.configuration=file:{self.log4j_file}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            "-cp", f"{lib}/*", "kafka.Kafka", str(self.config_file),
        ]  # fmt: skip

    def probe(self) -> str | None:
        """The broker's version when a metadata request succeeds, else None."""
        if not port_open(HOST, self.port):
            return None
        try:
            brokers = asyncio.run(_metadata_broker_count(self.address))
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            logger.debug("kafka probe failed: %s", exc)
            return None
        return KAFKA_VERSION if brokers >= 1 else None


async def _metadata_broker_count(bootstrap: str) -> int:
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await client.bootstrap()
        return len(client.cluster.brokers())
    finally:
        await client.close()
