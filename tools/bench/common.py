"""What every benchmark shares: the machine description saved next to each result, where
results are written, a timestamped progress log, and polling for a leader's index.

Statistics are tools/stats.py; the etcd and PySyncObj clusters are tools/baselines/.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orion.testing.localcluster import wait_for

ROOT = Path(__file__).resolve().parents[2]
# ORION_BENCH_RESULTS redirects results (``python -m tools.bench --quick`` does, so a smoke run
# never overwrites the figures of a full run).
RESULTS_DIR = Path(os.environ.get("ORION_BENCH_RESULTS") or ROOT / "benchmarks" / "results")


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


def wait_for_index(find: Callable[[], int | None], timeout: float, what: str) -> int:
    """Poll ``find`` until it returns an index (0 included, unlike ``wait_for``'s truthiness)."""

    def found() -> tuple[int] | None:
        index = find()
        return None if index is None else (index,)

    return wait_for(found, timeout, what=what)[0]


# Every loadgen worker connects from 127.0.0.1, so the per-address client rate limit (1,000
# requests/s, 1 s burst: a defence etcd does not have) capped Orion near 1,125 writes/s over an
# 8 s point. The benchmark measures the write path, so it runs with the limit off, as said in
# BENCHMARKS.md.
WRITE_BENCH_SETTINGS = {"security": {"client_rate_limit": 0}}
