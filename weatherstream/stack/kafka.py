"""Apache Kafka 3.9 brokers in KRaft combined mode (each a broker and a controller), on 127.0.0.1.

One broker by default; a cluster (``weatherstream stack up --kafka-brokers 3``) is that many combined nodes
whose controllers form the KRaft quorum (static voters), each with its own ports and folder. Combined nodes
and not separate controllers: three JVMs instead of six on a 2-core machine, and killing one still takes
away a broker and, if it was the active one, the quorum's leader. Internal topics are replicated to three
brokers (or all, if fewer) with ``min.insync.replicas`` 2.

Clients connect over PLAINTEXT, or with ``WEATHERSTREAM_STACK_KAFKA_SASL`` over SASL_PLAINTEXT with
SCRAM-SHA-256 or SCRAM-SHA-512. SCRAM users live in the KRaft metadata log; without a running broker to
ask, they are written when the storage is formatted (``StorageTool format --add-scram``): the client user
of ``WEATHERSTREAM_KAFKA_USERNAME``/``_PASSWORD``, and the broker's own user for its inter-broker listener
(the same SASL listener; the controller listener stays PLAINTEXT on loopback). The passwords are handed
to the tool salted and hashed (PBKDF2, as SCRAM stores them), so the plain password is on no command line.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import re
import secrets
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from weatherstream.redact import redact
from weatherstream.stack.errors import ServerStartError, StackError
from weatherstream.stack.jars import Distribution
from weatherstream.stack.process import port_open

if TYPE_CHECKING:
    from weatherstream.kafka_clients import KafkaSecurity

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

SCRAM_MECHANISMS = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
SCRAM_ITERATIONS = 4096  # Kafka's minimum (and the client default)
BROKER_USER = "weatherstream-broker"  # the broker's own SCRAM user, for its inter-broker connections
SASL_LISTENER = "SASL_PLAINTEXT"
_USER_RE = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
AUTH_FAILURES_BEFORE_GIVING_UP = 3  # consecutive probes (about a second apart)


def replication(brokers: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) for ``brokers`` brokers: three copies of every record (or as
    many as there are brokers), acknowledged once two have it."""
    return min(3, brokers), min(2, brokers)


class KafkaCredentialsError(StackError):
    """The local broker refuses the configured SASL credentials (its SCRAM users predate them)."""


def scram_argument(mechanism: str, user: str, password: str, salt: bytes) -> str:
    """The ``--add-scram`` value that stores ``user``'s SCRAM credential: the password is salted and hashed
    here (SCRAM's SaltedPassword: PBKDF2-HMAC with the mechanism's hash), so the tool never sees it."""
    salted = hashlib.pbkdf2_hmac(SCRAM_MECHANISMS[mechanism], password.encode(), salt, SCRAM_ITERATIONS)
    return (
        f"{mechanism}=[name={user},salt={base64.b64encode(salt).decode()},"
        f"saltedpassword={base64.b64encode(salted).decode()},iterations={SCRAM_ITERATIONS}]"
    )


