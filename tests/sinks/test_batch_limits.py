"""How far the sink packs small partitions: its settings, else the cluster's thresholds, never above failure."""

from __future__ import annotations

import logging

import pytest

from weatherstream.settings import load_settings
from weatherstream.sinks.writer import BatchLimits, batch_limits

CASSANDRA_5_DEFAULTS = {
    "unlogged_batch_across_partitions_warn_threshold": "10",
    "batch_size_warn_threshold": "5KiB",
    "batch_size_fail_threshold": "50KiB",
}


def test_unset_settings_follow_the_clusters_warning_thresholds() -> None:
    settings = load_settings()
    assert batch_limits(settings, CASSANDRA_5_DEFAULTS) == BatchLimits(partitions=10, kib=5)
    raised = {**CASSANDRA_5_DEFAULTS, "unlogged_batch_across_partitions_warn_threshold": "50",
              "batch_size_warn_threshold": "32KiB"}  # fmt: skip
    assert batch_limits(settings, raised) == BatchLimits(partitions=50, kib=32)
    assert batch_limits(settings, {"batch_size_warn_threshold": "1MiB"}).kib == 1024
    assert batch_limits(settings, {"batch_size_warn_threshold": "3000B"}).kib == 2  # whole KiB, rounded down
    assert batch_limits(settings, {"batch_size_warn_threshold": "100B"}).kib == 1


def test_cassandra_4_names_in_kib_are_read_too() -> None:
    found = {"batch_size_warn_threshold_in_kb": "12", "batch_size_fail_threshold_in_kb": "8"}
    assert batch_limits(load_settings(), found).kib == 8  # the failure threshold bounds the warning's


def test_unknown_or_unreadable_thresholds_fall_back_to_cassandras_defaults() -> None:
    settings = load_settings()
    assert batch_limits(settings, {}) == BatchLimits(partitions=10, kib=5)
    odd = {"unlogged_batch_across_partitions_warn_threshold": "many", "batch_size_warn_threshold": "5 parsecs"}
    assert batch_limits(settings, odd) == BatchLimits(partitions=10, kib=5)
    assert batch_limits(settings, {"unlogged_batch_across_partitions_warn_threshold": "1000000"}).partitions == 1000


def test_settings_win_but_never_above_the_failure_threshold(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(sink_batch_partitions=1, sink_batch_kib=40)
    assert batch_limits(settings, CASSANDRA_5_DEFAULTS) == BatchLimits(partitions=1, kib=40)
    too_big = load_settings(sink_batch_kib=100)
    with caplog.at_level(logging.WARNING, logger="weatherstream.sinks.writer"):
        assert batch_limits(too_big, CASSANDRA_5_DEFAULTS).kib == 50
    assert "batch_size_fail_threshold" in caplog.text
