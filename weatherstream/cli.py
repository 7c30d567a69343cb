"""The ``weatherstream`` command line.

Every option that mirrors a setting names its ``WEATHERSTREAM_*`` environment variable in ``--help``;
the value on the command line wins over the environment.
"""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from weatherstream import __version__
from weatherstream.errors import WeatherStreamError
from weatherstream.redact import install_secret_filter, settings_secrets
from weatherstream.settings import Settings, load_settings
from weatherstream.stack import LocalStack, Progress, ServerStatus, StackError

logger = logging.getLogger(__name__)
err_console = Console(stderr=True)


def _human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


class _Context:
    def __init__(self, overrides: dict[str, Any]) -> None:
        self.overrides = overrides

    def settings(self, **more: Any) -> Settings:
        settings = load_settings(**{**self.overrides, **more})
        install_secret_filter(settings_secrets(settings))  # whatever is logged from now on, never a secret
        return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="weatherstream")
@click.option(
    "--log-level",
    default="WARNING",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Verbosity of log output on stderr.",
)
@click.option(
    "--stack-dir", type=click.Path(path_type=Path), help="Stack folder [env WEATHERSTREAM_STACK_DIR; default .stack]."
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    help="Jar cache [env WEATHERSTREAM_CACHE_DIR; default ~/.cache/weatherstream].",
)
@click.pass_context
def cli(ctx: click.Context, log_level: str, stack_dir: Path | None, cache_dir: Path | None) -> None:
    """weatherstream: real-time weather stream processing on Kafka, Faust and Cassandra."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = _Context({"stack_dir": stack_dir, "cache_dir": cache_dir})


@cli.group()
def stack() -> None:
    """Run a local Kafka broker and Cassandra node from Maven Central jars."""


class _ProgressView:
    """Shows `stack up` progress: a live table on a terminal, a line per change elsewhere (CI logs)."""

    def __init__(self) -> None:
        self.interactive = err_console.is_terminal
        self.live: Live | None = None
        self._last_line = ""
        self._last_print = 0.0

    def __enter__(self) -> _ProgressView:
        if self.interactive:
            self.live = Live(console=err_console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def __call__(self, progress: Progress) -> None:
        if self.live is not None:
            table = Table(show_header=False, box=None)
            for name, phase in progress.phases.items():
                mark = "[green]✓[/]" if phase.startswith("ready") else "[yellow]…[/]"
                table.add_row(mark, name, phase, f"{progress.elapsed_s:4.0f} s")
            self.live.update(table)
            return
        line = ", ".join(f"{name}: {phase}" for name, phase in progress.phases.items())
        now = time.monotonic()
        if line != self._last_line or now - self._last_print > 15:
            click.echo(f"[{progress.elapsed_s:5.1f} s] {line}", err=True)
            self._last_line, self._last_print = line, now


def _print_status(rows: list[ServerStatus]) -> None:
    table = Table(title="weatherstream local stack")
    for col in ("server", "state", "pid", "address", "version", "RSS", "data"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        color = {"running": "green", "unhealthy": "red"}.get(r.state, "yellow")
        table.add_row(
            r.name, f"[{color}]{r.state}[/]", str(r.pid or "-"), r.address, r.version or "-",
            _human_bytes(r.rss_bytes), _human_bytes(r.data_bytes),
        )  # fmt: skip
    console = Console()
    console.print(table)
    for r in rows:
        console.print(f"{r.name} log: {r.log_path}", highlight=False, soft_wrap=True)


@stack.command("up")
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    help="Seconds to wait for readiness [env WEATHERSTREAM_STACK_START_TIMEOUT_S; default 180].",
)
@click.option(
    "--kafka-brokers",
    type=click.IntRange(1, 9),
    help="Kafka brokers (KRaft combined nodes) [env WEATHERSTREAM_STACK_KAFKA_BROKERS; default 1].",
)
@click.option(
    "--cassandra-nodes",
    type=click.IntRange(1, 9),
    help="Cassandra nodes, node N on 127.0.0.N [env WEATHERSTREAM_STACK_CASSANDRA_NODES; default 1].",
)
@click.pass_obj
def stack_up(obj: _Context, timeout_s: float | None, kafka_brokers: int | None, cassandra_nodes: int | None) -> None:
    """Start Kafka and Cassandra (fetching jars on first use) and wait until all answer.

    A healthy running stack is reused. Ports: WEATHERSTREAM_STACK_KAFKA_PORT (9092),
    WEATHERSTREAM_STACK_KAFKA_CONTROLLER_PORT (9093), WEATHERSTREAM_CASSANDRA_PORT (9042),
    WEATHERSTREAM_STACK_CASSANDRA_STORAGE_PORT (7000), WEATHERSTREAM_STACK_CASSANDRA_JMX_PORT (7199); broker
    and node N of a cluster add 100 x (N - 1) to the Kafka and JMX ports. With WEATHERSTREAM_STACK_KAFKA_SASL=1
    Kafka takes SASL_PLAINTEXT (SCRAM) clients only, as the user WEATHERSTREAM_KAFKA_USERNAME / _PASSWORD,
    created when its storage is first formatted. `weatherstream stack env` prints the settings for a cluster.
    """
    sizes = {"stack_kafka_brokers": kafka_brokers, "stack_cassandra_nodes": cassandra_nodes}
    stack_obj = LocalStack(obj.settings(stack_start_timeout_s=timeout_s, **sizes))
    started = time.monotonic()
    with _ProgressView() as view:
        rows = stack_obj.up(progress=view)
    click.echo(f"stack ready in {time.monotonic() - started:.1f} s", err=True)
    _print_status(rows)
    if len(rows) > 2:
        click.echo('point weatherstream at this cluster: eval "$(weatherstream stack env)"', err=True)


@stack.command("env")
@click.pass_obj
def stack_env(obj: _Context) -> None:
    """Print `export` lines that point weatherstream at the stack last brought up (brokers, Cassandra hosts and,
    for a cluster, replication and consistency): eval "$(weatherstream stack env)"."""
    for key, value in LocalStack.recorded(obj.settings()).client_settings().items():
        click.echo(f"export {key}={shlex.quote(value)}")


@stack.command("down")
@click.option("--wipe", is_flag=True, help="Also delete the servers' data (topics, keyspaces).")
@click.option(
    "--timeout", "timeout_s", type=float, default=30.0, show_default=True, help="Seconds between SIGTERM and SIGKILL."
)
@click.pass_obj
def stack_down(obj: _Context, wipe: bool, timeout_s: float) -> None:
    """Stop every server of the stack by its recorded process id."""
    stopped = LocalStack.recorded(obj.settings()).down(wipe=wipe, timeout_s=timeout_s)
    for name, was_running in stopped.items():
        click.echo(f"{name}: {'stopped' if was_running else 'was not running'}")
    if wipe:
        click.echo("data wiped")


@stack.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_obj
def stack_status(obj: _Context, as_json: bool) -> None:
    """Each server's state, pid, address, version, memory and data size. Exit code 1 unless all run."""
    rows = LocalStack.recorded(obj.settings()).status()
    if as_json:
        click.echo(json.dumps([{**r.__dict__, "log_path": str(r.log_path)} for r in rows], indent=2))
    else:
        _print_status(rows)
    if any(r.state != "running" for r in rows):
        sys.exit(1)


