"""Keep freed memory for reuse: the one process-wide setting hwlib makes, on import, and why.

A training step of the kit's networks allocates and frees the same large temporaries every call (the
im2col matrix of a convolution is 5-10 MB, its gradient as much). With glibc's default settings,
``free`` gives such blocks back to the kernel (an mmap'd block is unmapped; the top of the heap is
trimmed once more than about twice the mmap threshold is free), and the next call's ``malloc`` gets
fresh pages that the kernel must fault in and zero, one 4 KiB page at a time: measured on the kit's
ConvNet, a third of a training step went to page faults in the kernel, and hwlib ran 1.8x slower
than PyTorch (whose CPU allocator keeps its blocks) instead of on par.

So on import hwlib asks glibc (``mallopt``) to serve blocks up to 32 MiB (glibc's maximum) from its
heap and to keep up to 1 GiB of freed heap instead of trimming it: the second and later calls reuse
the first call's pages. Results are bit-for-bit the same; what changes is that the process keeps
its peak working set (at most 1 GiB more than it uses, far less for the kit's networks) until it
exits. Other C libraries (macOS, Windows, musl) are left alone: :func:`keep_freed_memory` returns
False there, as it does when glibc refuses a setting. No environment variable is needed or read.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["keep_freed_memory", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

# mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 1024 * 1024    # glibc refuses more than HEAP_MAX_SIZE / 2 = 32 MiB on 64-bit
TRIM_THRESHOLD = 1024 * 1024 * 1024

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the two settings once per process; True when glibc took both."""
    global _applied
    if _applied is None:
        _applied = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                libc.gnu_get_libc_version.restype = ctypes.c_char_p
                libc.gnu_get_libc_version()     # AttributeError on a C library that is not glibc
                _applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) & bool(
                    libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
            except (OSError, AttributeError):
                _applied = False
    return _applied
