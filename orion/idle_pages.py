"""Pages an idle ``orion node`` holds but no longer uses, given back (issue 16 item 5).

``IdlePages.release_when_due()``, on the node's main thread, releases two kinds every ``RELEASE_INTERVAL_S``:

- Library pages. Most of an idle node's RSS was library code and read-only data it touched
  once: 37 of 93 MB DuckDB's (its catalog of ~3,300 functions, built at ``connect``, and the
  first queries), the rest the interpreter's, OpenSSL's and others' start-up paths. Those pages
  stay in the kernel's page cache (shared with every process that maps the file);
  ``madvise(MADV_DONTNEED)`` only removes them from this process's page tables, and the next
  use maps them back from the cache (a minor fault, no I/O). Done periodically, a node's RSS
  holds what it used lately: ~50 MB at idle, DuckDB's write path coming back while it writes.
  This changes what RSS counts, not the node's private memory: USS stays the same. Only
  mappings that cannot hold data of this process are released: file-backed, not writable, and
  without a single copied-on-write page (``Anonymous: 0`` in /proc/self/smaps; a library's
  relocated read-only data has such pages, and dropping them would undo the relocations).
  A mapping is vetted once, when first seen: a breakpoint that a debugger (gdb) writes into
  its code afterwards is dropped with the page at the next release. Cost: ~10 ms of CPU for
  the first release, ~1.3 ms for each later one.
- glibc's free pages (``malloc_trim(0)``): what its arenas keep of freed memory, ~0.6 MB on an
  idle node, 0.5 ms per call.

Linux only; elsewhere, or without /proc, it does nothing.
"""

from __future__ import annotations

import ctypes
import mmap
import sys
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

RELEASE_INTERVAL_S = 30.0


class Mapping(NamedTuple):
    start: int
    end: int
    offset: int
    inode: int


def read_only_file_mappings(maps_lines: Iterable[str]) -> list[Mapping]:
    """File-backed mappings without write permission, from /proc/PID/maps lines."""
    return [mapping for mapping in map(_read_only_file_mapping, maps_lines) if mapping is not None]


def pristine_mappings(smaps_lines: Iterable[str]) -> tuple[set[Mapping], set[Mapping]]:
    """(read-only file mappings without copied-on-write pages, those with some), from
    /proc/PID/smaps lines. Line by line: the whole text (~300 KB) read at once grew the heap
    by ~1 MB that an idle node kept."""
    clean: set[Mapping] = set()
    written: set[Mapping] = set()
    current: Mapping | None = None
    for line in smaps_lines:
        if line.startswith("Anonymous:"):
            if current is not None:
                (written if int(line.split()[1]) else clean).add(current)
                current = None
        elif not line.partition(" ")[0].endswith(":"):  # a mapping's header line
            current = _read_only_file_mapping(line)
    return clean, written


def _read_only_file_mapping(line: str) -> Mapping | None:
    fields = line.split(maxsplit=5)
    if len(fields) < 6 or not fields[5].startswith("/") or "w" in fields[1] or fields[4] == "0":
        return None
    start, _, end = fields[0].partition("-")
    return Mapping(int(start, 16), int(end, 16), int(fields[2], 16), int(fields[4]))


class IdlePages:
    """Releases pristine library pages and glibc's free pages at most every ``interval`` seconds."""

    def __init__(
        self,
        interval: float = RELEASE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        proc: str = "/proc/self",
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._proc = proc
        self._next = clock() + interval
        self._clean: set[Mapping] = set()
        self._written: set[Mapping] = set()
        self._madvise = _madvise()
        self._malloc_trim = _malloc_trim()
        self.enabled = self._madvise is not None

    def release_when_due(self) -> int:
        """``release()`` and glibc's ``malloc_trim`` if the interval has passed since the last;
        the bytes of library mappings released."""
        now = self._clock()
        if not self.enabled or now < self._next:
            return 0
        self._next = now + self._interval
        released = self.release()
        if self._malloc_trim is not None:
            self._malloc_trim(0)
        return released

    def release(self) -> int:
        """Drop this process's mappings of pristine library pages; the bytes of address space
        released (resident or not). /proc/self/smaps (slow: it walks the page tables) is read
        only when a mapping not seen before appears; /proc/self/maps otherwise."""
        if self._madvise is None:
            return 0
        try:
            with open(f"{self._proc}/maps") as maps:
                mappings = read_only_file_mappings(maps)
            if any(m not in self._clean and m not in self._written for m in mappings):
                with open(f"{self._proc}/smaps") as smaps:
                    self._clean, self._written = pristine_mappings(smaps)
        except OSError:
            self.enabled = False
            return 0
        released = 0
        for mapping in mappings:
            if mapping in self._clean and self._madvise(mapping.start, mapping.end - mapping.start) == 0:
                released += mapping.end - mapping.start
        return released


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        function = ctypes.CDLL(None).malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


def _madvise() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    function.restype = ctypes.c_int

    def dont_need(start: int, length: int) -> int:
        return int(function(start, length, mmap.MADV_DONTNEED))

    return dont_need