@stack.command("logs")
@click.argument("server")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option("-n", "--lines", type=int, default=50, show_default=True, help="How many last lines to print first.")
@click.pass_obj
def stack_logs(obj: _Context, server: str, follow: bool, lines: int) -> None:
    """Print a server's log: kafka or cassandra (kafka-1, cassandra-2, ... in a cluster)."""
    try:
        log = LocalStack.recorded(obj.settings()).process(server).log_file
    except StackError as exc:
        raise click.ClickException(str(exc)) from None
    if not log.is_file():
        raise click.ClickException(f"no log at {log}: the {server} server was never started from this stack folder")
    cmd = ["tail", "-n", str(lines)] + (["-F"] if follow else []) + [str(log)]
    try:
        subprocess.run(cmd, check=False)
    except KeyboardInterrupt:
        pass


@cli.command()
@click.option("--web-port", type=int, help="Web server port [env WEATHERSTREAM_WEB_PORT; default 6066].")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Local state [env WEATHERSTREAM_DATA_DIR].")
@click.option("--loglevel", default="info", show_default=True, help="faust worker log level.")
@click.option(
    "--role",
    type=click.Choice(["all", "pipeline", "sink"]),
    help="What to run: the pipeline and the Cassandra sink (all), or one of them [env WEATHERSTREAM_WORKER_ROLE; "
    "default all].",
)
@click.pass_obj
def worker(obj: _Context, web_port: int | None, data_dir: Path | None, loglevel: str, role: str | None) -> None:
    """Run a faust worker: creates the namespace's topics if missing, then runs every agent.

    Start more workers (each with its own --web-port and --data-dir) to share the partitions.
    """
    import asyncio

    from weatherstream.app import Worker
    from weatherstream.memory import tune_garbage_collector
    from weatherstream.stateadmin import check_state_format
    from weatherstream.topics import create_changelog_topics, create_namespace_topics
    from weatherstream.worker import build_worker

    settings = obj.settings(web_port=web_port, data_dir=data_dir, worker_role=role)
    app, _ = build_worker(settings)
    changelogs = [table.changelog_topic.get_topic_name() for table in app.tables.values()]
    setup_loop = asyncio.new_event_loop()
    try:
        if settings.worker_role != "sink":
            setup_loop.run_until_complete(check_state_format(settings))  # refuses state it cannot read
        created = setup_loop.run_until_complete(create_namespace_topics(settings))
        created += setup_loop.run_until_complete(create_changelog_topics(settings, changelogs))
    finally:
        setup_loop.close()
    if created:
        click.echo(f"created topics: {', '.join(created)}", err=True)
    tune_garbage_collector(settings.gc_young_objects, full_by_timer=settings.gc_full_interval_s > 0)
    asyncio.set_event_loop(asyncio.new_event_loop())
    Worker(app, loglevel=loglevel).execute_from_commandline()


