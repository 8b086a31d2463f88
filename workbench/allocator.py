"""The C allocator tuned for tensor work: freed blocks are kept for reuse, and handed back on request.

glibc's malloc serves every block over its mmap threshold (32 MiB at most) with a fresh `mmap` and
unmaps it on `free`, and trims the top of its heap whenever 128 KiB lie free there. Activations are
such blocks, allocated and freed by the hundred in every pass, and the kernel zero-fills each fresh
page on first touch. Measured on 2 cores (torch 2.13, glibc 2.36, an untrained ResNet-50 TSN at
8x224, three forwards of batch 8): 8.07 M page faults, 12.6 s of system time, 14.8 s wall; with
`mmap` off, the automatic trim off and one arena, 25 k page faults, 0.05 s system, 7.7 s wall. At
batch 1 a forward went from 349 to 284 ms, a ResNet-18 TSN at 8x112 from 35.9 to 33.8 ms.

The price: freed memory stays resident until someone asks for it back. `release_free_memory`
(glibc's `malloc_trim`, which also returns free pages inside the heap) does: the memory budget calls it
before it reads what the process holds, the app's work queue after every job. One arena makes the
threads that run analyses (the app's worker, the decode thread) reuse the same kept blocks instead of
each holding its own peak. Elsewhere than glibc both functions do nothing. `WORKBENCH_MALLOC=system`
in the environment leaves glibc's defaults alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["keep_freed_memory", "release_free_memory"]

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_NEVER_TRIM = 2**31 - 1  # mallopt takes an int: 2 GiB free at the top before glibc trims by itself

_LIBC: ctypes.CDLL | None | bool = None


def _libc() -> ctypes.CDLL | None:
    """glibc, or None where malloc is not glibc's (macOS, Windows, musl)."""
    global _LIBC
    if _LIBC is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _LIBC = libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else False
        except OSError:
            _LIBC = False
    return _LIBC or None


def keep_freed_memory() -> bool:
    """Have glibc keep freed blocks for reuse (no mmap per block, no automatic trim, one arena).

    True if the allocator was tuned; False where it is not glibc or `WORKBENCH_MALLOC=system` is set.
    Safe to call more than once; only allocations made afterwards follow the new settings.
    """
    libc = _libc()
    if libc is None or os.environ.get("WORKBENCH_MALLOC", "").lower() == "system":
        return False
    settings = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER_TRIM), (_M_ARENA_MAX, 1))
    return all(libc.mallopt(param, value) == 1 for param, value in settings)


def release_free_memory() -> None:
    """Give the C allocator's free memory back to the system (glibc's malloc_trim; elsewhere nothing)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
