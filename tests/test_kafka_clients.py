"""Kafka security settings: validation, and their one mapping to aiokafka's and faust's options."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from weatherstream import kafka_clients
from weatherstream.errors import SettingsError
from weatherstream.kafka_clients import KafkaSecurity, KafkaUnavailableError
from weatherstream.settings import load_settings

PASSWORD = "pw-3c1f5e7a9b"  # noqa: S105 - a test value
ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("no_weatherstream_env")


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    """A PEM file of CA certificates (certifi's bundle, which requests always installs, copied: any valid
    bundle will do, and the machine's own may be missing)."""
    import certifi

    copy = tmp_path / "ca.pem"
    copy.write_bytes(Path(certifi.where()).read_bytes())
    return copy


def sasl_settings(**more: Any) -> Any:
    values = {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_username": "ws", "kafka_password": PASSWORD}
    return load_settings(**{**values, **more})


def test_plaintext_by_default_and_nothing_to_authenticate() -> None:
    settings = load_settings()
    security = KafkaSecurity.from_settings(settings)
    assert settings.kafka_security_protocol == "PLAINTEXT" and settings.kafka_sasl_mechanism == "SCRAM-SHA-256"
    assert security.client_options() == {"security_protocol": "PLAINTEXT"}
    assert security.faust_credentials() is None


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_sasl_plaintext_maps_to_aiokafka_and_to_faust_alike(mechanism: str) -> None:
    security = KafkaSecurity.from_settings(sasl_settings(kafka_sasl_mechanism=mechanism))
    options = security.client_options()
    assert options == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "ws",
        "sasl_plain_password": PASSWORD,
    }
    credentials = security.faust_credentials()
    assert isinstance(credentials, SASLCredentials)
    # faust's own translation of the credentials gives its clients what ours get.
    faust_options = {k: v for k, v in credentials_to_aiokafka_auth(credentials).items() if v is not None}
    assert faust_options == options
    assert PASSWORD not in repr(credentials)


def test_sasl_ssl_verifies_the_brokers_with_the_ca_file(ca_file: Path) -> None:
    security = KafkaSecurity.from_settings(sasl_settings(kafka_security_protocol="SASL_SSL", kafka_ssl_ca_file=ca_file))
    options = security.client_options()
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_plain_password"] == PASSWORD
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    credentials = security.faust_credentials()
    assert isinstance(credentials, SASLCredentials) and credentials.protocol.value == "SASL_SSL"
    assert credentials_to_aiokafka_auth(credentials)["security_protocol"] == "SASL_SSL"


def test_ssl_without_sasl() -> None:
    security = KafkaSecurity.from_settings(load_settings(kafka_security_protocol="ssl"))
    options = security.client_options()
    assert options["security_protocol"] == "SSL" and "sasl_mechanism" not in options
    assert isinstance(security.faust_credentials(), SSLCredentials)


@pytest.mark.parametrize(
    ("values", "fragments"),
    [
        ({"kafka_security_protocol": "SASL_PLAINTEXT"},
         ["WEATHERSTREAM_KAFKA_USERNAME: ", "WEATHERSTREAM_KAFKA_PASSWORD: ", "SASL_PLAINTEXT"]),
        ({"kafka_security_protocol": "SASL_SSL", "kafka_username": "ws"}, ["WEATHERSTREAM_KAFKA_PASSWORD: "]),
        ({"kafka_security_protocol": "SASL_SSL", "kafka_password": PASSWORD}, ["WEATHERSTREAM_KAFKA_USERNAME: "]),
        ({"kafka_password": PASSWORD}, ["WEATHERSTREAM_KAFKA_PASSWORD: ", "PLAINTEXT sends no credentials"]),
        ({"kafka_security_protocol": "TLS"}, ["WEATHERSTREAM_KAFKA_SECURITY_PROTOCOL: ", "SASL_SSL"]),
        ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_username": "ws", "kafka_password": PASSWORD,
          "kafka_sasl_mechanism": "GSSAPI"}, ["WEATHERSTREAM_KAFKA_SASL_MECHANISM: ", "SCRAM-SHA-512"]),
        ({"kafka_ssl_ca_file": "/etc/hostname"}, ["WEATHERSTREAM_KAFKA_SSL_CA_FILE: ", "only used over TLS"]),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_ca_file": "/no/such/ca.pem"},
         ["WEATHERSTREAM_KAFKA_SSL_CA_FILE: ", "not a readable file"]),
    ],
)  # fmt: skip
def test_inconsistent_security_settings_say_which_variables_to_set(
    values: dict[str, str], fragments: list[str]
) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(**values)
    for fragment in fragments:
        assert fragment in str(err.value)
    assert PASSWORD not in str(err.value)