def _parse_start(text: str | None) -> float:
    """A synthetic start time (epoch seconds) from ``--start``; NaN when not given."""
    return float("nan") if text is None else float(_parse_time(text, None).timestamp())


@cli.command()
@click.option(
    "--source", type=click.Choice(["synthetic", "replay", "owm"]), required=True, help="Where payloads come from."
)
@click.option("--rate", type=float, help="Records per second (default: as fast as possible).")
@click.option("--cities", "n_cities", type=int, default=50, show_default=True, help="synthetic: number of cities.")
@click.option("--count", type=int, default=10_000, show_default=True, help="synthetic: number of payloads.")
@click.option(
    "--start",
    help="synthetic: event time of the first step (unix seconds or ISO with zone); default: the last step is now.",
)
@click.option(
    "--step",
    "step_s",
    type=float,
    default=600.0,
    show_default=True,
    help="synthetic: event-time seconds between one city's observations.",
)
@click.option("--seed", type=int, default=42, show_default=True, help="synthetic: random seed.")
@click.option("--anomalies", type=int, default=0, show_default=True, help="synthetic: incidents to inject.")
@click.option(
    "--labels", type=click.Path(path_type=Path), help="synthetic: write the injected incidents here (JSON lines)."
)
@click.option("--file", "file_", type=click.Path(path_type=Path), help="replay: JSON lines (.gz ok), CSV or TMY3 file.")
@click.option(
    "--dataset",
    type=click.Choice(["pvlib-greensboro"]),
    help="replay: a real dataset from an installed package instead of --file.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "jsonl", "csv", "tmy3"]),
    default="auto",
    show_default=True,
    help="replay: file format.",
)
@click.option(
    "--map",
    "mapping",
    multiple=True,
    help="replay csv: FIELD=COLUMN (fields: time, city_id, name, temp_c, humidity_pct, pressure_hpa, ...).",
)
@click.option(
    "--time-format", default="iso", show_default=True, help="replay csv: 'iso', 'epoch' or a strptime format."
)
@click.option(
    "--utc-offset",
    "utc_offset_s",
    type=int,
    default=0,
    show_default=True,
    help="replay csv: offset (s) of times without a zone.",
)
@click.option("--city-id", type=int, help="replay csv/tmy3: the OpenWeatherMap id of the file's city.")
@click.option("--city-name", help="replay csv/tmy3: the city's name.")
@click.option(
    "--year",
    type=int,
    default=2023,
    show_default=True,
    help="replay tmy3: the year the typical-year rows are placed on.",
)
@click.option(
    "--units",
    type=click.Choice(["metric", "standard", "imperial"]),
    default="metric",
    show_default=True,
    help="replay jsonl: units of the payloads.",
)
@click.option("--speedup", type=float, help="replay: send in event time, this many times faster than real time.")
@click.option(
    "--city", "city_specs", multiple=True, help="owm: a city id, a name ('Berlin,DE') or lat:lon; repeat for more."
)
@click.option("--cities-file", type=click.Path(path_type=Path, exists=True), help="owm: a file with one city per line.")
@click.option(
    "--group", "use_group", is_flag=True, help="owm: fetch cities given by id 20 at a time through the group endpoint."
)
@click.option(
    "--period",
    "period_s",
    type=float,
    help="owm: poll each city once per this many seconds [env WEATHERSTREAM_OWM_UPDATE_PERIOD_S; default 600].",
)
@click.option(
    "--rate-limit",
    "rate_per_min",
    type=float,
    help="owm: API calls per minute at most [env WEATHERSTREAM_OWM_RATE_LIMIT_PER_MIN; default 60].",
)
@click.option(
    "--rounds", type=int, help="owm: stop after polling every city this many times (default: run until Ctrl-C)."
)
@click.option("--duration", "duration_s", type=float, help="owm: stop after this many seconds.")
@click.pass_obj
def produce(obj: _Context, source: str, rate: float | None, **opts: Any) -> None:
    """Send OpenWeatherMap-shaped payloads to {ns}.raw.

    The API key for --source owm comes from WEATHERSTREAM_OWM_API_KEY or the file named by
    WEATHERSTREAM_OWM_API_KEY_FILE, never from the command line (it would land in shell history).
    """
    from weatherstream.sources import runner

    settings = obj.settings(owm_update_period_s=opts.pop("period_s"), owm_rate_limit_per_min=opts.pop("rate_per_min"))
    opts["start"] = _parse_start(opts["start"])
    stats = runner.run(settings, source, rate=rate, options=opts, console=err_console)
    if stats.failed:
        sys.exit(1)


