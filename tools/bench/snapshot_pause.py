#!/usr/bin/env python3
"""How long taking a snapshot of N tasks holds up the Raft thread: the old way (encode and
write on the Raft thread) against the new one (a consistent source on the Raft thread, encode
and ``write_snapshot`` on a background thread), side by side in one run.

A "heartbeat" loop on the calling thread wakes every tick (50 ms, the default ``raft.tick``)
and records how late each wake-up is, while the snapshot is taken: the old way runs inside
the loop's thread (as the Raft actor did), the new way only takes the source there and
leaves the rest to a thread, which still competes for the interpreter lock. The worst
lateness is how much longer than a tick a heartbeat could be delayed.

Run: ``.venv/bin/python -m tools.bench.snapshot_pause [--tasks 100000] [--repeat 2]``
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from orion.fsm import commands
from orion.fsm.snapshot import encode_snapshot
from orion.fsm.state import ClusterState
from orion.model import Task
from orion.raft.duckdb_store import DuckDBStore
from orion.raft.types import Entry, HardState, Membership, Snapshot, SnapshotMeta
from tools.bench.common import save_result

TICK_S = 0.05


def build_state(tasks: int) -> ClusterState:
    state = ClusterState()
    for i in range(tasks):
        task = Task(
            id=f"task-{i:07d}",
            name=f"web-{i}",
            image="orion-busybox:latest",
            memory=64 << 20,
            cpu=0.1,
            env={"MODE": "prod", "INDEX": str(i)},
            node_selectors={"zone": "nowhere"},
            created_at=1.0 + i,
            updated_at=1.0 + i,
        )
        state.apply(i + 1, commands.encode_command(commands.SubmitTask(task=task, at=1.0 + i)))
    return state


def heartbeat_lateness(work_on_thread, work_in_background) -> tuple[float, float]:
    """Run ``work_on_thread`` at one tick of a tick loop (and start ``work_in_background`` in
    a thread there); returns (worst lateness of a tick in ms, seconds until all work ended)."""
    worst = 0.0
    background: threading.Thread | None = None
    began = time.perf_counter()
    next_tick = time.perf_counter() + TICK_S
    ticks_after = 0
    started = False
    while True:
        now = time.perf_counter()
        if now < next_tick:
            time.sleep(next_tick - now)
            continue
        worst = max(worst, now - next_tick)
        next_tick += TICK_S
        if not started:
            started = True
            work_on_thread()
            if work_in_background is not None:
                background = threading.Thread(target=work_in_background)
                background.start()
            continue
        if background is None or not background.is_alive():
            ticks_after += 1
            if ticks_after >= 3:
                break
    return worst * 1000, time.perf_counter() - began - 3 * TICK_S


def run(tasks: int, directory: Path) -> dict:
    state = build_state(tasks)
    meta = SnapshotMeta(tasks, 1, Membership(voters={"n1": "127.0.0.1:1"}))
    figures: dict[str, float] = {}

    old_store = DuckDBStore(directory / f"old-{tasks}-{time.monotonic_ns()}.duckdb")
    old_store.load()
    old_store.save(HardState(1, "n1", 0), [Entry(i, 1, 0, b"") for i in range(1, tasks + 1)])

    def old_way() -> None:
        old_store.save_snapshot(Snapshot(meta, state.snapshot()))

    worst, elapsed = heartbeat_lateness(old_way, None)
    figures.update(old_worst_late_ms=round(worst, 1), old_total_s=round(elapsed, 2))
    old_store.close()

    new_store = DuckDBStore(directory / f"new-{tasks}-{time.monotonic_ns()}.duckdb")
    new_store.load()
    new_store.save(HardState(1, "n1", 0), [Entry(i, 1, 0, b"") for i in range(1, tasks + 1)])
    on_thread: dict[str, float] = {}
    box: dict[str, object] = {}

    def take_source() -> None:
        t0 = time.perf_counter()
        box["source"] = state.snapshot_source()
        on_thread["source_ms"] = (time.perf_counter() - t0) * 1000

    def encode_and_write() -> None:
        snapshot = Snapshot(meta, encode_snapshot(box["source"]))  # type: ignore[arg-type]
        new_store.write_snapshot(snapshot)

    worst, elapsed = heartbeat_lateness(take_source, encode_and_write)
    figures.update(
        new_worst_late_ms=round(worst, 1),
        new_total_s=round(elapsed, 2),
        new_on_thread_ms=round(on_thread["source_ms"], 1),
    )
    new_store.close()
    return {"tasks": tasks, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="orion-snap-") as tmp:
        for _ in range(args.repeat):
            for tasks in args.tasks:
                row = run(tasks, Path(tmp))
                rows.append(row)
                print(row, flush=True)
    print(f"\n{'tasks':>8} {'old: worst late ms':>19} {'new: worst late ms':>19} {'new on-thread ms':>17}")
    for row in rows:
        print(
            f"{row['tasks']:>8} {row['old_worst_late_ms']:>19} {row['new_worst_late_ms']:>19} "
            f"{row['new_on_thread_ms']:>17}"
        )
    save_result("snapshot_pause", {"rows": rows})


if __name__ == "__main__":
    main()
