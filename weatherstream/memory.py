"""Hand memory the worker has freed back to the operating system, and keep garbage collection cheap.

Every batch allocates and frees a great deal (decoded records, rows, statements, producer buffers).
glibc's malloc keeps freed pages inside its heaps for reuse and returns only those at the very top of a
heap, so a worker's resident memory climbs to the high-water mark of everything that was ever live at
once and stays there. ``malloc_trim(0)`` gives back every whole free page, wherever it is. Measured on
the 100k-event, 200-city drain: one call took the worker from 393 to 285 MB resident.

Elsewhere than glibc (musl, macOS) there is no ``malloc_trim``: :class:`MemoryTrimmer` is then a no-op.

Garbage collection (:func:`tune_garbage_collector`). A worker with many stations keeps thousands of decoded
records and slices in its caches, a few hundred thousand container objects, and replaces them all the time.
Python's collector then runs a full collection (every object) each time a quarter of that number has
survived two young collections: at 10,000 stations about once per 1,000 events, 0.25 s each, a sixth of
the worker's CPU. Tuned, young collections are rarer and larger (most of a batch's objects are gone by
then), full ones run on a timer, and what exists once the worker is set up is never scanned again.

A young collection starts once the count of container objects alive has grown by ``gc_young_objects`` since
the last one (objects freed count down): a worker's steady state rarely grows that much, while every decoded
record in the caches does. At 50,000 a worker with 100,000 stations made 62 young collections in 200,000
events, 27 ms each (1.7 s, 8 µs per event) and one with 50 stations 22 (0.6 s); at 250,000 they made 2 and
none. A full collection then found a few hundred to 3,000 objects of cyclic garbage: the pipeline makes little.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from weatherstream.stack.process import process_rss_bytes

logger = logging.getLogger(__name__)


def _c_libraries() -> Iterator[Any]:
    """The C library the process has loaded; failing that, the one ``ldconfig`` names (a subprocess)."""
    yield ctypes.CDLL(None)
    name = ctypes.util.find_library("c")
    if name:
        yield ctypes.CDLL(name)


class MemoryTrimmer:
    """Calls glibc's ``malloc_trim(0)``; :attr:`available` says whether this C library has it."""

    def __init__(self) -> None:
        self._trim = None
        try:
            for lib in _c_libraries():
                trim = getattr(lib, "malloc_trim", None)
                if trim is not None:
                    trim.argtypes = [ctypes.c_size_t]
                    trim.restype = ctypes.c_int
                    self._trim = trim
                    return
        except OSError:
            return

    @property
    def available(self) -> bool:
        return self._trim is not None

    def __call__(self) -> int:
        """Trim now; returns about how many resident bytes that released (0 when nothing or unknown).

        The figure is the process's change in resident memory, which other threads may move meanwhile.
        Safe from any thread: malloc_trim locks each heap in turn, and ctypes lets go of the GIL meanwhile
        (a thread that allocates from the heap being trimmed waits for it).
        """
        if self._trim is None:
            return 0
        before = process_rss_bytes(os.getpid())
        self._trim(0)
        after = process_rss_bytes(os.getpid())
        return max(0, before - after) if before is not None and after is not None else 0


NEVER = 2**31 - 1  # a generation threshold that is never reached


def tune_garbage_collector(young_objects: int, full_by_timer: bool) -> None:
    """Collect the young generation every ``young_objects`` new containers; with ``full_by_timer`` leave full
    collections to :func:`collect_everything`. Objects alive now (modules, classes, the app) are frozen: no
    collection scans them again."""
    gc.freeze()
    gc.set_threshold(young_objects, 20, NEVER if full_by_timer else 10)


def collect_everything(*, if_allocating: bool = False) -> float | None:
    """A full collection; returns the seconds it took. ``if_allocating``: only if full collections were left to
    this timer (:func:`tune_garbage_collector`) and older objects may have become garbage since the last one (a
    middle-generation collection ran since), else None: an idle or untuned process skips it."""
    if if_allocating and (gc.get_threshold()[2] != NEVER or gc.get_count()[2] == 0):
        return None
    started = time.perf_counter()
    gc.collect()
    return time.perf_counter() - started