@cli.group()
def state() -> None:
    """The pipeline's state (windows, anomaly baselines, repeat memory): reset it to rebuild it from the input."""


@state.command("reset")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Workers' local state [env WEATHERSTREAM_DATA_DIR].")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def state_reset(obj: _Context, data_dir: Path | None, yes: bool) -> None:
    """Delete the pipeline's state (any format) and rewind the pipeline to the start of {ns}.raw.

    Stop every worker of the namespace first. The next worker rebuilds each city's state from the input
    {ns}.raw still retains, and sends its outputs again (same ids: consumers and the Cassandra sink treat
    them as repeats). Windows older than the topic's retention are not rebuilt.
    """
    import asyncio

    from weatherstream.stateadmin import reset_state

    settings = obj.settings(data_dir=data_dir)
    if not yes:
        click.confirm(f"delete the pipeline state of namespace {settings.namespace} and rebuild it from "
                      f"{settings.topic_raw}?", abort=True)  # fmt: skip
    report = asyncio.run(reset_state(settings, settings.data_dir))
    click.echo(f"deleted changelog topics: {', '.join(report.deleted_topics) or 'none'}")
    click.echo(f"deleted local folders: {', '.join(map(str, report.deleted_folders)) or 'none'}")
    click.echo(f"the next worker rebuilds the state from {report.raw_messages} messages in {report.raw_partitions} "
               f"partitions of {settings.topic_raw}")  # fmt: skip


@cli.group()
def topics() -> None:
    """Create, list and delete the namespace's Kafka topics."""


@topics.command("create")
@click.pass_obj
def topics_create(obj: _Context) -> None:
    """Create {ns}.raw, .observations, .aggregates, .alerts and .deadletter with WEATHERSTREAM_PARTITIONS partitions."""
    import asyncio

    from weatherstream.topics import create_namespace_topics

    created = asyncio.run(create_namespace_topics(obj.settings()))
    click.echo("created: " + (", ".join(created) if created else "nothing (all exist)"))


@topics.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_obj
def topics_list(obj: _Context, as_json: bool) -> None:
    """The namespace's topics with partition and message counts."""
    import asyncio

    from weatherstream.topics import namespace_topic_counts

    counts = asyncio.run(namespace_topic_counts(obj.settings()))
    if as_json:
        click.echo(json.dumps(counts, indent=2))
        return
    table = Table(title=f"topics of namespace {obj.settings().namespace}")
    for col in ("topic", "partitions", "messages"):
        table.add_column(col)
    for name, info in sorted(counts.items()):
        table.add_row(name, str(info["partitions"]), str(info["messages"]))
    Console().print(table)


