"""Keep freed tensor memory in the process heap while training on glibc.

glibc serves an allocation above its mmap threshold (128 KiB at start) with a fresh `mmap` and
returns it to the system on free. A training step allocates and frees the same few activation
and gradient buffers every step (a 512 x 256 float32 activation is 512 KiB), so each step maps
them anew and page-faults every page back in: on the engine benchmark's MLP that was 15-30% of
the CPU step. glibc raises the threshold by itself only after such a block is freed, and its
trim threshold then hands the heap's top back to the system at the next free, so the cycle
recurs.

`keep_freed_memory` sets both thresholds to the values glibc's own adaptive rule reaches after
freeing a 32 MiB block (its ceiling on 64-bit): blocks up to 32 MiB come from the heap, and the
heap keeps up to 64 MiB of free space at its top. It is process-wide and not undone (glibc has
no getter to restore from); the cost is that a process keeps up to that much freed memory
mapped, as any long-running PyTorch process on glibc comes to do anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

# mallopt parameter numbers (glibc malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # what glibc sets beside a raised mmap threshold


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; False where the C library is
    not glibc (musl, macOS: nothing to do) or refuses."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        gnu_get_libc_version = libc.gnu_get_libc_version  # absent outside glibc
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    gnu_get_libc_version.restype = ctypes.c_char_p
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    if not done:
        log.debug("glibc %s refused the heap thresholds", gnu_get_libc_version().decode())
    return done
