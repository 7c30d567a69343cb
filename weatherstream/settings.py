"""The one settings object, read from environment variables prefixed ``WEATHERSTREAM_``.

Nothing else in the project reads ``os.environ``: code calls :func:`load_settings` (or receives a
:class:`Settings`), and command-line flags override fields by passing them to :class:`Settings`.

Example:
    >>> s = Settings(namespace="demo", keyspace="demo_ks")
    >>> s.topic_raw, s.topic_deadletter
    ('demo.raw', 'demo.deadletter')
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from weatherstream.errors import SettingsError

ENV_PREFIX = "WEATHERSTREAM_"

_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
_KEYSPACE_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


def replication_options(text: str) -> dict[str, str]:
    """Parse ``SimpleStrategy:RF`` or ``NetworkTopologyStrategy:dc1=RF,dc2=RF`` into a CQL replication map.

    Raises:
        ValueError: with an example of what to write.
    """
    strategy, _, rest = text.strip().partition(":")
    if strategy == "SimpleStrategy" and rest.strip().isdigit() and int(rest) >= 1:
        return {"class": "SimpleStrategy", "replication_factor": str(int(rest))}
    if strategy == "NetworkTopologyStrategy" and rest.strip():
        options = {"class": "NetworkTopologyStrategy"}
        for part in rest.split(","):
            dc, _, factor = part.strip().partition("=")
            if not re.match(r"^[A-Za-z0-9_.-]+$", dc) or not factor.strip().isdigit():
                break
            options[dc] = str(int(factor))
        else:
            return options
    raise ValueError(
        f"replication {text!r} not understood: write e.g. 'SimpleStrategy:1' or 'NetworkTopologyStrategy:dc1=3,dc2=3'"
    )


def _default_cache_dir() -> Path:
    # XDG_CACHE_HOME is a convention shared with every other tool, not one of our settings.
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "weatherstream"


class Settings(BaseSettings):
    """Runtime configuration. Every field is read from ``WEATHERSTREAM_<FIELD NAME IN CAPITALS>``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)

    # --- where the servers are -------------------------------------------------------------
    broker: str = Field(
        default="",
        description="Kafka bootstrap URL(s) for faust, e.g. kafka://127.0.0.1:9092; "
        "defaults to the local stack's Kafka port.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = Field(
        default="PLAINTEXT",
        description="How every Kafka client connects: PLAINTEXT, SASL_PLAINTEXT, SASL_SSL or SSL (TLS only).",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = Field(
        default="SCRAM-SHA-256", description="SASL mechanism (with the SASL protocols only)."
    )
    kafka_username: str | None = Field(default=None, description="SASL user name (with the SASL protocols).")
    kafka_password: SecretStr | None = Field(default=None, description="SASL password (never logged).")
    kafka_ssl_ca_file: Path | None = Field(
        default=None, description="CA certificates (PEM) to verify the brokers with over TLS; default: system CAs."
    )
    cassandra_hosts: Annotated[list[str], NoDecode] = Field(
        default=["127.0.0.1"], description="Cassandra contact points, comma-separated."
    )
    cassandra_port: int = Field(default=9042, ge=1, le=65535, description="Cassandra native protocol port.")
    cassandra_local_dc: str = Field(
        default="datacenter1", description="Datacenter the driver sends requests to (the local stack's: datacenter1)."
    )
    cassandra_username: str | None = Field(default=None, description="Role name for PasswordAuthenticator.")
    cassandra_password: SecretStr | None = Field(default=None, description="Password of that role (never logged).")
    cassandra_tls: bool = Field(default=False, description="Connect to Cassandra over TLS.")
    cassandra_tls_ca_file: Path | None = Field(
        default=None, description="CA certificate (PEM) to verify the Cassandra nodes with; default: system CAs."
    )
    cassandra_consistency: str = Field(
        default="LOCAL_QUORUM", description="Consistency level of reads and writes (ONE, LOCAL_QUORUM, QUORUM, ...)."
    )
    cassandra_request_timeout_s: float = Field(default=10.0, gt=0, description="Cassandra request timeout, seconds.")
    cassandra_replication: str = Field(
        default="SimpleStrategy:1",
        description="Keyspace replication: 'SimpleStrategy:RF' or 'NetworkTopologyStrategy:dc1=3,dc2=3'.",
    )

    # --- what this run owns --------------------------------------------------------------
    namespace: str = Field(
        default="weather",
        description="Prefix of every Kafka topic this run uses ({ns}.raw, {ns}.observations, ...).",
    )
    keyspace: str = Field(default="weatherstream", description="Cassandra keyspace this run writes to.")
    partitions: int = Field(default=8, ge=1, le=1024, description="Partition count of the project's topics.")
    worker_role: Literal["all", "pipeline", "sink"] = Field(
        default="all",
        description="What a worker runs: 'all' (pipeline and sink), or only 'pipeline' or 'sink' (scaled apart).",
    )
    web_port: int = Field(default=6066, ge=1, le=65535, description="Port of the worker's web server.")
    data_dir: Path = Field(
        default=Path(".weatherstream-data"), description="Local state: RocksDB tables and other worker files."
    )

    store: str = Field(default="rocksdb://", description="faust table store URL (rocksdb:// or memory://).")
    rocksdb_block_cache_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024 * 1024,
        description="RocksDB block cache of the worker, bytes, shared by all its table partitions.",
    )
    rocksdb_write_buffer_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024 * 1024,
        description="RocksDB memtables of the worker, bytes, all its table partitions together (more are flushed).",
    )
    memory_trim_interval_s: float = Field(
        default=10.0,
        ge=0,
        description="How often the worker hands freed memory back to the OS (glibc malloc_trim); 0: never, "
        "else at least 1 s.",
    )
    gc_young_objects: int = Field(
        default=250_000,
        ge=100,
        description="Growth in live container objects between two young garbage collections of a worker (Python's "
        "default: 700); larger: fewer collections, a little more memory held by garbage cycles meanwhile.",
    )
    gc_full_interval_s: float = Field(
        default=60.0,
        ge=0,
        description="A worker collects all its garbage on this timer instead of Python's own trigger, which with many "
        "cached stations ran every few seconds; 0: Python's trigger.",
    )
    web_bind: str = Field(default="127.0.0.1", description="Address the worker's web server binds to.")
    topic_replication_factor: int = Field(default=1, ge=1, description="Replication factor of created topics.")
    topic_min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        description="min.insync.replicas of created topics: replicas that must have a write before it counts "
        "(producers use acks=all); default: the broker's. 2 with a replication factor of 3 survives one broker.",
    )
    consumer_fetch_max_wait_ms: int = Field(
        default=20, ge=0, le=30000, description="Longest wait of a consumer fetch for new data (latency bound per hop)."
    )
    consumer_fetch_min_bytes: int = Field(
        default=64 * 1024,
        ge=1,
        le=16 * 1024 * 1024,
        description="Bytes the broker gathers for a pipeline fetch before answering (or until the fetch wait is "
        "over): fewer fetches per event under steady input, at most the fetch wait later.",
    )
    producer_linger_ms: int = Field(default=5, ge=0, le=1000, description="How long the worker batches before sending.")
    table_standby_replicas: int = Field(default=1, ge=0, description="Warm standby copies of each table partition.")
    broker_session_timeout_s: float = Field(
        default=30.0,
        ge=10,
        le=300,
        description="A worker that stops heartbeating (killed, frozen) loses its partitions after this long.",
    )
    broker_commit_interval_s: float = Field(
        default=2.8,
        gt=0,
        le=3600,
        description="How often the worker commits the input offsets it has handled: after a crash, up to this much "
        "input is handled again (repeats are recognised and counted).",
    )
    batch_max_events: int = Field(
        default=500, ge=1, le=100_000, description="Most events the pipeline agent processes in one batch."
    )
    state_cache_cities: int = Field(
        default=1000, ge=1, description="City records a worker keeps decoded in memory (a cache of its state table)."
    )
    state_cache_slices: int = Field(
        default=5000,
        ge=1,
        description="Cold window slices (a city's summaries of one hour) a worker keeps decoded in memory.",
    )
    batch_within_ms: int = Field(
        default=10, ge=1, le=10_000, description="Longest the pipeline agent waits to fill a batch (latency bound)."
    )
    batch_backlog_max_events: int = Field(
        default=5000,
        ge=1,
        le=1_000_000,
        description="Most events the pipeline joins into one batch while a backlog waits (catching up faster).",
    )

    # --- Cassandra sink ------------------------------------------------------------------------
    sink_max_in_flight: int = Field(
        default=64, ge=1, le=4096, description="Most Cassandra writes the sink has outstanding at once."
    )
    sink_batch_partitions: int | None = Field(
        default=None, ge=1, le=1000,
        description="Most partitions the sink packs into one unlogged batch (1: a batch holds one partition's "
        "rows only). Unset: the cluster's unlogged_batch_across_partitions_warn_threshold, read on connecting "
        "(10 if it cannot be read).",
    )  # fmt: skip
    sink_batch_kib: int | None = Field(
        default=None, ge=1, le=1024,
        description="Most KiB in a batch across partitions, as Cassandra counts them (estimated). Unset: the "
        "cluster's batch_size_warn_threshold, read on connecting (5 if it cannot be read); never above its "
        "batch_size_fail_threshold.",
    )  # fmt: skip
    sink_batch_max_events: int = Field(
        default=5000, ge=1, le=100_000, description="Most records the sink writes in one batch."
    )
    sink_batch_within_ms: int = Field(
        default=500,
        ge=1,
        le=60_000,
        description="Longest the sink waits to fill a batch, and a fetch for 256 KiB (at low rates rows reach "
        "Cassandra up to twice this later; alerts are not delayed). Larger batches put more rows of a partition "
        "into one unlogged batch.",
    )
    sink_retry_max_s: float = Field(
        default=30.0, gt=0, description="Longest wait between retries of a failing Cassandra write."
    )
    observations_ttl_s: int = Field(default=0, ge=0, description="TTL of observation rows, seconds (0: keep).")
    aggregates_ttl_s: int = Field(default=0, ge=0, description="TTL of aggregate rows, seconds (0: keep).")
    alerts_ttl_s: int = Field(default=0, ge=0, description="TTL of alert rows, seconds (0: keep).")

    # --- ingestion ---------------------------------------------------------------------------
    max_payload_bytes: int = Field(default=32 * 1024, ge=1024, description="Larger raw payloads are dead letters.")
    # --- windows (aggregator) -------------------------------------------------------------------
    window_tumbling_s: Annotated[list[int], NoDecode] = Field(
        default=[3600], description="Sizes of epoch-aligned tumbling windows, seconds, comma-separated."
    )
    window_local_day: bool = Field(default=True, description="Keep local-midnight day windows.")
    window_hopping_size_s: int = Field(default=86400, ge=0, description="Hopping window size (0: none).")
    window_hopping_step_s: int = Field(default=3600, gt=0, description="Hopping window step.")
    allowed_lateness_s: float = Field(default=600.0, ge=0, description="Watermark = newest event time minus this.")
    idle_timeout_s: float = Field(
        default=1800.0, gt=0, description="A city silent this long has its watermark moved on with the wall clock."
    )
    correction_horizon_s: float = Field(
        default=48 * 3600.0, gt=0, description="Late data this far behind the watermark corrects final windows."
    )
    dead_letter_repeats: bool = Field(
        default=False,
        description="Send repeats (reasons duplicate and too_late) to the dead-letter topic too; they are always "
        "counted in weatherstream_repeats_total and logged at debug level.",
    )
    default_cadence_s: float = Field(default=600.0, gt=0, description="Observation spacing assumed for coverage.")
    tick_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="How often the cities that are due (windows of a quiet city to close, a silent station, "
        "unconfirmed outputs) get a tick; a run costs only the cities due.",
    )
    # --- anomalies --------------------------------------------------------------------------------
    anomaly_warmup_samples: int = Field(
        default=10, ge=1, description="Samples per local hour before the statistical detector scores."
    )
    anomaly_warning_z: float = Field(default=4.0, gt=0, description="Statistical: spreads from baseline for warning.")
    anomaly_critical_z: float = Field(default=6.0, gt=0, description="Statistical: spreads for critical.")
    anomaly_clear_after: int = Field(default=2, ge=1, description="Calm observations that resolve an incident.")
    pressure_fall_hpa: float = Field(default=8.0, gt=0, description="Pressure fall within 3 h that alerts.")
    temp_change_c: float = Field(default=8.0, gt=0, description="Temperature change within 1 h that alerts.")
    stuck_after: int = Field(default=6, ge=2, description="Identical readings in a row that mean a stuck sensor.")
    silent_factor: float = Field(default=3.0, gt=1, description="Silence longer than this many cadences alerts.")
    historical_after_s: float = Field(
        default=6 * 3600.0, gt=0, description="Alerts on observations older than this are marked historical."
    )
    suppress_historical_alerts: bool = Field(default=False, description="Drop historical alerts instead of sending.")
    owm_api_key: SecretStr | None = Field(default=None, description="OpenWeatherMap API key (never logged).")
    owm_api_key_file: Path | None = Field(default=None, description="File holding the OpenWeatherMap API key.")
    owm_base_url: str = Field(default="https://api.openweathermap.org", description="OpenWeatherMap API base URL.")
    owm_update_period_s: float = Field(default=600.0, gt=0, description="Poll each city at most once per period.")
    owm_rate_limit_per_min: float = Field(default=60.0, gt=0, description="Global limit of API calls per minute.")

    # --- the local stack (weatherstream stack ...) ----------------------------------------------
    stack_dir: Path = Field(
        default=Path(".stack"), description="Folder of the local stack's configs, data, logs and pid files."
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Cache of downloaded server jars (default $XDG_CACHE_HOME/weatherstream).",
    )
    stack_kafka_port: int = Field(
        default=9092, ge=1, le=65535, description="Local Kafka client port (broker N of a cluster: plus 100 x (N - 1))."
    )
    stack_kafka_controller_port: int = Field(
        default=9093, ge=1, le=65535, description="Local KRaft controller port (broker N: plus 100 x (N - 1))."
    )
    stack_cassandra_storage_port: int = Field(default=7000, ge=1, le=65535, description="Cassandra gossip port.")
    stack_cassandra_jmx_port: int = Field(
        default=7199, ge=1, le=65535, description="Cassandra JMX port, for nodetool (node N: plus 100 x (N - 1))."
    )
    stack_kafka_brokers: int = Field(
        default=1, ge=1, le=9, description="Brokers of the local Kafka (KRaft combined nodes; 3 for a cluster)."
    )
    stack_cassandra_nodes: int = Field(
        default=1, ge=1, le=9, description="Nodes of the local Cassandra, node N on 127.0.0.N (3 for a cluster)."
    )
    stack_cassandra_auth: bool = Field(
        default=False,
        description="Start the local Cassandra with PasswordAuthenticator (superuser cassandra/cassandra).",
    )
    stack_kafka_sasl: bool = Field(
        default=False,
        description="Start the local Kafka with a SASL_PLAINTEXT listener (SCRAM-SHA-256/512) whose user is "
        "WEATHERSTREAM_KAFKA_USERNAME/_PASSWORD, created when its storage is first formatted.",
    )
    stack_start_timeout_s: float = Field(default=180.0, gt=0, description="How long `stack up` waits for readiness.")

    @field_validator("window_tumbling_s", mode="before")
    @classmethod
    def _split_sizes(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [int(v) for v in value.split(",") if v.strip()]
        return value

    @field_validator("cassandra_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @field_validator("cassandra_hosts")
    @classmethod
    def _hosts_not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one Cassandra contact point, e.g. 127.0.0.1")
        return value

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        if not _NAMESPACE_RE.match(value):
            raise ValueError("use letters, digits, '_' and '-' only (it prefixes Kafka topic names), e.g. 'weather'")
        return value

    @field_validator("memory_trim_interval_s")
    @classmethod
    def _check_trim_interval(cls, value: float) -> float:
        if 0 < value < 1:
            raise ValueError("use 0 to turn the memory trim off, or at least 1 second (each trim walks every heap)")
        return value

    @field_validator("cassandra_consistency")
    @classmethod
    def _check_consistency(cls, value: str) -> str:
        from cassandra import ConsistencyLevel

        name = value.strip().upper()
        if name not in ConsistencyLevel.name_to_value:
            raise ValueError(f"use one of {', '.join(sorted(ConsistencyLevel.name_to_value))}")
        return name

    @field_validator("cassandra_replication")
    @classmethod
    def _check_replication(cls, value: str) -> str:
        replication_options(value)  # raises ValueError with what to write
        return value

    def replication(self) -> dict[str, str]:
        """The keyspace's replication map for CQL."""
        return replication_options(self.cassandra_replication)

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper_case(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("kafka_username", "kafka_password")
    @classmethod
    def _check_kafka_credentials(cls, value: Any, info: ValidationInfo) -> Any:
        # Fields are validated in declaration order: the protocol is known here (absent if it was invalid).
        protocol = info.data.get("kafka_security_protocol")
        given = value.get_secret_value() if isinstance(value, SecretStr) else value
        if protocol in ("SASL_PLAINTEXT", "SASL_SSL") and not given:
            what = "the SASL user name" if info.field_name == "kafka_username" else "that SASL user's password"
            raise ValueError(f"required with WEATHERSTREAM_KAFKA_SECURITY_PROTOCOL={protocol}: set it to {what}")
        if protocol in ("PLAINTEXT", "SSL") and given:
            raise ValueError(
                f"is set but WEATHERSTREAM_KAFKA_SECURITY_PROTOCOL={protocol} sends no credentials: set the protocol "
                "to SASL_PLAINTEXT or SASL_SSL, or unset this variable"
            )
        return value if given else None

    @field_validator("kafka_ssl_ca_file")
    @classmethod
    def _check_kafka_ca_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        protocol = info.data.get("kafka_security_protocol")
        if value is not None and protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
            raise ValueError(
                f"is only used over TLS: set WEATHERSTREAM_KAFKA_SECURITY_PROTOCOL to SSL or SASL_SSL, not {protocol}"
            )
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a readable file (a PEM file of CA certificates)")
        return value

    @field_validator("keyspace")
    @classmethod
    def _check_keyspace(cls, value: str) -> str:
        if not _KEYSPACE_RE.match(value):
            raise ValueError("use a lower-case letter then lower-case letters, digits or '_', at most 48 characters")
        return value

    @model_validator(mode="after")
    def _check_insync(self) -> Settings:
        wanted = self.topic_min_insync_replicas
        if wanted is not None and wanted > self.topic_replication_factor:
            raise ValueError(
                f"WEATHERSTREAM_TOPIC_MIN_INSYNC_REPLICAS={wanted} is more than WEATHERSTREAM_TOPIC_REPLICATION_FACTOR="
                f"{self.topic_replication_factor}: no write could ever be acknowledged; lower the first or raise the "
                "second"
            )
        return self

    @model_validator(mode="after")
    def _default_broker(self) -> Settings:
        if not self.broker:
            self.broker = f"kafka://127.0.0.1:{self.stack_kafka_port}"
        return self

    def owm_key(self) -> str | None:
        """The OpenWeatherMap API key from WEATHERSTREAM_OWM_API_KEY or the file named by
        WEATHERSTREAM_OWM_API_KEY_FILE; None when neither is set.

        Raises:
            SettingsError: the key file cannot be read or is empty.
        """
        if self.owm_api_key is not None and self.owm_api_key.get_secret_value().strip():
            return self.owm_api_key.get_secret_value().strip()
        if self.owm_api_key_file is not None:
            try:
                key = self.owm_api_key_file.read_text().strip()
            except OSError as exc:
                raise SettingsError(
                    f"cannot read WEATHERSTREAM_OWM_API_KEY_FILE {self.owm_api_key_file}: {exc.strerror}"
                ) from None
            if not key:
                raise SettingsError(f"WEATHERSTREAM_OWM_API_KEY_FILE {self.owm_api_key_file} is empty")
            return key
        return None

    @property
    def app_id(self) -> str:
        """The faust app id (also the faust consumer group); changelog topics start with it.

        A sink-only worker's faust app consumes nothing (it serves health and metrics); its id only keeps it
        out of the pipeline's group and the sink's.
        """
        return f"{self.namespace}.sink-worker" if self.worker_role == "sink" else f"{self.namespace}.app"

    @property
    def sink_group(self) -> str:
        """The consumer group of the Cassandra sink, in every worker that runs it (roles ``all`` and ``sink``)."""
        return f"{self.namespace}.sink"

    # --- derived names ---------------------------------------------------------------------
    def topic(self, name: str) -> str:
        """The full topic name for ``name`` in this run's namespace."""
        return f"{self.namespace}.{name}"

    @property
    def topic_raw(self) -> str:
        return self.topic("raw")

    @property
    def topic_observations(self) -> str:
        return self.topic("observations")

    @property
    def topic_aggregates(self) -> str:
        return self.topic("aggregates")

    @property
    def topic_alerts(self) -> str:
        return self.topic("alerts")

    @property
    def topic_deadletter(self) -> str:
        return self.topic("deadletter")

    @property
    def topic_ticks(self) -> str:
        """Internal: idle ticks for the aggregator, co-partitioned with observations."""
        return self.topic("ticks")

    @property
    def bootstrap_servers(self) -> list[str]:
        """``host:port`` entries of :attr:`broker`, for plain Kafka clients (aiokafka)."""
        servers = []
        for part in re.split(r"[;,]", self.broker):
            part = part.strip()
            if part:
                servers.append(part.split("://", 1)[-1])
        return servers


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment plus ``overrides`` (e.g. command-line flags).

    Raises:
        SettingsError: a value is invalid; the message names the environment variable to fix.
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            if err["loc"]:
                problems.append(f"{ENV_PREFIX}{str(err['loc'][0]).upper()}: {err['msg']}")
            else:  # a rule across settings: its message names them
                problems.append(str(err["msg"]).removeprefix("Value error, "))
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