@topics.command("delete")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def topics_delete(obj: _Context, yes: bool) -> None:
    """Delete every topic of the namespace (and its changelogs)."""
    import asyncio

    from weatherstream.topics import delete_namespace_topics

    settings = obj.settings()
    if not yes:
        click.confirm(f"delete every topic starting with {settings.namespace}. ?", abort=True)
    deleted = asyncio.run(delete_namespace_topics(settings))
    click.echo("deleted: " + (", ".join(sorted(deleted)) if deleted else "nothing"))


@cli.group()
def alerts() -> None:
    """Follow and score the alerts topic ({ns}.alerts)."""


@alerts.command("tail")
@click.option("--city", "city_id", type=int, help="Only this city id.")
@click.option("--kind", "kinds", multiple=True, help="Only these kinds (repeatable), e.g. temp_high, storm.")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest alert instead of new ones.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--max", "max_count", type=int, help="Exit after this many alerts.")
@click.option("--timeout", "timeout_s", type=float, help="Exit after this many seconds.")
@click.pass_obj
def alerts_tail(obj: _Context, city_id: int | None, kinds: tuple[str, ...], from_beginning: bool, as_json: bool,
                max_count: int | None, timeout_s: float | None) -> None:  # fmt: skip
    """Print alerts as they arrive. Ctrl-C exits."""
    import asyncio

    from weatherstream.subscribe import AlertFilter, follow_alerts, format_alert

    settings = obj.settings()

    async def run() -> None:
        count = 0
        async for alert in follow_alerts(settings, from_beginning=from_beginning,
                                         accept=AlertFilter(city_id, frozenset(kinds))):  # fmt: skip
            click.echo(alert.dumps().decode() if as_json else format_alert(alert))
            count += 1
            if max_count is not None and count >= max_count:
                return

    try:
        asyncio.run(asyncio.wait_for(run(), timeout_s) if timeout_s else run())
    except (KeyboardInterrupt, asyncio.TimeoutError):
        pass


