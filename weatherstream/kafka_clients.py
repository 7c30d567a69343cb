"""Every Kafka client weatherstream opens, with the security settings applied in this one place.

The ``WEATHERSTREAM_KAFKA_*`` settings (protocol, SASL mechanism, user name, password, CA file) become
:class:`KafkaSecurity`, which maps them to aiokafka's keyword arguments (:meth:`KafkaSecurity.client_options`)
and to faust's ``broker_credentials`` (:meth:`KafkaSecurity.faust_credentials`). The factories
:func:`producer`, :func:`consumer`, :func:`admin` and :func:`client` are the only way the package and its
agents create an aiokafka client (a test checks it), so none is ever created without them (the benchmark
harness and its comparison systems connect to the plaintext local stack directly); :func:`start` starts
one and turns a failure into a :class:`KafkaUnavailableError` that says what went wrong (nothing
listening, credentials refused, a protocol mismatch) and which setting to change.

Example:
    >>> from pydantic import SecretStr
    >>> sec = KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-256", "ws", SecretStr("pw"))
    >>> sorted(sec.client_options())
    ['sasl_mechanism', 'sasl_plain_password', 'sasl_plain_username', 'security_protocol']
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from pydantic import SecretStr

from weatherstream.errors import WeatherStreamError
from weatherstream.redact import redact

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

    from weatherstream.settings import Settings

logger = logging.getLogger(__name__)

SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
TLS_PROTOCOLS = ("SSL", "SASL_SSL")
DIAGNOSE_TIMEOUT_S = 10.0


class KafkaUnavailableError(WeatherStreamError):
    """No connection to Kafka could be made; the message says why and what to change."""


class KafkaAuthError(KafkaUnavailableError):
    """The broker refused the credentials (or the SASL mechanism)."""


@dataclass(frozen=True)
class KafkaSecurity:
    """How clients connect to the brokers.

    Attributes:
        protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (Kafka's ``security.protocol``).
        mechanism: SASL mechanism (SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN); used with the SASL protocols only.
        username: SASL user name.
        password: SASL password; a :class:`~pydantic.SecretStr`, so it never shows in a repr.
        ca_file: CA certificates (PEM) to verify the brokers with over TLS; None: the system's.
    """

    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-256"
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSecurity:
        return cls(
            protocol=settings.kafka_security_protocol,
            mechanism=settings.kafka_sasl_mechanism,
            username=settings.kafka_username,
            password=settings.kafka_password,
            ca_file=settings.kafka_ssl_ca_file,
        )

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in SASL_PROTOCOLS

    @property
    def uses_tls(self) -> bool:
        return self.protocol in TLS_PROTOCOLS

    def secrets(self) -> list[str]:
        """Values that must never appear in output."""
        return [self.password.get_secret_value()] if self.password is not None else []

    def ssl_context(self) -> ssl.SSLContext | None:
        """A verifying TLS context for the TLS protocols (None otherwise).

        Raises:
            KafkaUnavailableError: the CA file cannot be loaded.
        """
        if not self.uses_tls:
            return None
        try:
            return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise KafkaUnavailableError(
                f"cannot load the CA certificates in WEATHERSTREAM_KAFKA_SSL_CA_FILE={self.ca_file}: {exc}"
            ) from None

    def client_options(self) -> dict[str, Any]:
        """aiokafka keyword arguments (producer, consumer, admin client, low-level client)."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            options["sasl_mechanism"] = self.mechanism
            options["sasl_plain_username"] = self.username
            options["sasl_plain_password"] = self.password.get_secret_value() if self.password else None
        return options

    def faust_credentials(self) -> CredentialsT | None:
        """faust's ``broker_credentials`` for the same connection (None for PLAINTEXT)."""
        import faust

        if self.uses_sasl:
            return faust.SASLCredentials(
                username=self.username,
                password=self.password.get_secret_value() if self.password else None,
                mechanism=self.mechanism,
                ssl_context=self.ssl_context(),  # given: SASL_SSL; None: SASL_PLAINTEXT
            )
        if self.uses_tls:
            return faust.SSLCredentials(self.ssl_context())
        return None

    def describe(self) -> str:
        """The connection in words, without secrets, e.g. ``SASL_PLAINTEXT SCRAM-SHA-256 as user 'ws'``."""
        if self.uses_sasl:
            return f"{self.protocol} {self.mechanism} as user {self.username!r}"
        return self.protocol


def _options(settings: Settings, options: dict[str, Any]) -> dict[str, Any]:
    return {"bootstrap_servers": settings.bootstrap_servers, **options,
            **KafkaSecurity.from_settings(settings).client_options()}  # fmt: skip


def producer(settings: Settings, **options: Any) -> AIOKafkaProducer:
    """An (unstarted) aiokafka producer for ``settings``' brokers; ``options`` are aiokafka's."""
    return AIOKafkaProducer(**_options(settings, options))


def consumer(settings: Settings, *topics: str, **options: Any) -> AIOKafkaConsumer:
    """An (unstarted) aiokafka consumer of ``topics``; ``options`` are aiokafka's."""
    return AIOKafkaConsumer(*topics, **_options(settings, options))


def admin(settings: Settings, **options: Any) -> AIOKafkaAdminClient:
    """An (unstarted) aiokafka admin client; ``options`` are aiokafka's."""
    return AIOKafkaAdminClient(**_options(settings, options))


def client(servers: list[str], security: KafkaSecurity, **options: Any) -> AIOKafkaClient:
    """A low-level aiokafka client of ``servers`` (``host:port``), for probes that have no :class:`Settings`."""
    return AIOKafkaClient(bootstrap_servers=servers, **options, **security.client_options())


async def start(client: AIOKafkaProducer | AIOKafkaConsumer | AIOKafkaAdminClient, settings: Settings) -> None:
    """Start ``client``; on failure close it and say why.

    Raises:
        KafkaAuthError: the broker refused the credentials or the mechanism.
        KafkaUnavailableError: any other reason no connection could be made.
    """
    try:
        await client.start()
    except KafkaError as exc:
        await _close(client)
        raise await unavailable_error(settings, exc) from None


async def _close(client: AIOKafkaProducer | AIOKafkaConsumer | AIOKafkaAdminClient) -> None:
    try:
        if isinstance(client, AIOKafkaAdminClient):
            await client.close()
        else:
            await client.stop()
    except Exception as exc:  # noqa: BLE001 - closing after a failed start; the start's error is the one to show
        logger.debug("closing a client that did not start: %s", exc)


async def unavailable_error(settings: Settings, exc: BaseException) -> KafkaUnavailableError:
    """The error to raise when a client could not connect: aiokafka only says "Unable to bootstrap", so one
    more connection to each bootstrap server finds the reason."""
    security = KafkaSecurity.from_settings(settings)
    reasons = [await diagnose(server, security) for server in settings.bootstrap_servers]
    auth = any(isinstance(r, KafkaAuthError) for r in reasons)
    found = [str(r) for r in reasons if r is not None]
    detail = "; ".join(found) if found else f"{type(exc).__name__}: {exc}"
    text = redact(f"cannot connect to Kafka at {settings.broker} ({security.describe()}): {detail}", security.secrets())
    return KafkaAuthError(text) if auth else KafkaUnavailableError(text)


async def diagnose(server: str, security: KafkaSecurity) -> KafkaUnavailableError | None:
    """Why a connection to ``server`` (``host:port``) fails, as an error that says what to do; None if it works.

    One connection, with the handshake and authentication of ``security`` and a metadata request, at most
    :data:`DIAGNOSE_TIMEOUT_S` seconds.
    """
    from aiokafka.conn import create_conn

    host, _, port_text = server.rpartition(":")
    if not host or not port_text.isdigit():
        return KafkaUnavailableError(f"{server!r} is not host:port: fix WEATHERSTREAM_BROKER")
    try:
        options = security.client_options()
    except KafkaUnavailableError as exc:
        return exc
    opened: list[Any] = []

    async def connect() -> None:
        conn = await create_conn(host, int(port_text), request_timeout_ms=int(DIAGNOSE_TIMEOUT_S * 1000), **options)
        opened.append(conn)
        # A listener that expects SASL answers ApiVersions before the handshake and hangs up only on the
        # next request: ask for metadata too.
        await conn.send(_metadata_request())

    try:
        await asyncio.wait_for(connect(), DIAGNOSE_TIMEOUT_S)
    except SaslAuthenticationFailed:
        return KafkaAuthError(
            f"{server} refused the credentials of user {security.username!r} ({security.mechanism} authentication "
            "failed): check WEATHERSTREAM_KAFKA_USERNAME and WEATHERSTREAM_KAFKA_PASSWORD"
        )
    except UnsupportedSaslMechanismError:
        offered = await _offered_mechanisms(host, int(port_text), security)
        return KafkaAuthError(
            f"{server} does not offer SASL mechanism {security.mechanism} (it offers {offered or 'others'}): set "
            "WEATHERSTREAM_KAFKA_SASL_MECHANISM to one of those"
        )
    except IllegalSaslStateError:
        return KafkaUnavailableError(
            f"{server} does not expect SASL on this port: set WEATHERSTREAM_KAFKA_SECURITY_PROTOCOL to the "
            "listener's protocol (PLAINTEXT or SSL)"
        )
    except ssl.SSLError as exc:
        return KafkaUnavailableError(
            f"TLS with {server} failed ({exc.reason or exc}): check WEATHERSTREAM_KAFKA_SECURITY_PROTOCOL and "
            "WEATHERSTREAM_KAFKA_SSL_CA_FILE"
        )
    except ConnectionRefusedError:
        return KafkaUnavailableError(
            f"nothing listens at {server}: start Kafka (`weatherstream stack up`) or set WEATHERSTREAM_BROKER"
        )
    except (asyncio.TimeoutError, TimeoutError):
        return KafkaUnavailableError(f"{server} did not answer within {DIAGNOSE_TIMEOUT_S:.0f} s")
    except KafkaConnectionError as exc:
        hint = (
            "its listener may expect TLS: check WEATHERSTREAM_KAFKA_SECURITY_PROTOCOL"
            if security.uses_sasl
            else "its listener may require SASL or TLS: set WEATHERSTREAM_KAFKA_SECURITY_PROTOCOL (and "
            "_SASL_MECHANISM, _USERNAME, _PASSWORD)"
        )
        return KafkaUnavailableError(f"{server} closed the connection ({exc}); {hint}")
    except (OSError, KafkaError) as exc:
        return KafkaUnavailableError(f"{server}: {type(exc).__name__}: {exc}")
    finally:
        for conn in opened:
            conn.close()
    return None


async def _offered_mechanisms(host: str, port: int, security: KafkaSecurity) -> str | None:
    """The SASL mechanisms the listener offers, as it lists them in its answer to a handshake; None if unknown."""
    from aiokafka.conn import create_conn
    from aiokafka.protocol.admin import SaslHandShakeRequest

    # The same connection without SASL, to send the handshake ourselves (aiokafka keeps the answer to itself).
    options = {k: v for k, v in security.client_options().items() if not k.startswith("sasl_")}
    options["security_protocol"] = "SSL" if security.uses_tls else "PLAINTEXT"
    try:
        conn = await asyncio.wait_for(create_conn(host, port, **options), DIAGNOSE_TIMEOUT_S)
        try:
            request = SaslHandShakeRequest[1] if isinstance(SaslHandShakeRequest, list) else SaslHandShakeRequest
            response = await asyncio.wait_for(conn.send(request(security.mechanism)), DIAGNOSE_TIMEOUT_S)
        finally:
            conn.close()
        return ", ".join(response.enabled_mechanisms) or None
    except Exception as exc:  # noqa: BLE001 - only a detail of an error message
        logger.debug("could not list the SASL mechanisms of %s:%d: %s", host, port, exc)
        return None


def _metadata_request() -> Any:
    from aiokafka.protocol.metadata import MetadataRequest

    if isinstance(MetadataRequest, list):  # aiokafka < 0.13: one class per version
        return MetadataRequest[0]([])
    return MetadataRequest([])
