"""The C allocator for tensor work: glibc's malloc can keep freed blocks for reuse (opt-in), and hand
freed memory back on request.

glibc's malloc serves every block over its mmap threshold (32 MiB at most) with a fresh `mmap` and
unmaps it on `free`. Activations are such blocks, allocated and freed by the hundred in every pass, and
the kernel zero-fills each fresh page on first touch. Measured on 2 cores (torch 2.13, glibc 2.36, an
untrained ResNet-50 TSN at 8x224, three forwards of batch 8): 8.07 M page faults, 12.6 s of system
time, 14.8 s wall; with `mmap` off, the automatic trim off and one arena (`keep_freed_memory`), 25 k
page faults, 0.05 s system, 7.7 s wall. Issue 16's temporal-test of two releases on 13 real videos:
86.0 s -> 55.3 s at the default budget (peak 3.1 -> 3.9 GiB), 76.1 -> 56.4 s at 2 GiB.

It is opt-in (`WORKBENCH_MALLOC=keep` in the environment before `import workbench`, or a call to
`keep_freed_memory()` before the work) because the memory budget does not hold under it: blocks kept
for reuse fragment the heap, and glibc 2.36 cannot serve an aligned request (torch makes only those)
from a freed block of the same size once small blocks sit at its edges, so peaks vary from run to run.
Measured with `benchmarks/real_size.py` on a ResNet-50 GSM at 8x224, forwards planned at 1.8x their
traced bytes: Integrated Gradients peaked at 4.7 GiB under the 4 GiB default budget, input x gradient
at 4.2 GiB in one run where saliency (the same passes) took 3.2 GiB, Occlusion at 2.2 GiB under a 2 GiB
budget; temporal-test without the release after every batch reached 4.8 GiB. With glibc's defaults
every row stayed within its budget.

`release_free_memory` (glibc's `malloc_trim`, which also returns free pages inside the heap) runs
after every batch of `predict_logits` and every pass of an attribution method when blocks are kept
(`release_after_pass`), before the memory budget reads what the process holds, and in the app's work
queue after every job: a server runs each session in its own thread, and glibc keeps what a thread's
arena freed for that arena. Elsewhere than glibc these functions do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["keep_freed_memory", "maps_large_blocks", "release_after_pass", "release_free_memory",
           "tune_from_environment"]

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_NEVER_TRIM = 2**31 - 1  # mallopt takes an int: 2 GiB free at the top before glibc trims by itself
ENVIRONMENT = "WORKBENCH_MALLOC"  # "keep": keep_freed_memory() on import

_LIBC: ctypes.CDLL | None | bool = None
_KEPT = False  # keep_freed_memory() has tuned this process


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

    Faster passes, and peaks over the memory budget (see the module's doc). True if the allocator was
    tuned, False where it is not glibc. Only allocations made afterwards follow the new settings.
    """
    libc = _libc()
    if libc is None:
        return False
    global _KEPT
    settings = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER_TRIM), (_M_ARENA_MAX, 1))
    _KEPT = all(libc.mallopt(param, value) == 1 for param, value in settings)
    return _KEPT


def maps_large_blocks() -> bool:
    """Whether malloc maps each large block afresh (glibc at its defaults), so that a pass's big tensors
    cost page faults every time; False where it is not glibc or after `keep_freed_memory`."""
    return _libc() is not None and not _KEPT


def tune_from_environment() -> bool:
    """`keep_freed_memory()` if WORKBENCH_MALLOC=keep; True if it tuned the allocator."""
    return os.environ.get(ENVIRONMENT, "").strip().lower() == "keep" and keep_freed_memory()


def release_after_pass() -> None:
    """Between passes: hand freed memory back under `keep_freed_memory` (kept, it piles up pass after
    pass); at glibc's defaults nothing (a trim there would unmap the heap blocks the next pass reuses:
    the temporal-test runner at batch 1 fell from 0.92x to 0.82x of the bare forwards with one)."""
    if _KEPT:
        release_free_memory()


def release_free_memory() -> None:
    """Give the C allocator's free memory back to the system (glibc's malloc_trim; elsewhere nothing)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
