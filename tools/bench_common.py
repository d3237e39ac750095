"""Shared pieces of the side-by-side benchmarks (tools/bench_*.py): percentiles, the machine
description printed next to every result, free ports, and where results are written.

The benchmark-only packages (pysyncobj, aiohttp) come from the ``bench`` extra of
pyproject.toml; Debian's ``etcd-server`` is installed with apt-get when missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
# ORION_BENCH_RESULTS redirects results (bench_all.py --quick does, so a smoke run never
# overwrites the figures of a full run).
RESULTS_DIR = Path(os.environ.get("ORION_BENCH_RESULTS") or ROOT / "benchmarks" / "results")
T = TypeVar("T")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from orion.testing.localcluster import free_ports, wait_for  # noqa: E402

__all__ = ["ROOT", "free_ports", "machine", "pct", "save_result", "summary", "wait_for"]


def pct(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100); 0 for no samples."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), int(q / 100.0 * len(ordered) + 0.999999)))
    return ordered[rank - 1]


def summary(samples: list[float], scale: float = 1.0, digits: int = 3) -> dict[str, float]:
    """p50/p90/p99/min/max/mean of ``samples`` times ``scale``."""
    if not samples:
        return {"n": 0}
    return {
        "n": len(samples),
        "p50": round(pct(samples, 50) * scale, digits),
        "p90": round(pct(samples, 90) * scale, digits),
        "p99": round(pct(samples, 99) * scale, digits),
        "min": round(min(samples) * scale, digits),
        "max": round(max(samples) * scale, digits),
        "mean": round(statistics.fmean(samples) * scale, digits),
    }


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> dict[str, Any]:
    """Cores, memory, kernel, date and load average: printed next to every result."""
    mem_kib = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "loadavg": loadavg(),
    }


def save_result(name: str, result: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` and print it."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "machine": machine(), **result}
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return path


def log(message: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')} load {loadavg()}] {message}\n")
    sys.stderr.flush()


def ensure_etcd() -> str:
    """The path of Debian's etcd 3.4 server, installing ``etcd-server`` with apt-get if missing."""
    found = shutil.which("etcd")
    if found:
        return found
    log("etcd not found: apt-get install etcd-server")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "etcd-server"], check=True, env=env, stdout=subprocess.DEVNULL
    )
    found = shutil.which("etcd")
    if not found:
        raise RuntimeError("etcd-server installed but no etcd binary on PATH")
    return found


def kill_process(process: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
    """Signal one process we started (its own session) and reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(10)


@contextlib.contextmanager
def timed() -> Iterator[Callable[[], float]]:
    start = time.perf_counter()
    yield lambda: time.perf_counter() - start


def wait_for_index(find: Callable[[], int | None], timeout: float, what: str) -> int:
    """Poll ``find`` until it returns an index (0 included, unlike ``wait_for``'s truthiness)."""

    def found() -> tuple[int] | None:
        index = find()
        return None if index is None else (index,)

    return wait_for(found, timeout, what=what)[0]