@alerts.command("score")
@click.option(
    "--labels",
    type=click.Path(path_type=Path, exists=True),
    required=True,
    help="The synthetic source's --labels file.",
)
@click.option(
    "--alerts-file",
    type=click.Path(path_type=Path, exists=True),
    help="Alerts as JSON lines (default: read the alerts topic).",
)
@click.option("--min-recall", type=float, help="Exit with 1 when recall is lower.")
@click.option("--min-precision", type=float, help="Exit with 1 when precision is lower.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.pass_obj
def alerts_score(obj: _Context, labels: Path, alerts_file: Path | None, min_recall: float | None,
                 min_precision: float | None, as_json: bool) -> None:  # fmt: skip
    """Per-incident recall and precision of the alerts against injected anomalies."""
    import asyncio

    import orjson

    from weatherstream.core.anomaly.scoring import score
    from weatherstream.subscribe import read_all_alerts

    label_rows = [orjson.loads(line) for line in labels.read_bytes().splitlines() if line.strip()]
    if alerts_file is not None:
        alert_rows = [orjson.loads(line) for line in alerts_file.read_bytes().splitlines() if line.strip()]
    else:
        alert_rows = [a.asdict() for a in asyncio.run(read_all_alerts(obj.settings()))]
    result = score(label_rows, alert_rows)
    if as_json:
        click.echo(json.dumps({"recall": result.recall, "precision": result.precision, "incidents": result.incidents,
                               "found": result.found, "alert_incidents": result.alert_incidents,
                               "correct_alerts": result.correct_alerts}))  # fmt: skip
    else:
        click.echo(result.summary())
        for miss in result.missed[:20]:
            click.echo(f"  missed: {miss['incident_id']} ({miss['detail']})")
        for wrong in result.false_alerts[:20]:
            click.echo(f"  not injected: {wrong['alert_id']}: {wrong['message']}")
    if (min_recall is not None and result.recall < min_recall) or (
        min_precision is not None and result.precision < min_precision
    ):
        sys.exit(1)


@cli.group()
def db() -> None:
    """The Cassandra keyspace's schema (WEATHERSTREAM_KEYSPACE)."""


def _session(settings: Settings) -> Any:
    """A connected (cluster, session); a clear error when Cassandra cannot be reached."""
    from cassandra.cluster import NoHostAvailable

    from weatherstream.db import connect_settings
    from weatherstream.sinks.errors import CassandraUnavailableError

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # the driver logs every failed attempt with a traceback; the error below says it once, clearly
        logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    try:
        return connect_settings(settings)
    except NoHostAvailable as exc:
        where = f"{','.join(settings.cassandra_hosts)}:{settings.cassandra_port}"
        reasons = "; ".join(f"{host}: {err}" for host, err in exc.errors.items()) or str(exc)
        raise CassandraUnavailableError(
            f"cannot reach Cassandra at {where} ({reasons}): start it (`weatherstream stack up`) or set "
            "WEATHERSTREAM_CASSANDRA_HOSTS / _PORT (and _USERNAME / _PASSWORD with PasswordAuthenticator)"
        ) from None


@db.command("migrate")
@click.pass_obj
def db_migrate(obj: _Context) -> None:
    """Create the keyspace if missing and apply every pending schema migration (safe to repeat)."""
    from weatherstream.sinks.schema import migrate, status

    settings = obj.settings()
    cluster, session = _session(settings)
    try:
        applied = migrate(session, settings, report=lambda text: click.echo(text, err=True))
        version = status(session, settings.keyspace).version
    finally:
        cluster.shutdown()
    click.echo(f"keyspace {settings.keyspace}: schema version {version} "
               f"({len(applied)} migration(s) applied now)")  # fmt: skip


@db.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_obj
def db_status(obj: _Context, as_json: bool) -> None:
    """The keyspace's applied schema version and the migrations still pending (exit 1 if any)."""
    from weatherstream.sinks.schema import status

    settings = obj.settings()
    cluster, session = _session(settings)
    try:
        st = status(session, settings.keyspace)
    finally:
        cluster.shutdown()
    if as_json:
        click.echo(json.dumps({
            "keyspace": st.keyspace, "exists": st.keyspace_exists, "version": st.version,
            "applied": [{"version": v, "name": n, "checksum": c, "applied_at": a.isoformat() if a else None}
                        for v, (n, c, a) in sorted(st.applied.items())],
            "pending": [{"version": m.version, "name": m.name} for m in st.pending],
        }))  # fmt: skip
    else:
        if not st.keyspace_exists:
            click.echo(f"keyspace {st.keyspace} does not exist: run `weatherstream db migrate`")
        else:
            click.echo(f"keyspace {st.keyspace}: schema version {st.version}")
            for version, (name, _, applied_at) in sorted(st.applied.items()):
                click.echo(f"  applied  {version:04d}_{name}  {applied_at:%Y-%m-%d %H:%M:%S} UTC")
        for m in st.pending:
            click.echo(f"  pending  {m.version:04d}_{m.name}")
    if not st.up_to_date:
        sys.exit(1)


def _parse_time(text: str | None, default: Any) -> Any:
    """An aware UTC datetime from the command line (see :func:`weatherstream.times.parse_utc`)."""
    from weatherstream.times import parse_utc

    if text is None:
        return default
    try:
        return parse_utc(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command()
@click.argument("what", type=click.Choice(["observations", "aggregates", "alerts"]))
@click.option("--city", "city_id", type=int, required=True, help="The city id.")
@click.option("--from", "start", help="From this time (ISO 8601 with zone, or epoch seconds); default: 24 h ago.")
@click.option("--to", "end", help="Up to (not including) this time; default: now.")
@click.option("--kind", "kinds", multiple=True, help="aggregates: window kind (repeatable); default: every kind.")
@click.option("--all-revisions", is_flag=True, help="aggregates: every revision, not only the newest.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def query(obj: _Context, what: str, city_id: int, start: str | None, end: str | None, kinds: tuple[str, ...],
          all_revisions: bool, as_json: bool) -> None:  # fmt: skip
    """Read stored observations, aggregates or alerts of one city back from Cassandra, newest first."""
    import datetime as dt

    from cassandra import InvalidRequest, Unauthorized

    from agents.pipeline import window_config
    from weatherstream.queries import read_aggregates, read_alerts, read_observations
    from weatherstream.sinks.errors import SinkError

    settings = obj.settings()
    now = dt.datetime.now(dt.timezone.utc)
    t_end = _parse_time(end, now)
    t_start = _parse_time(start, t_end - dt.timedelta(days=1))
    if t_start >= t_end:
        raise click.BadParameter("--from must be before --to")
    cluster, session = _session(settings)
    try:
        ks = settings.keyspace
        if what == "observations":
            found = read_observations(session, ks, city_id, t_start, t_end)
            columns = ["observed_at", "temp_c", "humidity_pct", "pressure_hpa", "wind_speed_ms", "condition_main",
                       "source"]  # fmt: skip
        elif what == "aggregates":
            spec = window_config(settings).spec
            found = read_aggregates(session, ks, city_id, kinds or spec.kinds, t_start, t_end, all_revisions)
            columns = ["kind", "window_start", "revision", "count", "temp_min_c", "temp_mean_c", "temp_max_c",
                       "pressure_mean_hpa", "rain_total_mm"]  # fmt: skip
        else:
            found = read_alerts(session, ks, city_id, t_start, t_end)
            columns = ["observed_at", "kind", "severity", "state", "message"]
    except (InvalidRequest, Unauthorized) as exc:
        raise SinkError(
            f"cannot read keyspace {settings.keyspace}: {exc.summary if hasattr(exc, 'summary') else exc}. "
            "If it has no tables yet run `weatherstream db migrate`; if access is denied, grant the role SELECT "
            "on the keyspace"
        ) from None
    finally:
        cluster.shutdown()
    if as_json:
        for item in found:
            click.echo(json.dumps({k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in item.items()}))
        return
    table = Table(title=f"{what} of city {city_id}, {t_start:%Y-%m-%d %H:%M} to {t_end:%Y-%m-%d %H:%M} UTC "
                        f"({len(found)})")  # fmt: skip
    for col in columns:
        table.add_column(col)
    for item in found:
        table.add_row(*[_cell(item.get(col)) for col in columns])
    Console().print(table)


def _cell(value: Any) -> Text:
    import datetime as dt

    if value is None:
        return Text("-")
    if isinstance(value, dt.datetime):
        return Text(f"{value:%Y-%m-%d %H:%M:%S}")
    if isinstance(value, float):
        return Text(f"{value:.2f}")
    return Text(str(value))  # Text: never interpreted as rich markup (a city may be named "[b]")


@cli.command()
@click.option("--cities", type=int, default=50, show_default=True, help="Cities to simulate.")
@click.option("--hours", type=float, default=72, show_default=True, help="Event time, ending now (2 days warm-up).")
@click.option("--rate", type=float, default=200, show_default=True, help="Observations sent per second.")
@click.option("--anomalies", type=int, default=40, show_default=True, help="Incidents to inject.")
@click.option("--namespace", default="demo", show_default=True, help="Topic namespace to recreate and use.")
@click.option("--keyspace", default="demo", show_default=True, help="Cassandra keyspace to recreate and use.")
@click.pass_obj
def demo(obj: _Context, cities: int, hours: float, rate: float, anomalies: int, namespace: str, keyspace: str) -> None:
    """Run the whole pipeline on built-in data in namespace and keyspace `demo` (recreated), and say where
    to look. Needs the local stack (`weatherstream stack up`); Ctrl-C stops it. Its files go to ./.demo."""
    from weatherstream.demo import run

    settings = obj.settings(namespace=namespace, keyspace=keyspace)
    run(settings, lambda text: click.echo(text, err=True), cities=cities, hours=hours, rate=rate,
        anomalies=anomalies)  # fmt: skip


@cli.command("web-assets")
def web_assets() -> None:
    """Download the dashboard's chart library and map outline (pinned npm packages, checked against their
    SHA-512) into the installed package; `make install` runs it. Does nothing when they are there."""
    from weatherstream.web import assets

    written = assets.fetch()
    click.echo(f"installed {', '.join(written)} into {assets.vendor_dir()}" if written
               else f"the dashboard's files are in {assets.vendor_dir()}", err=True)  # fmt: skip


def main() -> None:
    """Console-script entry point: runs the CLI and turns project errors into a clear message."""
    try:
        cli(standalone_mode=True)
    except WeatherStreamError as exc:
        err_console.print(Text("error: ", style="red"), Text(str(exc)), sep="", highlight=False)
        sys.exit(1)
