"""The local broker's optional SASL listener: its config, and the SCRAM users written at format time (with
a stand-in for `java` that records the format command instead of running Kafka)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from weatherstream.kafka_clients import KafkaSecurity
from weatherstream.stack.errors import ServerStartError, StackError
from weatherstream.stack.kafka import BROKER_USER, KafkaServer, scram_argument

PASSWORD = "client-pw-9d8e7f"  # noqa: S105 - a test value
SASL = KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-256", "ws_client", SecretStr(PASSWORD))


def fake_java(tmp_path: Path, exit_code: int = 0, output: str = "") -> tuple[str, Path]:
    """A `java` that writes its arguments, one a line, to a file (and prints ``output``)."""
    args_file = tmp_path / "java-args.txt"
    script = tmp_path / "java"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {args_file}\necho "{output}"\nexit {exit_code}\n')
    script.chmod(0o755)
    return str(script), args_file


def scram_args(args: list[str]) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == "--add-scram"]


def test_without_sasl_the_listener_is_plaintext_and_no_user_is_made(tmp_path: Path) -> None:
    server = KafkaServer(tmp_path, 9092, 9093)
    config = server.config_text()
    assert "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n" in config
    assert not [line for line in config.splitlines() if line.startswith(("sasl.", "listener.name."))]
    java, args_file = fake_java(tmp_path)
    server.prepare(java, tmp_path)
    assert scram_args(args_file.read_text().splitlines()) == []


def test_sasl_listener_config(tmp_path: Path) -> None:
    server = KafkaServer(tmp_path, 19092, 19093, sasl=SASL)
    lines = dict(line.split("=", 1) for line in server.config_text().splitlines())
    assert lines["listeners"] == "SASL_PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert lines["advertised.listeners"] == "SASL_PLAINTEXT://127.0.0.1:19092"
    assert lines["inter.broker.listener.name"] == "SASL_PLAINTEXT"
    assert lines["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
    assert lines["sasl.enabled.mechanisms"] == "SCRAM-SHA-256,SCRAM-SHA-512"
    broker_password = server.broker_secret_file.read_text().strip()
    for mechanism in ("scram-sha-256", "scram-sha-512"):
        jaas = lines[f"listener.name.sasl_plaintext.{mechanism}.sasl.jaas.config"]
        assert f'username="{BROKER_USER}" password="{broker_password}";' in jaas
    assert PASSWORD not in server.config_text()  # the client's password is not the broker's business
    assert stat.S_IMODE(server.broker_secret_file.stat().st_mode) == 0o600
    assert KafkaServer(tmp_path, 19092, 19093, sasl=SASL)._broker_password() == broker_password  # kept


def test_format_adds_both_users_for_both_mechanisms_without_the_plain_password(tmp_path: Path) -> None:
    server = KafkaServer(tmp_path, 19092, 19093, sasl=SASL)
    java, args_file = fake_java(tmp_path)
    server.prepare(java, tmp_path)
    args = args_file.read_text().splitlines()
    added = scram_args(args)
    users = sorted((value.split("=", 1)[0], value.split("name=", 1)[1].split(",", 1)[0]) for value in added)
    assert users == [("SCRAM-SHA-256", "weatherstream-broker"), ("SCRAM-SHA-256", "ws_client"),
                     ("SCRAM-SHA-512", "weatherstream-broker"), ("SCRAM-SHA-512", "ws_client")]  # fmt: skip
    assert all("saltedpassword=" in value and ",password=" not in value for value in added)
    assert PASSWORD not in " ".join(args)
    assert stat.S_IMODE(server.config_file.stat().st_mode) == 0o600
    args_file.unlink()
    (server.data_dir / "meta.properties").parent.mkdir(parents=True)
    (server.data_dir / "meta.properties").write_text("formatted\n")
    server.prepare(java, tmp_path)
    assert not args_file.exists()  # formatted once: users are not re-created on the next start


def test_a_failed_format_shows_no_credential(tmp_path: Path) -> None:
    server = KafkaServer(tmp_path, 19092, 19093, sasl=SASL)
    java, _ = fake_java(tmp_path, exit_code=1, output='bad argument "$*"')  # echoes every argument back
    with pytest.raises(ServerStartError) as err:
        server.prepare(java, tmp_path)
    message = str(err.value)
    assert "formatting the KRaft storage" in message and "--add-scram *** --add-scram ***" in message
    assert PASSWORD not in message and server.broker_secret_file.read_text().strip() not in message


@pytest.mark.parametrize(
    ("security", "fragment"),
    [
        (KafkaSecurity("PLAINTEXT"), "WEATHERSTREAM_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT"),
        (KafkaSecurity("SASL_SSL", "SCRAM-SHA-256", "ws", SecretStr("x")), "SASL_PLAINTEXT"),
        (KafkaSecurity("SASL_PLAINTEXT", "PLAIN", "ws", SecretStr("x")), "WEATHERSTREAM_KAFKA_SASL_MECHANISM"),
        (KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-256", "a,b", SecretStr("x")), "WEATHERSTREAM_KAFKA_USERNAME"),
        (KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-256", BROKER_USER, SecretStr("x")), "the broker's own user"),
    ],
)
def test_settings_that_do_not_fit_the_sasl_listener_are_refused_before_anything_starts(
    tmp_path: Path, security: KafkaSecurity, fragment: str
) -> None:
    java, args_file = fake_java(tmp_path)
    with pytest.raises(StackError) as err:
        KafkaServer(tmp_path, 19092, 19093, sasl=security).prepare(java, tmp_path)
    assert fragment in str(err.value)
    assert not args_file.exists()


def test_scram_argument_matches_the_rfc_7677_example() -> None:
    # RFC 7677, section 3: user "user", password "pencil"; the server's signature and the client's proof
    # computed from our salted password must be the RFC's.
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    argument = scram_argument("SCRAM-SHA-256", "user", "pencil", salt)
    fields = dict(part.split("=", 1) for part in argument.split("=", 1)[1].strip("[]").split(","))
    assert (fields["name"], fields["salt"], fields["iterations"]) == ("user", "W22ZaJ0SNY7soEsUEjb6gQ==", "4096")
    salted = base64.b64decode(fields["saltedpassword"])
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth_message = f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r={nonce}"

    def mac(key: bytes, text: bytes) -> bytes:
        return hmac.new(key, text, hashlib.sha256).digest()

    server_signature = mac(mac(salted, b"Server Key"), auth_message.encode())
    assert base64.b64encode(server_signature).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    client_key = mac(salted, b"Client Key")
    client_signature = mac(hashlib.sha256(client_key).digest(), auth_message.encode())
    proof = bytes(a ^ b for a, b in zip(client_key, client_signature, strict=True))
    assert base64.b64encode(proof).decode() == "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="


@pytest.mark.usefixtures("no_weatherstream_env")
def test_up_checks_the_sasl_settings_before_anything_else(tmp_path: Path) -> None:
    from weatherstream.settings import load_settings
    from weatherstream.stack import LocalStack

    stack = LocalStack(load_settings(stack_dir=tmp_path / "stack", stack_kafka_sasl=True))
    with pytest.raises(StackError, match="WEATHERSTREAM_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT"):
        stack.up(timeout_s=1)
    assert not (tmp_path / "stack").exists()  # nothing written, nothing started


def test_refused_credentials_end_the_wait_after_a_few_probes(tmp_path: Path) -> None:
    from weatherstream.kafka_clients import KafkaAuthError, KafkaUnavailableError
    from weatherstream.stack.kafka import KafkaCredentialsError

    server = KafkaServer(tmp_path, 19092, 19093, sasl=SASL)
    refused = KafkaAuthError("refused the credentials")
    server._check_credentials(refused)
    server._check_credentials(KafkaUnavailableError("still starting"))  # not in a row: counting starts again
    server._check_credentials(refused)
    server._check_credentials(refused)
    with pytest.raises(KafkaCredentialsError) as err:
        server._check_credentials(refused)
    assert "stack down --wipe" in str(err.value) and PASSWORD not in str(err.value)
