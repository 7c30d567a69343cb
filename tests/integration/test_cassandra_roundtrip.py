"""A row written with cassandra-driver to the real local node is read back."""

import datetime as dt
import subprocess
import sys
from pathlib import Path

from weatherstream.settings import Settings


def test_row_round_trip(cassandra_session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    session = cassandra_session
    session.execute(
        "CREATE TABLE probe (city_id int, observed_at timestamp, temp_c double, PRIMARY KEY (city_id, observed_at))"
    )
    insert = session.prepare("INSERT INTO probe (city_id, observed_at, temp_c) VALUES (?, ?, ?)")
    t0 = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
    session.execute(insert, (2950159, t0, 4.5))
    session.execute(insert, (2950159, t0 + dt.timedelta(hours=1), 5.25))
    rows = list(session.execute("SELECT observed_at, temp_c FROM probe WHERE city_id = 2950159"))
    assert [(r.observed_at.replace(tzinfo=dt.timezone.utc), r.temp_c) for r in rows] == [
        (t0, 4.5),
        (t0 + dt.timedelta(hours=1), 5.25),
    ]
    keyspaces = {r.keyspace_name for r in session.execute("SELECT keyspace_name FROM system_schema.keyspaces")}
    assert settings.keyspace in keyspaces


def test_cqlsh_reports_a_cassandra_5_0_node(cassandra_session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    cqlsh = Path(sys.executable).parent / "cqlsh"
    out = subprocess.run(
        [str(cqlsh), settings.cassandra_hosts[0], str(settings.cassandra_port), "-e",
         "SELECT release_version FROM system.local"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    versions = [line.strip() for line in out.stdout.splitlines() if line.strip().startswith("5.0.")]
    assert versions, out.stdout + out.stderr