def test_environment_variables_and_lower_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEATHERSTREAM_KAFKA_SECURITY_PROTOCOL", "sasl_plaintext")
    monkeypatch.setenv("WEATHERSTREAM_KAFKA_SASL_MECHANISM", "scram-sha-512")
    monkeypatch.setenv("WEATHERSTREAM_KAFKA_USERNAME", "ws")
    monkeypatch.setenv("WEATHERSTREAM_KAFKA_PASSWORD", PASSWORD)
    settings = load_settings()
    assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-512")
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.model_dump())
    assert PASSWORD not in repr(KafkaSecurity.from_settings(settings))
    assert KafkaSecurity.from_settings(settings).describe() == "SASL_PLAINTEXT SCRAM-SHA-512 as user 'ws'"


class _Recorder:
    """Stands in for an aiokafka client class and records how it was built."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


def test_every_factory_applies_the_security_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient", "AIOKafkaClient"):
        monkeypatch.setattr(kafka_clients, name, _Recorder)
    settings = sasl_settings(broker="kafka://h1:1;kafka://h2:2")
    security = KafkaSecurity.from_settings(settings)
    built = [
        kafka_clients.producer(settings, acks="all"),
        kafka_clients.consumer(settings, "t1", "t2", group_id=None),
        kafka_clients.admin(settings, request_timeout_ms=1),
        kafka_clients.client(settings.bootstrap_servers, security, request_timeout_ms=1),
    ]
    for client in built:
        assert isinstance(client, _Recorder)
        assert client.kwargs["bootstrap_servers"] == ["h1:1", "h2:2"]
        assert client.kwargs["security_protocol"] == "SASL_PLAINTEXT"
        assert client.kwargs["sasl_mechanism"] == "SCRAM-SHA-256"
        assert (client.kwargs["sasl_plain_username"], client.kwargs["sasl_plain_password"]) == ("ws", PASSWORD)
    assert built[1].args == ("t1", "t2")


def test_no_kafka_client_is_created_outside_the_factories() -> None:
    construction = re.compile(r"\bAIOKafka(Producer|Consumer|AdminClient|Client)\(")
    offenders = []
    for folder in ("weatherstream", "agents", "models"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name != "kafka_clients.py" and construction.search(path.read_text()):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [], f"create Kafka clients through weatherstream.kafka_clients: {offenders}"


def test_the_worker_app_and_its_producer_carry_the_credentials(tmp_path: Path) -> None:
    from weatherstream.app import create_app

    settings = sasl_settings(data_dir=tmp_path, kafka_sasl_mechanism="SCRAM-SHA-512")
    app = create_app(settings)
    credentials = app.conf.broker_credentials
    assert isinstance(credentials, SASLCredentials)
    assert (credentials.username, credentials.password, credentials.mechanism.value) == (
        "ws",
        PASSWORD,
        "SCRAM-SHA-512",
    )
    producer_auth = app.producer._settings_auth()  # what faust's producer hands to aiokafka
    assert producer_auth["security_protocol"] == "SASL_PLAINTEXT" and producer_auth["sasl_plain_password"] == PASSWORD
    assert create_app(load_settings(data_dir=tmp_path)).conf.broker_credentials is None


def test_nothing_listening_is_a_clear_error_at_once() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free again once closed: nothing listens there
    settings = sasl_settings(broker=f"kafka://127.0.0.1:{port}")

    async def connect() -> None:
        await kafka_clients.start(kafka_clients.admin(settings, request_timeout_ms=5000), settings)

    with pytest.raises(KafkaUnavailableError) as err:
        asyncio.run(asyncio.wait_for(connect(), 30))
    message = str(err.value)
    assert f"nothing listens at 127.0.0.1:{port}" in message and "WEATHERSTREAM_BROKER" in message
    assert "as user 'ws'" in message and PASSWORD not in message


def test_a_broker_address_without_a_port_is_named() -> None:
    problem = asyncio.run(kafka_clients.diagnose("no-port-here", KafkaSecurity()))
    assert problem is not None and "WEATHERSTREAM_BROKER" in str(problem)
