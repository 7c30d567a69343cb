"""How far the sink packs small partitions: its settings, else the cluster's thresholds, never above failure."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from cassandra import OperationTimedOut, Unauthorized

from weatherstream.settings import load_settings
from weatherstream.sinks.writer import BatchLimits, batch_limits, read_thresholds

pytestmark = pytest.mark.usefixtures("no_weatherstream_env")

KIB = 1024
CASSANDRA_5_DEFAULTS = {
    "unlogged_batch_across_partitions_warn_threshold": "10",
    "batch_size_warn_threshold": "5KiB",
    "batch_size_fail_threshold": "50KiB",
}


def test_unset_settings_follow_the_clusters_warning_thresholds() -> None:
    settings = load_settings()
    assert batch_limits(settings, CASSANDRA_5_DEFAULTS) == BatchLimits(partitions=10, max_bytes=5 * KIB)
    raised = {**CASSANDRA_5_DEFAULTS, "unlogged_batch_across_partitions_warn_threshold": "50",
              "batch_size_warn_threshold": "32KiB"}  # fmt: skip
    assert batch_limits(settings, raised) == BatchLimits(partitions=50, max_bytes=32 * KIB)
    assert batch_limits(settings, {"batch_size_warn_threshold": "3000B"}).max_bytes == 3000
    # a warning threshold above the failure threshold (Cassandra's 50 KiB when not given): the failure's
    assert batch_limits(settings, {"batch_size_warn_threshold": "1MiB"}).max_bytes == 50 * KIB
    small = {"batch_size_warn_threshold": "900B", "batch_size_fail_threshold": "512B"}
    assert batch_limits(settings, small).max_bytes == 512


def test_cassandra_4_names_in_kib_are_read_too() -> None:
    found = {"batch_size_warn_threshold_in_kb": "12", "batch_size_fail_threshold_in_kb": "8"}
    assert batch_limits(load_settings(), found).max_bytes == 8 * KIB  # the failure threshold bounds the warning's


def test_unknown_or_unreadable_thresholds_fall_back_to_cassandras_defaults() -> None:
    settings = load_settings()
    assert batch_limits(settings, {}) == BatchLimits(partitions=10, max_bytes=5 * KIB)
    odd = {"unlogged_batch_across_partitions_warn_threshold": "many", "batch_size_warn_threshold": "5 parsecs",
           "batch_size_fail_threshold": "inf"}  # fmt: skip
    assert batch_limits(settings, odd) == BatchLimits(partitions=10, max_bytes=5 * KIB)
    for nonsense in ("nan", "-3", "0"):
        found = {"unlogged_batch_across_partitions_warn_threshold": nonsense, "batch_size_warn_threshold": nonsense}
        assert batch_limits(settings, found) == BatchLimits(partitions=10, max_bytes=5 * KIB)
    assert batch_limits(settings, {"unlogged_batch_across_partitions_warn_threshold": "1000000"}).partitions == 1000


def test_settings_win_but_never_above_the_failure_threshold(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(sink_batch_partitions=1, sink_batch_kib=40)
    assert batch_limits(settings, CASSANDRA_5_DEFAULTS) == BatchLimits(partitions=1, max_bytes=40 * KIB)
    too_big = load_settings(sink_batch_kib=100)
    with caplog.at_level(logging.WARNING, logger="weatherstream.sinks.writer"):
        assert batch_limits(too_big, CASSANDRA_5_DEFAULTS).max_bytes == 50 * KIB
        assert batch_limits(too_big, {}).max_bytes == 50 * KIB  # unknown: Cassandra's default failure threshold
    assert "batch_size_fail_threshold" in caplog.text


class Session:
    """What read_thresholds uses of a driver session: execute, answering rows or raising."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def execute(self, query: str, timeout: float) -> Any:
        assert "system_views.settings" in query
        if isinstance(self.answer, BaseException):
            raise self.answer
        return [SimpleNamespace(name=name, value=value) for name, value in self.answer]


def test_thresholds_are_read_without_nulls_and_a_refusal_says_what_to_do(caplog: pytest.LogCaptureFixture) -> None:
    rows = [("batch_size_warn_threshold", "32KiB"), ("batch_size_fail_threshold", None)]
    assert read_thresholds(Session(rows)) == {"batch_size_warn_threshold": "32KiB"}  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="weatherstream.sinks.writer"):
        refused = Unauthorized("User weatherstream has no SELECT permission on <table system_views.settings>")
        assert read_thresholds(Session(refused)) == {}  # type: ignore[arg-type]
    assert "grant the role SELECT on system_views.settings" in caplog.text
    assert "WEATHERSTREAM_SINK_BATCH_PARTITIONS" in caplog.text


def test_a_timeout_while_reading_them_fails_the_connection_to_be_tried_again() -> None:
    with pytest.raises(OperationTimedOut):
        read_thresholds(Session(OperationTimedOut("no answer")))  # type: ignore[arg-type]
