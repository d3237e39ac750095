"""Debug only: where a running node's memory went, by source line.

With ``ORION_MEMORY_TRACE=/some/dir`` in its environment a node starts ``tracemalloc`` before
it builds anything, and on ``SIGUSR2`` writes the allocations still alive, grouped by the
line that made them, largest first, to ``/some/dir/memory-<pid>.txt`` (replaced on each
signal; one directory serves every node of a local cluster), after a summary of what Python
does not see: the process's RSS split into file-backed and anonymous pages, and glibc's
allocator (mallinfo2: bytes in use, and bytes free in its arenas). Native memory that no live Python
object accounts for (DuckDB's allocator, a library's caches) is the RSS those leave over. tracemalloc slows
the node and roughly doubles its memory: never set it in production. Without the variable this
module does nothing.

``ORION_MEMORY_STATS=/some/dir`` alone (no tracing, so the node's memory is what it would be)
makes ``SIGUSR2`` write ``/some/dir/native-<pid>.txt``: the same summary, then glibc's arenas
one by one (``malloc_info``: which threads' arenas hold free memory) and Python's small-object
allocator (``sys._debugmallocstats``: arenas, bytes in used and in free blocks). With both
variables set, one signal writes both files.
"""

from __future__ import annotations

import os
import signal
import tracemalloc
from pathlib import Path
from types import FrameType

ENV_VAR = "ORION_MEMORY_TRACE"
STATS_ENV_VAR = "ORION_MEMORY_STATS"
TOP_LINES = 60


def install() -> Path | None:
    """Start tracing when ``ORION_MEMORY_TRACE`` names a directory, and hook SIGUSR2 when it or
    ``ORION_MEMORY_STATS`` does; the tracing report's path (None when not tracing)."""
    target = os.environ.get(ENV_VAR)
    stats_target = os.environ.get(STATS_ENV_VAR)
    if not target and not stats_target:
        return None
    path = Path(target) / f"memory-{os.getpid()}.txt" if target else None
    stats_path = Path(stats_target) / f"native-{os.getpid()}.txt" if stats_target else None
    if path is not None:
        tracemalloc.start(1)

    def dump(_signum: int, _frame: FrameType | None) -> None:
        if path is not None:
            write_report(path)
        if stats_path is not None:
            write_native_report(stats_path)

    signal.signal(signal.SIGUSR2, dump)
    return path


def write_report(path: Path, top: int = TOP_LINES) -> None:
    """The live allocations by line, largest first, with the total, written to ``path``."""
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        ]
    )
    stats = snapshot.statistics("lineno")
    total = sum(stat.size for stat in stats)
    lines = [f"total {total} bytes in {sum(stat.count for stat in stats)} blocks", *native_summary()]
    lines += [f"{stat.size:>12} {stat.count:>9} {stat.traceback[0]}" for stat in stats[:top]]
    staging = path.with_name(path.name + ".tmp")
    staging.write_text("\n".join(lines) + "\n")
    staging.replace(path)


def write_native_report(path: Path) -> None:
    """What the process's memory is made of without tracing it, written to ``path``: the
    summary lines, glibc's arenas (malloc_info's XML) and Python's small-object allocator."""
    lines = [*native_summary(), "", "glibc arenas (malloc_info):", *_malloc_info(), ""]
    lines += ["python small objects (sys._debugmallocstats, summary):", *_pymalloc_summary()]
    staging = path.with_name(path.name + ".tmp")
    staging.write_text("\n".join(lines) + "\n")
    staging.replace(path)


def native_figures(report: str) -> dict[str, float]:
    """The totals of a ``write_native_report`` text, in MiB: the process's anonymous and
    file-backed RSS, glibc's bytes in use and free in its arenas, and Python's small-object
    allocator (its arenas, the bytes in live blocks, and the pools no block uses)."""
    mib = 1 << 20
    figures: dict[str, float] = {}
    for line in report.splitlines():
        words = line.replace(",", "").split()
        if line.startswith("process: "):
            fields = dict(zip(words[1::3], words[2::3], strict=False))
            for key in ("RssAnon", "RssFile"):
                if fields.get(key, "").isdigit():
                    figures[key.lower() + "_mib"] = round(int(fields[key]) / 1024, 1)
        elif line.startswith("glibc malloc: "):
            figures["glibc_in_use_mib"] = round(int(words[7]) / mib, 1)
            figures["glibc_free_mib"] = round(int(words[10]) / mib, 1)
        elif line.startswith("# arenas allocated current"):
            figures["pymalloc_arenas_mib"] = int(words[-1])  # arenas of 1 MiB (Python 3.10+)
        elif line.startswith("# bytes in allocated blocks"):
            figures["pymalloc_live_mib"] = round(int(words[-1]) / mib, 1)
        elif "unused pools" in line:
            figures["pymalloc_unused_pools_mib"] = round(int(words[-1]) / mib, 1)
    return figures


def _malloc_info() -> list[str]:
    """glibc's ``malloc_info(0, file)`` lines, one ``<heap nr=...>`` element per arena, without
    the free chunks' sizes."""
    import ctypes
    import tempfile

    try:
        libc = ctypes.CDLL(None)
        fopen, fclose, malloc_info = libc.fopen, libc.fclose, libc.malloc_info
    except (OSError, AttributeError):
        return ["(not glibc)"]
    fopen.restype = ctypes.c_void_p
    fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    fclose.argtypes = [ctypes.c_void_p]
    malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    with tempfile.NamedTemporaryFile("r", suffix=".xml") as target:
        stream = fopen(target.name.encode(), b"w")
        if not stream:
            return ["(fopen failed)"]
        malloc_info(0, stream)
        fclose(stream)
        # Per arena: free chunks by size (left out: long), free totals, pages from the system.
        return [
            line for line in target.read().splitlines() if not line.lstrip().startswith(("<size", "</size"))
        ]


def _pymalloc_summary() -> list[str]:
    """The totals of ``sys._debugmallocstats()``, which prints to the C stderr: fd 2 is pointed
    at a file while it runs (another thread's writes to stderr meanwhile land there too)."""
    import sys
    import tempfile

    with tempfile.TemporaryFile("w+") as target:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(target.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        target.seek(0)
        text = target.read().splitlines()
    return [line for line in text if line.startswith(("#", "Total")) or "unused pools" in line]


def native_summary() -> list[str]:
    """Lines on the process's pages and glibc's allocator, for the report's head."""
    status: dict[str, str] = {}
    with open("/proc/self/status") as source:
        for line in source:
            key, _, value = line.partition(":")
            status[key] = value.strip()
    pages = ", ".join(f"{key} {status.get(key, '?')}" for key in ("VmRSS", "RssAnon", "RssFile"))
    lines = [f"process: {pages}"]
    info = _mallinfo2()
    if info is not None:
        lines.append(
            f"glibc malloc: {info['arena'] + info['hblkhd']} bytes from the system, "
            f"{info['uordblks'] + info['hblkhd']} in use, {info['fordblks']} free in its arenas "
            "(resident or not: malloc_trim gives the pages back, not the address space)"
        )
    return lines


_MALLINFO2_FIELDS = (
    *("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks"),
    *("uordblks", "fordblks", "keepcost"),
)


def _mallinfo2() -> dict[str, int] | None:
    """glibc's ``mallinfo2()`` (2.33+), or None elsewhere."""
    import ctypes  # debug only: not loaded by a node that does not trace

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2_FIELDS]

    try:
        function = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    function.restype = MallInfo2
    info = function()
    return {name: getattr(info, name) for name in _MALLINFO2_FIELDS}
