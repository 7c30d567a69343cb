"""The durability settings of a three-broker, three-node deployment agree everywhere they are written down:
deploy/docker-compose.yml, deploy/k8s and the local cluster (``weatherstream stack up --kafka-brokers 3
--cassandra-nodes 3``, whose ``stack env`` the cluster tests run with)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.deploy.conftest import resource, settings_of
from weatherstream.settings import Settings, load_settings
from weatherstream.stack import LocalStack


def _durability(settings: Settings) -> dict[str, Any]:
    """What decides whether an acknowledged write survives the loss of one broker or one node."""
    replication = settings.replication()
    replicas = [v for k, v in replication.items() if k not in {"class", "replication_factor"}]
    return {
        "topic replication factor": settings.topic_replication_factor,
        "topic min.insync.replicas": settings.topic_min_insync_replicas,
        "brokers listed": len(settings.bootstrap_servers),
        "keyspace strategy": replication["class"],
        "keyspace replicas in the local data center": replication.get(settings.cassandra_local_dc),
        "data centers": len(replicas),
        "consistency": settings.cassandra_consistency,
        "cassandra contact points": len(settings.cassandra_hosts),
    }


EXPECTED = {
    "topic replication factor": 3,
    "topic min.insync.replicas": 2,
    "brokers listed": 3,
    "keyspace strategy": "NetworkTopologyStrategy",
    "keyspace replicas in the local data center": "3",
    "data centers": 1,
    "consistency": "LOCAL_QUORUM",
    "cassandra contact points": 3,
}


def test_compose_k8s_and_the_local_cluster_agree(compose: dict[str, Any], k8s_resources: Any,
                                                 tmp_path: Path) -> None:  # fmt: skip
    compose_worker = settings_of(compose["services"]["worker"]["environment"])
    k8s_worker = settings_of(resource(k8s_resources, "ConfigMap", "weatherstream-config")["data"])
    cluster = LocalStack(load_settings(stack_dir=tmp_path, stack_kafka_brokers=3, stack_cassandra_nodes=3))
    local_worker = settings_of(cluster.client_settings())

    assert _durability(compose_worker) == EXPECTED
    assert _durability(k8s_worker) == EXPECTED
    assert _durability(local_worker) == EXPECTED


def test_the_local_cluster_brokers_match_what_its_clients_are_told(tmp_path: Path) -> None:
    cluster = LocalStack(load_settings(stack_dir=tmp_path, stack_kafka_brokers=3, stack_cassandra_nodes=3))
    worker = settings_of(cluster.client_settings())
    configs = [dict(line.split("=", 1) for line in b.config_text().splitlines()) for b in cluster.kafka_brokers]
    assert sorted(worker.bootstrap_servers) == sorted(b.address for b in cluster.kafka_brokers)
    assert {c["node.id"] for c in configs} == {"1", "2", "3"}
    assert len({c["controller.quorum.voters"] for c in configs}) == 1  # one quorum of all three
    for config in configs:
        assert config["min.insync.replicas"] == str(worker.topic_min_insync_replicas)
        assert config["default.replication.factor"] == str(worker.topic_replication_factor)
        assert config["offsets.topic.replication.factor"] == "3"  # the consumer groups' offsets survive a broker
        assert config["unclean.leader.election.enable"] == "false"
    assert (
        worker.cassandra_hosts == [n.host for n in cluster.cassandra_nodes] == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    )
