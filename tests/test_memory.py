"""The worker's memory: glibc hands freed heap pages back (the timer does it off the event loop), and the garbage
collector, tuned, leaves full collections to a timer."""

from __future__ import annotations

import asyncio
import os
import platform
import weakref

import pytest
from prometheus_client import REGISTRY

from weatherstream.app import create_app
from weatherstream.memory import MemoryTrimmer
from weatherstream.settings import SettingsError, load_settings
from weatherstream.stack.process import process_rss_bytes

GLIBC = platform.libc_ver()[0] == "glibc"


def test_trim_returns_freed_pages_that_free_alone_keeps() -> None:
    trimmer = MemoryTrimmer()
    if not GLIBC:  # no malloc_trim there: the trimmer is a documented no-op
        assert not trimmer.available
        assert trimmer() == 0
        return
    assert trimmer.available
    # 60,000 blocks of 1 KiB (above pymalloc's 512 bytes: they come from malloc), then one block after them
    # so that freeing the rest leaves a hole below the heap's top, which free() never returns by itself.
    blocks = [bytes(1024) + bytes([i % 251]) for i in range(60_000)]
    pin = bytes(1024) + b"pin"
    before_free = process_rss_bytes(os.getpid())
    assert before_free is not None
    del blocks
    kept = process_rss_bytes(os.getpid())
    released = trimmer()
    after = process_rss_bytes(os.getpid())
    assert pin  # still alive: the hole stays a hole until the trim
    assert kept is not None and after is not None
    assert released >= 30 * 1024 * 1024, (before_free, kept, after, released)
    assert kept - after >= 30 * 1024 * 1024


def test_trim_interval_below_a_second_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SettingsError, match="at least 1 second"):
        load_settings(data_dir=tmp_path, memory_trim_interval_s=0.01)


def test_timer_follows_the_setting(tmp_path) -> None:  # type: ignore[no-untyped-def]
    off = create_app(load_settings(store="memory://", namespace="unit", data_dir=tmp_path, memory_trim_interval_s=0))
    assert off.trim_memory is None
    assert not [t for t in off._app_tasks if t.__name__ == "trim_memory"]
    on = create_app(load_settings(store="memory://", namespace="unit2", data_dir=tmp_path, memory_trim_interval_s=10))
    if not MemoryTrimmer().available:
        assert on.trim_memory is None
        return
    assert on.trim_memory is not None
    assert [t.__name__ for t in on._app_tasks].count("trim_memory") == 1  # the timer is among the app's tasks
    counted = REGISTRY.get_sample_value("weatherstream_memory_released_bytes_total") or 0.0
    blocks = [bytes(2048) + bytes([i % 251]) for i in range(20_000)]
    pin = bytes(2048) + b"pin"
    del blocks
    asyncio.run(on.trim_memory())
    assert pin
    released = (REGISTRY.get_sample_value("weatherstream_memory_released_bytes_total") or 0.0) - counted
    assert released >= 10 * 1024 * 1024


def test_tuned_collector_leaves_full_collections_to_the_timer() -> None:
    import gc

    from weatherstream.memory import NEVER, collect_everything, tune_garbage_collector

    before = gc.get_threshold()
    try:
        tune_garbage_collector(50_000, full_by_timer=True)
        assert gc.get_threshold() == (50_000, 20, NEVER)
        assert gc.get_freeze_count() > 0  # what existed at set-up is no longer scanned

        class Cycle:
            pass

        cycle = Cycle()
        cycle.me = cycle  # type: ignore[attr-defined]
        ref = weakref.ref(cycle)
        del cycle
        assert ref() is not None  # a cycle: refcounting alone never frees it
        took = collect_everything()
        assert took is not None and took >= 0.0
        assert ref() is None
        assert gc.get_count()[2] == 0 and collect_everything(if_allocating=True) is None  # nothing new: skipped
        tune_garbage_collector(1000, full_by_timer=False)
        assert gc.get_threshold() == (1000, 20, 10)
        gc.collect(1)  # a middle-generation collection: older objects may be garbage now
        assert collect_everything(if_allocating=True) is None  # Python's own trigger does full collections
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
