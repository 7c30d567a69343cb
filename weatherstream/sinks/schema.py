"""Versioned CQL migrations: ``migrations/NNNN_name.cql`` in the package, applied in order, each once.

``weatherstream db migrate`` and every worker at start call :func:`migrate`. It creates the keyspace
with the configured replication if it is missing, then applies each migration not yet recorded in
``schema_migrations``. Every statement is idempotent (``IF NOT EXISTS``), so two workers migrating at
once, or a migration interrupted half way, are harmless: it is simply applied again. New tables get ids
derived from their definitions (:func:`with_table_id`), so that two workers creating one at once through
different nodes of a cluster create the same table.
A migration file that changed after it was applied is refused (its checksum is recorded).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from cassandra import DriverException
from cassandra.cluster import Session

from weatherstream.settings import Settings
from weatherstream.sinks.errors import SchemaError

logger = logging.getLogger(__name__)

SCHEMA_AGREEMENT_WAIT_S = 30
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.cql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def statements(self, keyspace: str) -> list[str]:
        """The file's statements for ``keyspace``, comments removed, each new table with its fixed id."""
        lines = [line for line in self.text.splitlines() if not line.lstrip().startswith("--")]
        body = "\n".join(lines).replace("{keyspace}", keyspace)
        return [with_table_id(s.strip()) for s in body.split(";") if s.strip()]


_CREATE_TABLE_RE = re.compile(r"^CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(\w+)\.(\w+)\s*\(", re.IGNORECASE)


def with_table_id(statement: str) -> str:
    """``statement`` with ``id = <uuid>`` among its options if it creates a table: the id is derived from the
    keyspace, the table and the statement, so that workers migrating at once on different coordinators create
    one table. (Otherwise each coordinator gives the table an id of its own; the cluster keeps one of them, and
    rows written under the other are lost, possibly only when a node restarts: Cassandra 5.0 applies schema
    changes in no global order.)"""
    match = _CREATE_TABLE_RE.match(statement)
    if match is None:
        return statement
    depth, end = 0, len(statement)
    for i in range(match.end() - 1, len(statement)):  # the column list's closing parenthesis
        depth += {"(": 1, ")": -1}.get(statement[i], 0)
        if depth == 0:
            end = i
            break
    table_id = uuid.uuid5(_TABLE_IDS, f"{match.group(1)}.{match.group(2)}\n{statement}")
    joiner = " AND" if re.search(r"\bWITH\b", statement[end:], re.IGNORECASE) else " WITH"
    return f"{statement}{joiner} id = {table_id}"


_TABLE_IDS = uuid.UUID("5b0c3f8e-2d4a-4f6e-9c1b-7a8d9e0f1a2b")  # weatherstream's namespace of table ids


def migrations() -> list[Migration]:
    """Every migration shipped with the package, by version."""
    found = []
    for entry in resources.files("weatherstream.sinks").joinpath("migrations").iterdir():
        match = _FILE_RE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise SchemaError(f"migration versions must run 1, 2, 3, ... without gaps; found {versions}")
    return found


@dataclass(frozen=True)
class SchemaStatus:
    keyspace: str
    keyspace_exists: bool
    applied: dict[int, tuple[str, str, dt.datetime]]  # version -> (name, checksum, applied at)
    known: list[Migration]

    @property
    def version(self) -> int:
        """The highest applied version (0: none)."""
        return max(self.applied, default=0)

    @property
    def pending(self) -> list[Migration]:
        return [m for m in self.known if m.version not in self.applied]

    @property
    def up_to_date(self) -> bool:
        return not self.pending


def status(session: Session, keyspace: str) -> SchemaStatus:
    """What is applied in ``keyspace`` and what this version of weatherstream would apply."""
    exists = session.execute(
        "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s", (keyspace,)
    ).one()
    applied: dict[int, tuple[str, str, dt.datetime]] = {}
    if exists:
        table = session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s AND table_name = 'schema_migrations'",
            (keyspace,),
        ).one()
        if table:
            for row in session.execute(f"SELECT version, name, checksum, applied_at FROM {keyspace}.schema_migrations"):
                applied[row.version] = (row.name, row.checksum, row.applied_at)
    return SchemaStatus(keyspace, exists is not None, applied, migrations())


def _replication_cql(options: dict[str, str]) -> str:
    return "{" + ", ".join(f"'{k}': '{v}'" for k, v in options.items()) + "}"


def migrate(session: Session, settings: Settings, report: Callable[[str], None] | None = None) -> list[Migration]:
    """Create the keyspace if needed and apply the pending migrations; returns those applied now.

    Raises:
        SchemaError: an applied migration's file has changed, the keyspace has a newer schema than this
            version of weatherstream knows, or the nodes still disagree on the schema after 30 s.
    """
    keyspace = settings.keyspace
    say = report or (lambda text: logger.info("%s", text))
    current = status(session, keyspace)
    if not current.keyspace_exists:  # a role limited to the keyspace may not even ask to create one
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {_replication_cql(settings.replication())}"
        )
    if current.pending:
        session.execute(with_table_id(
            f"CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations "
            "(version int PRIMARY KEY, name text, checksum text, applied_at timestamp)"
        ))  # fmt: skip
    known = {m.version for m in current.known}
    unknown = sorted(set(current.applied) - known)
    if unknown:
        raise SchemaError(
            f"keyspace {keyspace} has schema versions {unknown} that this weatherstream does not know: "
            "upgrade weatherstream, or use another WEATHERSTREAM_KEYSPACE"
        )
    for m in current.known:
        if m.version in current.applied and current.applied[m.version][1] != m.checksum:
            raise SchemaError(
                f"migration {m.version:04d}_{m.name}.cql changed after it was applied to keyspace {keyspace}: "
                "never edit an applied migration; add a new one instead"
            )
    done = []
    for m in current.pending:
        say(f"applying migration {m.version:04d}_{m.name} to keyspace {keyspace}")
        for statement in m.statements(keyspace):
            session.execute(statement)
        session.execute(
            f"INSERT INTO {keyspace}.schema_migrations (version, name, checksum, applied_at) VALUES (%s, %s, %s, %s)",
            (m.version, m.name, m.checksum, dt.datetime.now(dt.timezone.utc)),
        )
        done.append(m)
    # Every node has the tables before anything is prepared on them: another worker may have created them a
    # moment ago through another node (then the statements here changed nothing, and the driver did not wait).
    try:
        session.cluster.refresh_schema_metadata(max_schema_agreement_wait=SCHEMA_AGREEMENT_WAIT_S)
    except DriverException as exc:
        raise SchemaError(
            f"the Cassandra nodes did not agree on the schema within {SCHEMA_AGREEMENT_WAIT_S} s after the "
            f"migrations of keyspace {keyspace}, or the driver lost its control connection meanwhile ({exc}; its "
            "log says which): see which node differs with `nodetool describecluster`, wait for it to catch up or "
            "restart it; migrating again is harmless"
        ) from None
    return done
