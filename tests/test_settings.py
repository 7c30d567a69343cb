from pathlib import Path

import pytest

from weatherstream.errors import SettingsError
from weatherstream.settings import Settings, load_settings

pytestmark = pytest.mark.usefixtures("no_weatherstream_env")


def test_defaults_match_the_documented_ones() -> None:
    s = load_settings()
    assert s.broker == "kafka://127.0.0.1:9092"
    assert s.cassandra_hosts == ["127.0.0.1"]
    assert s.cassandra_port == 9042
    assert s.namespace == "weather"
    assert s.keyspace == "weatherstream"
    assert s.partitions == 8
    assert s.web_port == 6066
    assert s.stack_dir == Path(".stack")
    assert (s.topic_raw, s.topic_observations, s.topic_aggregates, s.topic_alerts, s.topic_deadletter) == (
        "weather.raw",
        "weather.observations",
        "weather.aggregates",
        "weather.alerts",
        "weather.deadletter",
    )


def test_environment_variables_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEATHERSTREAM_CASSANDRA_HOSTS", "10.0.0.1, 10.0.0.2")
    monkeypatch.setenv("WEATHERSTREAM_PARTITIONS", "3")
    monkeypatch.setenv("WEATHERSTREAM_NAMESPACE", "berlin")
    monkeypatch.setenv("WEATHERSTREAM_DATA_DIR", "/var/lib/ws")
    s = load_settings()
    assert s.cassandra_hosts == ["10.0.0.1", "10.0.0.2"]
    assert s.partitions == 3
    assert s.topic_raw == "berlin.raw"
    assert s.data_dir == Path("/var/lib/ws")


def test_flags_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEATHERSTREAM_STACK_DIR", "/from/env")
    assert load_settings(stack_dir=Path("/from/flag")).stack_dir == Path("/from/flag")
    assert load_settings(stack_dir=None).stack_dir == Path("/from/env")


def test_broker_follows_the_stack_kafka_port_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEATHERSTREAM_STACK_KAFKA_PORT", "19092")
    assert load_settings().broker == "kafka://127.0.0.1:19092"
    monkeypatch.setenv("WEATHERSTREAM_BROKER", "kafka://a:1;kafka://b:2")
    assert load_settings().bootstrap_servers == ["a:1", "b:2"]


def test_two_namespaces_share_no_topic_and_no_keyspace() -> None:
    a = Settings(namespace="a", keyspace="ks_a")
    b = Settings(namespace="b", keyspace="ks_b")
    names = ("raw", "observations", "aggregates", "alerts", "deadletter")
    assert not {a.topic(n) for n in names} & {b.topic(n) for n in names}
    assert a.keyspace != b.keyspace


@pytest.mark.parametrize(
    ("var", "value", "fragment"),
    [
        ("WEATHERSTREAM_NAMESPACE", "has space", "WEATHERSTREAM_NAMESPACE"),
        ("WEATHERSTREAM_KEYSPACE", "Bad-Name", "WEATHERSTREAM_KEYSPACE"),
        ("WEATHERSTREAM_PARTITIONS", "0", "WEATHERSTREAM_PARTITIONS"),
        ("WEATHERSTREAM_CASSANDRA_PORT", "not-a-port", "WEATHERSTREAM_CASSANDRA_PORT"),
        ("WEATHERSTREAM_CASSANDRA_HOSTS", " , ", "contact point"),
    ],
)
def test_invalid_values_name_the_variable_to_fix(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError, match=fragment):
        load_settings()
