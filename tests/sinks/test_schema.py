"""The shipped migrations: numbered without gaps, idempotent statements, one table per query."""

import re
from types import SimpleNamespace
from typing import Any

import pytest
from cassandra import DriverException

from weatherstream.settings import load_settings
from weatherstream.sinks import rows
from weatherstream.sinks.errors import SchemaError
from weatherstream.sinks.schema import migrate, migrations, with_table_id


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    found = migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert len({m.checksum for m in found}) == len(found)


def test_every_statement_is_idempotent_and_names_the_keyspace() -> None:
    for m in migrations():
        statements = m.statements("ks_test")
        assert statements, m.name
        for statement in statements:
            assert "IF NOT EXISTS" in statement, statement[:80]
            assert "ks_test." in statement and "{keyspace}" not in statement
            assert "--" not in statement  # comments are stripped


def test_sink_tables_exist_with_the_columns_the_sink_writes() -> None:
    text = "\n".join(s for m in migrations() for s in m.statements("ks"))
    for table in (rows.OBSERVATIONS, rows.LATEST, rows.AGGREGATES, rows.ALERTS_BY_CITY, rows.ALERTS_BY_DAY):
        match = re.search(rf"CREATE TABLE IF NOT EXISTS ks\.{table.name} \((.*?)PRIMARY KEY", text, re.S)
        assert match, table.name
        declared = {line.split()[0] for line in match.group(1).strip().splitlines() if line.strip()}
        declared |= set(re.findall(rf"ALTER TABLE ks\.{table.name} ADD IF NOT EXISTS (\w+) ", text))
        assert declared == set(table.columns), table.name


def test_new_tables_get_an_id_that_depends_on_keyspace_table_and_definition_only() -> None:
    def ids(keyspace: str) -> dict[str, str]:
        found = {}
        for m in migrations():
            for statement in m.statements(keyspace):
                table = re.search(r"CREATE TABLE IF NOT EXISTS \w+\.(\w+)", statement)
                if table:
                    found[table.group(1)] = re.findall(r"\bid = ([0-9a-f-]{36})$", statement)[0]
        return found

    first = ids("ks_a")
    assert first == ids("ks_a")  # two workers, the same ids
    assert set(first) >= {"observations_by_city_day", "latest_by_city", "aggregates_by_city"}
    assert len(set(first.values())) == len(first)
    assert not set(first.values()) & set(ids("ks_b").values())  # another keyspace, other ids


def test_the_id_joins_the_options_a_statement_has() -> None:
    plain = with_table_id("CREATE TABLE IF NOT EXISTS ks.t (a int PRIMARY KEY)")
    ordered = with_table_id("CREATE TABLE IF NOT EXISTS ks.t (a int, b int, PRIMARY KEY ((a), b)) WITH CLUSTERING "
                            "ORDER BY (b DESC)")  # fmt: skip
    assert re.fullmatch(r"CREATE TABLE IF NOT EXISTS ks\.t \(a int PRIMARY KEY\) WITH id = [0-9a-f-]{36}", plain)
    assert re.search(r"ORDER BY \(b DESC\) AND id = [0-9a-f-]{36}$", ordered)
    assert plain.split("id = ")[1] != ordered.split("id = ")[1]  # another definition, another table
    # a column named "with" inside the column list is not an option clause
    odd = with_table_id("CREATE TABLE IF NOT EXISTS ks.t (with_x int PRIMARY KEY)")
    assert odd.endswith(" WITH id = " + odd.split("id = ")[1])
    assert with_table_id("INSERT INTO ks.t (a) VALUES (1)") == "INSERT INTO ks.t (a) VALUES (1)"


class DisagreeingSession:
    """Stands in for a driver session on a cluster whose nodes never agree on the schema: the keyspace and
    every migration are already there."""

    def __init__(self, applied: dict[int, tuple[str, str]]) -> None:
        self.applied = applied
        self.cluster = self

    def refresh_schema_metadata(self, max_schema_agreement_wait: float | None = None) -> None:
        raise DriverException("Schema metadata was not refreshed. See log for details.")

    def execute(self, query: str, params: object = None) -> Any:
        if query.startswith("SELECT version"):
            return [SimpleNamespace(version=v, name=n, checksum=c, applied_at=None)
                    for v, (n, c) in self.applied.items()]  # fmt: skip
        return SimpleNamespace(one=lambda: ("found",))


def test_migrate_says_what_to_do_when_the_nodes_still_disagree_on_the_schema() -> None:
    session = DisagreeingSession({m.version: (m.name, m.checksum) for m in migrations()})
    with pytest.raises(SchemaError) as raised:
        migrate(session, load_settings(keyspace="ks_disagree"))  # type: ignore[arg-type]
    message = str(raised.value)
    assert "did not agree on the schema within 30 s" in message and "ks_disagree" in message
    assert "nodetool describecluster" in message
