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
"""

from __future__ import annotations

import os
import signal
import tracemalloc
from pathlib import Path
from types import FrameType

ENV_VAR = "ORION_MEMORY_TRACE"
TOP_LINES = 60


def install() -> Path | None:
    """Start tracing and hook SIGUSR2 when ``ORION_MEMORY_TRACE`` names a directory; the
    report's path."""
    target = os.environ.get(ENV_VAR)
    if not target:
        return None
    path = Path(target) / f"memory-{os.getpid()}.txt"
    tracemalloc.start(1)

    def dump(_signum: int, _frame: FrameType | None) -> None:
        write_report(path)

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
