"""glibc's allocator told to give big blocks back when they are freed (issue 16 item 5).

glibc serves a request of at least its mmap threshold (128 KiB at start) with a mapping of its
own, unmapped when freed. But every time it frees such a block it raises the threshold to that
block's size (up to 32 MiB): once the first Raft frame of a megabyte, snapshot piece or socket
buffer was freed, every later one came from the arenas, where freed memory stays resident
unless it lies at the top of a heap. On a node filled with 30k tasks, glibc held 50-86 MB free
in its arenas beside 67 MB in use (mallinfo2, orion/memory_trace.py), the half of what each
task seemed to cost that no live object accounted for.

``pin_malloc_thresholds`` sets the mmap threshold (which turns that adjustment off) and the
trim threshold (how much free memory the top of a heap may keep) to fixed values. Measured with
tools/bench/node_footprint (3 nodes, 30k unplaceable tasks, load 13-25): 1,943-2,011 bytes of
RSS per task without, 927-1,066 with both at 128 KiB, 901-1,008 with the mmap threshold at
1 MiB and the trim threshold at 128 KiB (kept: fewer blocks pay for a mapping of their own,
a few microseconds each plus its page faults). Linux with glibc only; elsewhere (musl has no
``mallopt``) it does nothing.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1 << 20  # a Raft frame or a snapshot piece of a megabyte and more
TRIM_THRESHOLD_BYTES = 128 << 10  # glibc's own starting value, kept instead of raised


def pin_malloc_thresholds(
    mmap_threshold: int = MMAP_THRESHOLD_BYTES, trim_threshold: int = TRIM_THRESHOLD_BYTES
) -> bool:
    """Pin glibc's mmap and trim thresholds (bytes) for the rest of the process; True when
    both took effect. Call once at start, before the node builds its state."""
    if mmap_threshold <= 0 or trim_threshold <= 0:
        raise ValueError(f"thresholds must be > 0 bytes, got {mmap_threshold} and {trim_threshold}")
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    pinned = mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1
    return mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1 and pinned
