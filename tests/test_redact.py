"""Secrets are masked in every log record once the settings are read."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from weatherstream.redact import SecretFilter, install_secret_filter, settings_secrets
from weatherstream.settings import load_settings

KAFKA_PW, CASSANDRA_PW, OWM_KEY = "kafka-pw-a1b2c3", "cass-pw-d4e5f6", "owm-key-0a9b8c7d"


pytestmark = pytest.mark.usefixtures("no_weatherstream_env")


@pytest.fixture
def root_handler() -> Iterator[logging.Handler]:
    """A handler on the root logger, and no secret filter left behind (on the root logger or any handler)."""
    root = logging.getLogger()
    handler = logging.StreamHandler()
    root.addHandler(handler)
    before = {id(x): list(x.filters) for x in [root, *root.handlers]}
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for x in [root, *root.handlers]:
            for f in list(x.filters):
                if f not in before.get(id(x), []):
                    x.removeFilter(f)


def test_settings_secrets_are_every_password_and_the_key(tmp_path: Path) -> None:
    settings = load_settings(kafka_security_protocol="SASL_SSL", kafka_username="ws", kafka_password=KAFKA_PW,
                             cassandra_username="c", cassandra_password=CASSANDRA_PW, owm_api_key=OWM_KEY)  # fmt: skip
    assert sorted(settings_secrets(settings)) == sorted([KAFKA_PW, CASSANDRA_PW, OWM_KEY])
    key_file = tmp_path / "key"
    key_file.write_text(OWM_KEY + "\n")
    assert settings_secrets(load_settings(owm_api_key_file=key_file)) == [OWM_KEY]
    assert settings_secrets(load_settings(owm_api_key_file=tmp_path / "missing")) == []
    assert settings_secrets(load_settings()) == []


def test_installing_twice_keeps_one_filter_that_knows_both(root_handler: logging.Handler) -> None:
    first = install_secret_filter([KAFKA_PW])
    second = install_secret_filter([CASSANDRA_PW, ""])
    assert first is second and first.secrets == sorted([KAFKA_PW, CASSANDRA_PW], key=len, reverse=True)
    assert root_handler.filters.count(first) == 1
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "login %s / %s failed", (KAFKA_PW, CASSANDRA_PW), None)
    first.filter(record)
    assert record.getMessage() == "login *** / *** failed"


def test_a_secret_in_a_traceback_is_masked() -> None:
    try:
        raise RuntimeError(f"connect with password={KAFKA_PW} failed")
    except RuntimeError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    SecretFilter([KAFKA_PW]).filter(record)
    text = logging.Formatter().format(record)
    assert "password=***" in text and KAFKA_PW not in text


def test_a_secret_containing_another_is_masked_whole() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "abc-secret-long", None, None)
    SecretFilter(["secret", "abc-secret-long"]).filter(record)
    assert record.getMessage() == "***"


def test_the_cli_masks_a_sasl_plain_password_in_aiokafkas_debug_log(
    monkeypatch: pytest.MonkeyPatch, root_handler: logging.Handler, caplog: pytest.LogCaptureFixture
) -> None:
    """aiokafka logs every request at DEBUG, SASL PLAIN's authentication bytes (the password) included."""
    from aiokafka.protocol.admin import SaslAuthenticateRequest_v1

    from weatherstream.cli import _Context

    monkeypatch.setenv("WEATHERSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("WEATHERSTREAM_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("WEATHERSTREAM_KAFKA_USERNAME", "ws")
    monkeypatch.setenv("WEATHERSTREAM_KAFKA_PASSWORD", KAFKA_PW)
    _Context({}).settings()  # what every command does first
    request = SaslAuthenticateRequest_v1(sasl_auth_bytes=b"ws\x00ws\x00" + KAFKA_PW.encode())
    with caplog.at_level(logging.DEBUG, logger="aiokafka.conn"):
        logging.getLogger("aiokafka.conn").debug("Request to %s:%d %d: %s", "127.0.0.1", 9092, 3, request)
    assert caplog.records and "sasl_auth_bytes=b'ws\\x00ws\\x00***'" in caplog.text
    assert KAFKA_PW not in caplog.text
