"""The shipped migrations: numbered without gaps, idempotent statements, one table per query."""

import re

from weatherstream.sinks import rows
from weatherstream.sinks.schema import migrations


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
        assert declared == set(table.columns), table.name
