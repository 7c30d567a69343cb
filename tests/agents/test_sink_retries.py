"""The sink's writes when Cassandra refuses them: which rows wait for a retry (logged with what to do) and which
become dead letters."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from cassandra import InvalidRequest

from agents.sink import BatchWriter
from weatherstream.settings import load_settings
from weatherstream.sinks import rows
from weatherstream.sinks.writer import RowsFailed, RowWrite


class RefusingWriter:
    """Refuses every write with ``refusal`` ``times`` times, then takes them."""

    def __init__(self, refusal: BaseException, times: int) -> None:
        self.refusal, self.times = refusal, times
        self.written: list[RowWrite] = []

    async def write(self, writes: list[RowWrite]) -> None:
        if self.times:
            self.times -= 1
            raise RowsFailed([(w, self.refusal) for w in writes])
        self.written += writes


def test_rows_a_node_behind_on_the_schema_refuses_wait_and_the_log_says_what_to_do(
    caplog: pytest.LogCaptureFixture,
) -> None:
    behind = InvalidRequest('Error from server: code=2200 [Invalid query] message="Undefined column name '
                            'pressure_tendency_3h_hpa in table ks.observations_by_city_day"')  # fmt: skip
    writer = RefusingWriter(behind, times=2)
    app = SimpleNamespace(should_stop=False)
    letters: list[Any] = []
    sink = BatchWriter(app, load_settings(), None, writer, {})  # type: ignore[arg-type]
    sink.dead_letter = lambda *args: letters.append(args)  # type: ignore[method-assign,assignment,return-value]
    writes = [RowWrite(rows.OBSERVATIONS, rows.row(rows.OBSERVATIONS, {"city_id": c, "observed_at": 0.0}), ref=c)
              for c in range(3)]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="agents.sink"):
        asyncio.run(sink.write_all(writes))
    assert writer.written == writes and not letters
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert all("nodetool describecluster" in w and "weatherstream db migrate" in w for w in warnings)
