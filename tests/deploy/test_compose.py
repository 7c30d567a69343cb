"""deploy/docker-compose.yml as Docker Compose itself resolves it (``docker compose config``: the compose-spec
schema, anchors, defaults; no engine needed), and the properties the deployment depends on."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from tests.deploy.conftest import COMPOSE_FILE, compose_command, compose_config, settings_of
from weatherstream.settings import replication_options
from weatherstream.sinks import schema


def services_of(compose: dict[str, Any], image_prefix: str) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if s.get("image", "").startswith(image_prefix)}


def test_compose_file_is_valid_for_docker_compose() -> None:
    for profiles in ((), ("owm",)):
        done = compose_config("--quiet", profiles=profiles)
        assert done.returncode == 0, done.stderr


def test_an_unknown_key_is_refused(tmp_path: Path) -> None:
    """The check above can fail: Compose rejects a misspelt key (the schema forbids extra properties)."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text(encoding="utf-8").replace("stop_grace_period:", "stop_grace_periodd:"))
    done = subprocess.run([*compose_command(), "--file", str(broken), "config", "--quiet"],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode != 0 and "stop_grace_periodd" in done.stderr, done.stderr


def test_three_kraft_brokers_with_replication_three_and_min_isr_two(compose: dict[str, Any]) -> None:
    brokers = services_of(compose, "apache/kafka:")
    assert len(brokers) == 3, sorted(brokers)
    envs = [b["environment"] for b in brokers.values()]
    assert re.fullmatch(r"apache/kafka:3\.9\.\d+", next(iter(brokers.values()))["image"])
    assert len({e["KAFKA_NODE_ID"] for e in envs}) == 3
    assert len({e["CLUSTER_ID"] for e in envs}) == 1
    voters = {e["KAFKA_CONTROLLER_QUORUM_VOTERS"] for e in envs}
    assert len(voters) == 1
    voter_ids = {v.split("@")[0] for v in voters.pop().split(",")}
    assert voter_ids == {e["KAFKA_NODE_ID"] for e in envs}, "every broker is a controller in the quorum"
    for name, env in zip(brokers, envs, strict=True):
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}, name
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092", name
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert any(v["target"] == env["KAFKA_LOG_DIRS"] and v["type"] == "volume" for v in brokers[name]["volumes"])

    worker = settings_of(compose["services"]["worker"]["environment"])
    assert worker.topic_replication_factor == 3
    assert sorted(worker.bootstrap_servers) == sorted(f"{name}:9092" for name in brokers)


def test_three_cassandra_nodes_in_one_datacenter(compose: dict[str, Any]) -> None:
    nodes = services_of(compose, "cassandra:")
    assert len(nodes) == 3, sorted(nodes)
    for name, node in nodes.items():
        assert re.fullmatch(r"cassandra:5\.0(\.\d+)?", node["image"]), name
        env = node["environment"]
        assert env["CASSANDRA_ENDPOINT_SNITCH"] == "GossipingPropertyFileSnitch", name
        assert set(env["CASSANDRA_SEEDS"].split(",")) <= set(nodes), name
        assert any(v["target"] == "/var/lib/cassandra" for v in node["volumes"]), name
    assert len({n["environment"]["CASSANDRA_DC"] for n in nodes.values()}) == 1
    assert len({n["environment"]["CASSANDRA_CLUSTER_NAME"] for n in nodes.values()}) == 1


class RecordingSession:
    """Stands in for a driver session: an empty cluster, recording every statement."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.cluster = self  # the driver's Cluster, asked to wait for schema agreement at the end

    def refresh_schema_metadata(self, max_schema_agreement_wait: float | None = None) -> None:
        self.statements.append("(waits for schema agreement)")

    def execute(self, query: str, params: object = None) -> RecordingSession:
        self.statements.append(query)
        return self

    def one(self) -> None:
        return None

    def __iter__(self) -> Any:
        return iter(())


def test_keyspace_is_created_with_network_topology_rf3_in_the_nodes_datacenter(compose: dict[str, Any]) -> None:
    datacenter = next(iter(services_of(compose, "cassandra:").values()))["environment"]["CASSANDRA_DC"]
    job = compose["services"]["schema"]
    assert job["command"] == ["db", "migrate"]
    settings = settings_of(job["environment"])
    assert settings.cassandra_local_dc == datacenter
    session = RecordingSession()
    schema.migrate(session, settings)  # only execute() is used (Session is untyped here)
    create = [s for s in session.statements if s.startswith("CREATE KEYSPACE")]
    assert create == [
        f"CREATE KEYSPACE IF NOT EXISTS {settings.keyspace} WITH replication = "
        f"{{'class': 'NetworkTopologyStrategy', '{datacenter}': '3'}}"
    ]
    # the workers would create the same keyspace if they came first
    worker = settings_of(compose["services"]["worker"]["environment"])
    assert replication_options(worker.cassandra_replication) == settings.replication()
    assert worker.keyspace == settings.keyspace and worker.cassandra_local_dc == datacenter
    assert set(worker.cassandra_hosts) == set(services_of(compose, "cassandra:"))


def test_workers_scale_without_clashes(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "hostname" not in worker
    for port in worker.get("ports", []):
        assert not port.get("published"), f"a fixed host port stops a second replica: {port}"
    named = set(compose.get("volumes", {}))
    shared = [v for v in worker.get("volumes", []) if v.get("type") == "volume" and v.get("source") in named]
    assert not shared, f"replicas would share one RocksDB directory: {shared}"
    assert worker["depends_on"]["schema"]["condition"] == "service_completed_successfully"
    for broker in services_of(compose, "apache/kafka:"):
        assert worker["depends_on"][broker]["condition"] == "service_healthy"


def test_weatherstream_containers_run_unprivileged_and_read_only(compose: dict[str, Any]) -> None:
    ours = services_of(compose, "weatherstream:")
    assert {"worker", "schema", "owm-poller"} <= set(ours)
    for name, service in ours.items():
        assert service.get("user", "10001").split(":")[0] not in ("0", "root"), name  # the image's USER otherwise
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert service["build"]["dockerfile"] == "deploy/Dockerfile", name
        settings_of(service["environment"])  # every value is a valid setting


def test_owm_key_reaches_the_poller_as_a_secret_file(compose: dict[str, Any]) -> None:
    poller = compose["services"]["owm-poller"]
    assert poller["command"][:3] == ["produce", "--source", "owm"]
    assert poller["profiles"] == ["owm"]
    settings = settings_of(poller["environment"])
    (secret,) = poller["secrets"]
    assert str(settings.owm_api_key_file) == secret["target"]
    assert settings.owm_api_key is None
    assert "OWM_API_KEY" not in str(compose["services"]["worker"])