class KafkaServer:
    """Config, command line and readiness probe of the local broker.

    Args:
        stack_dir: the stack folder (absolute paths are derived from it).
        port: client port (PLAINTEXT, or SASL_PLAINTEXT with ``sasl``).
        controller_port: KRaft controller port.
        sasl: the clients' connection settings when the client port takes SASL_PLAINTEXT with SCRAM; its
            user is created when the storage is formatted, and the readiness probe logs in as that user.
        node_id: this broker's KRaft node id (1 for a single broker).
        voters: controller port of every node of the quorum by node id (default: this one alone).
        name: the server's name in the stack (its folder, pid file and log are named after it).
        secret_file: where the brokers' own SCRAM password is kept (shared by the brokers of a cluster).
    """

    dist = KAFKA

    def __init__(self, stack_dir: Path, port: int, controller_port: int, sasl: KafkaSecurity | None = None, *,
                 node_id: int = 1, voters: dict[int, int] | None = None, name: str = "kafka",
                 secret_file: Path | None = None) -> None:  # fmt: skip
        self.name = name
        self.home = stack_dir.resolve() / name
        self.port = port
        self.controller_port = controller_port
        self.sasl = sasl
        self.node_id = node_id
        self.voters = voters or {node_id: controller_port}
        self.config_file = self.home / "server.properties"
        self.log4j_file = self.home / "log4j.properties"
        self.data_dir = self.home / "data"
        self.broker_secret_file = secret_file or self.home / "broker-scram.secret"
        self._auth_failures = 0

    @property
    def host(self) -> str:
        return HOST

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def ports(self) -> dict[str, tuple[str, int]]:
        """Every (host, port) the broker binds, by purpose."""
        return {"client": (HOST, self.port), "controller": (HOST, self.controller_port)}

    def data_dirs(self) -> list[Path]:
        return [self.data_dir]

    def check_sasl(self) -> None:
        """Whether the clients' settings fit the SASL listener this stack can run.

        Raises:
            StackError: saying which variables to set.
        """
        sec = self.sasl
        if sec is None:
            return
        wanted = (
            "WEATHERSTREAM_STACK_KAFKA_SASL=1 gives the local Kafka a SASL_PLAINTEXT listener with SCRAM-SHA-256 and "
            "SCRAM-SHA-512: set WEATHERSTREAM_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT, "
            "WEATHERSTREAM_KAFKA_SASL_MECHANISM=SCRAM-SHA-256 (or SCRAM-SHA-512), and WEATHERSTREAM_KAFKA_USERNAME "
            "and WEATHERSTREAM_KAFKA_PASSWORD for the user it creates"
        )
        if sec.protocol != SASL_LISTENER or sec.mechanism not in SCRAM_MECHANISMS or not sec.password:
            raise StackError(wanted)
        if not sec.username or not _USER_RE.match(sec.username) or sec.username == BROKER_USER:
            raise StackError(
                f"WEATHERSTREAM_KAFKA_USERNAME for the local Kafka must be 1-64 letters, digits or '.', '_', '@', '-' "
                f"(and not {BROKER_USER!r}, the broker's own user)"
            )

    def _broker_password(self) -> str:
        """The broker's own SCRAM password: made once per stack folder, kept in a file only the owner reads."""
        if self.broker_secret_file.is_file():
            return self.broker_secret_file.read_text().strip()
        self.broker_secret_file.parent.mkdir(parents=True, exist_ok=True)
        password = secrets.token_hex(24)
        fd = os.open(self.broker_secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(password + "\n")
        return password

    def _listener_settings(self) -> dict[str, str]:
        if self.sasl is None:
            return {
                "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
                "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
                "inter.broker.listener.name": "PLAINTEXT",
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            }
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{BROKER_USER}" password="{self._broker_password()}";'
        )
        return {
            "listeners": f"{SASL_LISTENER}://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"{SASL_LISTENER}://{HOST}:{self.port}",
            "inter.broker.listener.name": SASL_LISTENER,
            "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,{SASL_LISTENER}:{SASL_LISTENER}",
            "sasl.enabled.mechanisms": ",".join(SCRAM_MECHANISMS),
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-256",
            # every enabled mechanism needs a login module on the listener, even one only clients use
            **{f"listener.name.{SASL_LISTENER.lower()}.{m.lower()}.sasl.jaas.config": jaas for m in SCRAM_MECHANISMS},
        }

    def config_text(self) -> str:
        """The broker's ``server.properties``."""
        replicas, min_insync = (str(n) for n in replication(len(self.voters)))
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": ",".join(f"{i}@{HOST}:{port}" for i, port in sorted(self.voters.items())),
            **self._listener_settings(),
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(self.data_dir),
            # weatherstream creates its topics with the intended partition count; never by accident.
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_insync,
            "transaction.state.log.num.partitions": "1",
            "min.insync.replicas": min_insync,
            "default.replication.factor": replicas,
            "unclean.leader.election.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            "delete.topic.enable": "true",
            "num.network.threads": "2",
            "num.io.threads": "4",
        }
        return "".join(f"{k}={v}\n" for k, v in settings.items())

    def scram_users(self) -> list[tuple[str, str]]:
        """(user, password) of every SCRAM user the storage is formatted with (none without SASL)."""
        if self.sasl is None or self.sasl.username is None or self.sasl.password is None:
            return []
        return [(BROKER_USER, self._broker_password()), (self.sasl.username, self.sasl.password.get_secret_value())]

    def prepare(self, java: str, lib: Path) -> None:
        """Write the configs and format the KRaft storage once (with the SCRAM users, for SASL)."""
        self.check_sasl()
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_file.touch(mode=0o600)  # with SASL it holds the broker's own password
        self.config_file.chmod(0o600)
        self.config_file.write_text(self.config_text())
        self.log4j_file.write_text(_LOG4J)
        self._auth_failures = 0
        if (self.data_dir / "meta.properties").is_file():
            return
        scram = [
            scram_argument(mechanism, user, password, secrets.token_bytes(16))
            for user, password in self.scram_users()
            for mechanism in SCRAM_MECHANISMS
        ]
        cmd = [
            java, *JVM_FLAGS, f"-Dlog4j.configuration=file:{self.log4j_file}",
            "-cp", f"{lib}/*", "kafka.tools.StorageTool",
            "format", "-t", CLUSTER_ID, "-c", str(self.config_file), "--ignore-formatted",
            *(arg for value in scram for arg in ("--add-scram", value)),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ServerStartError(
                self.name,
                f"formatting the KRaft storage in {self.data_dir} failed (exit code {proc.returncode})",
                self.config_file,
                redact((proc.stdout + proc.stderr)[-4000:], [*scram, *(p for _, p in self.scram_users())]),
            )

    def command(self, java: str, lib: Path) -> list[str]:
        """The command line that starts the broker in the foreground."""
        return [
            java, *JVM_FLAGS, f"-Dlog4j.configuration=file:{self.log4j_file}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            "-cp", f"{lib}/*", "kafka.Kafka", str(self.config_file),
        ]  # fmt: skip

    def quorum_leader(self) -> tuple[int, int] | None:
        """(leader id, epoch) of the KRaft quorum as this node last recorded it (its ``quorum-state`` file),
        or None if it has none; the active controller is the leader of the highest epoch any node knows."""
        try:
            state = json.loads((self.data_dir / "__cluster_metadata-0" / "quorum-state").read_text())
            return int(state["leaderId"]), int(state["leaderEpoch"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def probe(self) -> str | None:
        """The broker's version when a metadata request to it succeeds and lists every broker of the quorum,
        else None.

        Raises:
            KafkaCredentialsError: the broker answers but keeps refusing the SASL credentials.
        """
        if not port_open(HOST, self.port):
            return None
        try:
            brokers = asyncio.run(self._metadata_broker_count())
        except KafkaCredentialsError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            logger.debug("kafka probe failed: %s", exc)
            return None
        return KAFKA_VERSION if brokers >= len(self.voters) else None  # a cluster: once every broker registered

    async def _metadata_broker_count(self) -> int:
        from weatherstream import kafka_clients

        security = self.sasl if self.sasl is not None else kafka_clients.KafkaSecurity()
        client = kafka_clients.client([self.address], security, request_timeout_ms=5000)
        try:
            await client.bootstrap()
            self._auth_failures = 0
            return len(client.cluster.brokers())
        except Exception:
            if self.sasl is not None:
                self._check_credentials(await kafka_clients.diagnose(self.address, security))
            raise
        finally:
            await client.close()

    def _check_credentials(self, problem: Exception | None) -> None:
        from weatherstream.kafka_clients import KafkaAuthError

        self._auth_failures = self._auth_failures + 1 if isinstance(problem, KafkaAuthError) else 0
        if self._auth_failures >= AUTH_FAILURES_BEFORE_GIVING_UP:
            raise KafkaCredentialsError(
                f"the local Kafka at {self.address} refuses the credentials of WEATHERSTREAM_KAFKA_USERNAME="
                f"{self.sasl.username if self.sasl else None!r} ({problem}). Its SCRAM users were created when its "
                f"storage in {self.data_dir} was first formatted: use the user name and password of then, or run "
                "`weatherstream stack down --wipe` (this deletes its topics) and `weatherstream stack up` to "
                "create them anew"
            )
