"""Security against the secure stack (Kafka over SASL_PLAINTEXT with SCRAM, Cassandra with a password):
every client path works with the right credentials; wrong or missing ones end in a clear error within
seconds; and no secret (Kafka password, Cassandra password, OpenWeatherMap key) shows in anything a user
or an attacker can see: worker logs, command output and errors, `/metrics`, every page and API response."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.fake_owm import API_KEY, FakeOwm
from tests.integration.conftest import KAFKA_PASSWORD, KAFKA_USER, cli, free_port, read_topic, secure_test_settings
from tests.integration.conftest import settings_env as _settings_env
from tests.integration.test_sink_worker import wait_for
from weatherstream.settings import Settings
from weatherstream.stack import LocalStack
from weatherstream.web.api import SECURITY_HEADERS

ROLE = "ws_scanned"
ROLE_PASSWORD = f"cass-pw-{uuid.uuid4().hex[:16]}"
WRONG_KAFKA_PASSWORD = f"wrong-kafka-pw-{uuid.uuid4().hex[:12]}"
WRONG_CASSANDRA_PASSWORD = f"wrong-cass-pw-{uuid.uuid4().hex[:12]}"
WRONG_OWM_KEY = f"wrong-owm-key-{uuid.uuid4().hex[:12]}"
#: every value that must never be shown, by what it is
SECRETS = {
    "Kafka password": KAFKA_PASSWORD,
    "Cassandra password": ROLE_PASSWORD,
    "OpenWeatherMap key": API_KEY,
    "wrong Kafka password": WRONG_KAFKA_PASSWORD,
    "wrong Cassandra password": WRONG_CASSANDRA_PASSWORD,
    "wrong OpenWeatherMap key": WRONG_OWM_KEY,
}
CITIES = (2950159, 2643743)  # the fake API's Berlin and London
REFUSED_CREDENTIALS = f"refused the credentials of user {KAFKA_USER!r}"


@pytest.fixture
def settings(secure_stack: LocalStack, run_id: str) -> Iterator[Settings]:
    """This test's namespace and keyspace on the secure stack, with a Cassandra role of its own."""
    yield from secure_test_settings(secure_stack, f"q{run_id}", ROLE, ROLE_PASSWORD)


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of ``settings`` plus the OpenWeatherMap key, so that every process holds every secret."""
    return _settings_env(settings, **{"WEATHERSTREAM_OWM_API_KEY": API_KEY, **extra})


def run(settings: Settings, *args: str, timeout_s: float = 120, **env: str) -> tuple[int, str, float]:
    """Run a `weatherstream` command; returns its exit code, stdout + stderr and duration in seconds."""
    started = time.monotonic()
    done = subprocess.run(cli(*args), env=settings_env(settings, **env), capture_output=True, text=True,
                          timeout=timeout_s, check=False)  # fmt: skip
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def flat(text: str) -> str:
    """``text`` with line wraps undone (rich wraps the error message at 80 columns)."""
    return " ".join(text.split())


def find_secrets(text: str) -> list[str]:
    """The secrets in ``text``, also when a line wrap split one (rich wraps long error messages)."""
    joined = re.sub(r"\s+", "", text)
    return [name for name, secret in SECRETS.items() if secret in text or secret in joined]


def test_every_client_works_over_sasl(settings: Settings) -> None:
    code, out, _ = run(settings, "topics", "create")
    assert code == 0 and "created:" in out, out
    code, out, _ = run(settings, "produce", "--source", "synthetic", "--count", "200", "--cities", "10")
    assert code == 0 and "sent 200, failed 0" in flat(out), out
    code, out, _ = run(settings, "topics", "list", "--json", WEATHERSTREAM_KAFKA_SASL_MECHANISM="SCRAM-SHA-512")
    assert code == 0 and json.loads(out)[settings.topic_raw]["messages"] == 200, out
    assert len(read_topic(settings, settings.topic_raw, expect=200, settle_s=0.5)) == 200
    code, out, _ = run(settings, "alerts", "tail", "--from-beginning", "--timeout", "4")
    assert code == 0 and "Traceback" not in out, out
    # A client without SASL is turned away: the listener takes nothing else.
    code, out, _ = run(settings, "topics", "list", WEATHERSTREAM_KAFKA_SECURITY_PROTOCOL="PLAINTEXT",
                       WEATHERSTREAM_KAFKA_USERNAME="", WEATHERSTREAM_KAFKA_PASSWORD="")  # fmt: skip
    assert code == 1 and "listener may require SASL" in flat(out) and "Traceback" not in out, out


@pytest.mark.parametrize(
    "command",
    [
        ("worker",),
        ("topics", "list"),
        ("produce", "--source", "synthetic", "--count", "10"),
        ("alerts", "tail", "--timeout", "120"),
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_a_wrong_password_is_a_clear_error_within_seconds(
    settings: Settings, tmp_path: Path, command: tuple[str, ...]
) -> None:
    code, out, took_s = run(settings, *command, WEATHERSTREAM_KAFKA_PASSWORD=WRONG_KAFKA_PASSWORD,
                            WEATHERSTREAM_WEB_PORT=str(free_port()), WEATHERSTREAM_DATA_DIR=str(tmp_path))  # fmt: skip
    assert code == 1, out
    assert took_s < 30, f"{command} took {took_s:.0f} s to give up"
    assert REFUSED_CREDENTIALS in flat(out) and "WEATHERSTREAM_KAFKA_PASSWORD" in out, out
    assert "Traceback" not in out, out
    assert find_secrets(out) == [], out


def test_wrong_user_mechanism_or_address_are_named(settings: Settings) -> None:
    code, out, _ = run(settings, "topics", "list", WEATHERSTREAM_KAFKA_USERNAME="nobody")
    assert code == 1 and "refused the credentials of user 'nobody'" in flat(out), out
    code, out, _ = run(settings, "topics", "list", WEATHERSTREAM_KAFKA_SASL_MECHANISM="PLAIN")
    assert code == 1 and "WEATHERSTREAM_KAFKA_SASL_MECHANISM" in flat(out) and "SCRAM-SHA-256" in out, out
    code, out, _ = run(settings, "topics", "list", WEATHERSTREAM_BROKER=f"kafka://127.0.0.1:{free_port()}")
    assert code == 1 and "nothing listens at" in flat(out), out
    code, out, _ = run(settings, "topics", "list", WEATHERSTREAM_KAFKA_PASSWORD="")
    assert code == 1 and "WEATHERSTREAM_KAFKA_PASSWORD: " in flat(out) and "SASL_PLAINTEXT" in out, out
    assert "Traceback" not in out


def web_paths(city_id: int) -> list[str]:
    """Every page and API the worker serves (the project's and faust's built-in ones), plus error cases."""
    return [
        "/", f"/city/{city_id}", "/static/common.js", "/static/style.css", "/static/index.html", "/map", "/alerts",
        "/static/vendor/uPlot.iife.min.js", "/api/network", "/api/map", "/health",
        "/ready", "/metrics", "/api/cities", f"/api/cities/{city_id}", f"/api/cities/{city_id}/aggregates",
        f"/api/cities/{city_id}/aggregates?kind=nope", "/api/cities/abc", "/api/cities/404404",
        f"/api/alerts?city={city_id}&since=2000-01-01T00:00Z", "/api/alerts", "/router/", "/router/topics",
        "/table/", "/stats/", "/graph/", "/performance/", "/no/such/page",
    ]  # fmt: skip


def scan_web(port: int, city_id: int, check_methods: bool) -> dict[str, str]:
    """GET every path (and, with ``check_methods``, try to change something on each); returns what each
    answered, headers and body, for the secret scan."""
    seen = {}
    for path in web_paths(city_id):
        response = requests.get(f"http://127.0.0.1:{port}{path}", timeout=30)
        seen[f"GET {path}"] = f"{response.status_code} {dict(response.headers)}\n{response.text}"
        assert response.status_code != 500, (path, response.text)
        answers = [response]
        if check_methods:  # the server is read-only: nothing but GET (and HEAD) is accepted anywhere
            for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
                refused = requests.request(method, f"http://127.0.0.1:{port}{path}", data=b"{}", timeout=30)
                assert refused.status_code in (404, 405), (method, path, refused.status_code)
                seen[f"{method} {path}"] = f"{refused.status_code} {dict(refused.headers)}\n{refused.text}"
                answers.append(refused)
        for answer in answers:  # every answer, errors and faust's own pages included, has the security headers
            for header, value in SECURITY_HEADERS.items():
                assert answer.headers.get(header) == value, (answer.request.method, path, header, answer.headers)
            assert "Access-Control-Allow-Origin" not in answer.headers, path
    return seen


def test_no_secret_shows_anywhere(settings: Settings, secure_stack: LocalStack, start_worker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seen: dict[str, str] = {}  # where -> what a user or an attacker could read there
    assert find_secrets(f"x {ROLE_PASSWORD[:7]}\n  {ROLE_PASSWORD[7:]} y") == ["Cassandra password"]  # wrapped too

    def command(where: str, *args: str, expect_code: int | None = 0, **env: str) -> str:
        code, out, took_s = run(settings, "--log-level", "DEBUG", *args, **env)
        seen[where] = out
        if expect_code is not None:
            assert code == expect_code, f"{where}: exit code {code}\n{out[-3000:]}"
        assert took_s < 60, f"{where} took {took_s:.0f} s"
        return out

    command("db migrate", "db", "migrate")
    worker = start_worker(loglevel="debug", WEATHERSTREAM_OWM_API_KEY=API_KEY)
    with FakeOwm(1_795_000_000) as fake:
        out = command("produce --source owm", "produce", "--source", "owm", *(f"--city={c}" for c in CITIES),
                      "--period", "2", "--rounds", "1", WEATHERSTREAM_OWM_BASE_URL=fake.url)  # fmt: skip
        assert "sent 2, failed 0" in flat(out) and "appid=***" in out, out  # the request log was there, masked
        command("produce with a rejected key", "produce", "--source", "owm", f"--city={CITIES[0]}", expect_code=1,
                WEATHERSTREAM_OWM_BASE_URL=fake.url, WEATHERSTREAM_OWM_API_KEY=WRONG_OWM_KEY)  # fmt: skip

    def listed() -> int:
        response = requests.get(f"http://127.0.0.1:{worker.web_port}/api/cities", timeout=30)
        return len(response.json().get("cities", [])) if response.status_code == 200 else 0

    wait_for("cities stored and served", listed, len(CITIES), timeout_s=120)
    seen.update({f"worker web: {k}": v for k, v in scan_web(worker.web_port, CITIES[0], check_methods=True).items()})
    assert "weatherstream_events_in" in seen["worker web: GET /metrics"]

    # The web server listens on 127.0.0.1 only (WEATHERSTREAM_WEB_BIND's default): another address of the
    # machine is refused. 127.0.0.2 is one on every Linux host, and a server bound to 0.0.0.0 would answer it.
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.2", worker.web_port), timeout=5):
        pass

    command("topics list", "topics", "list")
    command("query", "query", "observations", f"--city={CITIES[0]}", "--from=2026-01-01T00:00Z", "--json")
    command("alerts tail", "alerts", "tail", "--from-beginning", "--timeout", "3")
    command("db status", "db", "status")
    command("stack status", "stack", "status")
    # Failing commands, with every secret in their environment.
    command("wrong Kafka password", "topics", "list", expect_code=1, WEATHERSTREAM_KAFKA_PASSWORD=WRONG_KAFKA_PASSWORD)
    command("wrong Cassandra password", "db", "status", expect_code=1,
            WEATHERSTREAM_CASSANDRA_PASSWORD=WRONG_CASSANDRA_PASSWORD)  # fmt: skip
    command("query, wrong Cassandra password", "query", "observations", f"--city={CITIES[0]}", expect_code=1,
            WEATHERSTREAM_CASSANDRA_PASSWORD=WRONG_CASSANDRA_PASSWORD)  # fmt: skip
    command("unreachable Kafka", "produce", "--source", "synthetic", "--count", "5", expect_code=1,
            WEATHERSTREAM_BROKER=f"kafka://127.0.0.1:{free_port()}")  # fmt: skip
    command("unreachable Cassandra", "db", "status", expect_code=1, WEATHERSTREAM_CASSANDRA_PORT=str(free_port()))
    command("invalid settings", "topics", "list", expect_code=1, WEATHERSTREAM_PARTITIONS="zero",
            WEATHERSTREAM_KAFKA_SECURITY_PROTOCOL="PLAINTEXT")  # fmt: skip
    worker.stop()
    seen["worker log"] = worker.log()

    # A worker whose Cassandra password is wrong: its sink fails (and says so), its pages say Cassandra is
    # not reachable.
    failing = start_worker(name="failing", loglevel="debug", WEATHERSTREAM_OWM_API_KEY=API_KEY,
                           WEATHERSTREAM_CASSANDRA_PASSWORD=WRONG_CASSANDRA_PASSWORD)  # fmt: skip
    command("more records", "produce", "--source", "synthetic", "--count", "20", "--cities", "2")
    wait_for("the sink's complaint", lambda: int("not moving on" in failing.log() or "trying again" in failing.log()),
             1, timeout_s=120)  # fmt: skip
    seen.update({f"failing worker web: {k}": v for k, v in scan_web(failing.web_port, CITIES[0], False).items()})
    assert "Cassandra is not reachable" in seen["failing worker web: GET /api/cities"]
    failing.stop()
    seen["failing worker log"] = failing.log()

    # The stack's own files (logs, configs) never received the clients' secrets either.
    for path in sorted(secure_stack.stack_dir.rglob("*")):
        if path.is_file() and path.suffix in (".log", ".properties", ".yaml", ".xml", ".secret"):
            seen[f"stack file {path.relative_to(secure_stack.stack_dir)}"] = path.read_text(errors="replace")

    leaks = {where: found for where, text in seen.items() if (found := find_secrets(text))}
    assert leaks == {}, f"secrets shown: {leaks}"
    assert len(seen) > 100, sorted(seen)  # the scan did look at everything
    print(f"\nscanned {len(seen)} outputs, {sum(map(len, seen.values())) / 1e6:.1f} MB: no secret")


def test_a_limited_role_packs_batches_within_the_clusters_thresholds_once_granted(
    settings: Settings, secure_stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    """The sink reads the cluster's batch thresholds from system_views.settings; a role limited to its keyspace
    may not, gets Cassandra's defaults and a warning that says what to grant, and the cluster's once granted."""
    import logging

    from weatherstream.db import connect
    from weatherstream.sinks.writer import BatchLimits, CassandraWriter
    from weatherstream.stack.cassandra import CassandraServer

    def limits() -> BatchLimits:
        writer = CassandraWriter(settings)
        writer.open()
        try:
            return writer.limits
        finally:
            writer.close()

    with caplog.at_level(logging.WARNING, logger="weatherstream.sinks.writer"):
        assert limits() == BatchLimits(partitions=10, max_bytes=5 * 1024)
    assert "grant the role SELECT on system_views.settings" in caplog.text
    user, password = CassandraServer.SUPERUSER
    cluster, session = connect(["127.0.0.1"], settings.cassandra_port, username=user, password=password)
    try:
        session.execute(f"GRANT SELECT ON system_views.settings TO {ROLE}")
        time.sleep(3)  # the node caches a role's permissions for permissions_validity (2 s)
        try:
            assert limits() == BatchLimits(partitions=50, max_bytes=32 * 1024)  # the secure stack's cassandra.yaml
        finally:
            session.execute(f"REVOKE SELECT ON system_views.settings FROM {ROLE}")
    finally:
        cluster.shutdown()
