"""Hand memory the worker has freed back to the operating system.

Every batch allocates and frees a great deal (decoded records, rows, statements, producer buffers).
glibc's malloc keeps freed pages inside its heaps for reuse and returns only those at the very top of a
heap, so a worker's resident memory climbs to the high-water mark of everything that was ever live at
once and stays there. ``malloc_trim(0)`` gives back every whole free page, wherever it is. Measured on
the 100k-event, 200-city drain: one call took the worker from 393 to 285 MB resident.

Elsewhere than glibc (musl, macOS) there is no ``malloc_trim``: :class:`MemoryTrimmer` is then a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

logger = logging.getLogger(__name__)

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int | None:
    """This process's resident set size, or None where ``/proc`` does not tell it."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return None


class MemoryTrimmer:
    """Calls glibc's ``malloc_trim(0)``; :attr:`available` says whether this C library has it."""

    def __init__(self) -> None:
        self._trim = None
        # The C library is already loaded into the process: look the symbol up there (no ldconfig needed).
        for lib in (None, ctypes.util.find_library("c")):
            try:
                trim = getattr(ctypes.CDLL(lib), "malloc_trim", None)
            except OSError:
                trim = None
            if trim is not None:
                trim.argtypes = [ctypes.c_size_t]
                trim.restype = ctypes.c_int
                self._trim = trim
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
        before = resident_bytes()
        self._trim(0)
        after = resident_bytes()
        return max(0, before - after) if before is not None and after is not None else 0
