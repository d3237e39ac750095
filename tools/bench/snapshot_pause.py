#!/usr/bin/env python3
"""How late heartbeats get while a node snapshots N tasks: the old way (encode and write on the
Raft thread) against the new one (a consistent source on the Raft thread, ``encode_snapshot``
and ``write_snapshot`` on a background thread, as ``RaftActor.start_snapshot`` does).

It runs the node's tick path in miniature: a ticker thread schedules a tick every ``raft.tick``
(50 ms by default, read from the config defaults) and hands it to a "Raft" thread through a
queue, as the node's Ticker tells the Raft actor; the Raft thread records how late each tick
is handled. At the first tick the Raft thread takes the snapshot: the old way it encodes and
writes right there, the new way it only takes the source and starts the background thread,
which shares the interpreter lock with both threads. A heartbeat goes out every
``heartbeat_ticks`` ticks, so a tick handled more than one tick late is a heartbeat delayed by
more than one tick. Every tick from the snapshot's start to three ticks after its end counts.

Run: ``.venv/bin/python -m tools.bench.snapshot_pause [--tasks 100000] [--repeat 5] [--way new]``
"""

from __future__ import annotations

import argparse
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from orion.config import RaftSection
from orion.fsm import commands
from orion.fsm.snapshot import encode_snapshot
from orion.fsm.state import ClusterState
from orion.model import Task
from orion.raft.duckdb_store import DuckDBStore
from orion.raft.pacing import Pacer
from orion.raft.types import Entry, HardState, Membership, Snapshot, SnapshotMeta
from orion.units import parse_duration
from tools.bench.common import save_result
from tools.stats import p99

TICK_S = parse_duration(RaftSection().tick, "raft.tick")
TICKS_AFTER = 3


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


def tick_lateness(
    on_raft_thread: Callable[[], None], in_background: Callable[[], None] | None
) -> list[tuple[float, float]]:
    """(when it was due, seconds late) for each tick, from the tick that runs
    ``on_raft_thread`` (and starts ``in_background`` in a thread) to ``TICKS_AFTER`` ticks after
    all the work ended."""
    ticks: queue.SimpleQueue[float] = queue.SimpleQueue()
    stop = threading.Event()

    def ticker() -> None:
        due = time.perf_counter() + TICK_S
        while not stop.is_set():
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            ticks.put(due)
            # A late tick moves the schedule (the node's Ticker does the same): the next one is
            # due a tick after this one went out, so one stall counts once.
            due = max(due + TICK_S, time.perf_counter())

    ticker_thread = threading.Thread(target=ticker, name="ticker", daemon=True)
    ticker_thread.start()
    lateness: list[tuple[float, float]] = []
    background: threading.Thread | None = None
    started = False
    ticks_after = 0
    while ticks_after < TICKS_AFTER:
        due = ticks.get()
        lateness.append((due, time.perf_counter() - due))
        if not started:
            started = True
            on_raft_thread()
            if in_background is not None:
                background = threading.Thread(target=in_background, name="snapshotter")
                background.start()
        elif background is None or not background.is_alive():
            ticks_after += 1
    stop.set()
    ticker_thread.join()
    return lateness


def figures(prefix: str, lateness: list[tuple[float, float]], phases: list[tuple[float, str]]) -> dict:
    """Worst, p99 and count over a tick of the lateness; ``phases`` (start time, name) tell
    in which step of the snapshot the worst tick was due."""
    late_ms = [late * 1000 for _, late in lateness]
    worst_due = max(lateness, key=lambda pair: pair[1])[0]
    worst_in = "after" if phases else "on the Raft thread"
    for start, name in phases:
        if worst_due >= start:
            worst_in = name
    return {
        f"{prefix}_worst_during": worst_in,
        f"{prefix}_ticks": len(late_ms),
        f"{prefix}_worst_late_ms": round(max(late_ms), 1),
        f"{prefix}_p99_late_ms": round(p99(late_ms), 1),
        f"{prefix}_over_a_tick": sum(1 for ms in late_ms if ms > TICK_S * 1000),
    }


def fresh_store(path: Path, tasks: int) -> DuckDBStore:
    store = DuckDBStore(path)
    store.load()
    store.save(HardState(1, "n1", 0), [Entry(i, 1, 0, b"") for i in range(1, tasks + 1)])
    return store


def run(tasks: int, directory: Path, ways: list[str], paced: bool) -> dict:
    state = build_state(tasks)
    meta = SnapshotMeta(tasks, 1, Membership(voters={"n1": "127.0.0.1:1"}))
    row: dict = {"tasks": tasks, "loadavg_1m": round(os.getloadavg()[0], 2)}

    if "old" in ways:
        old_store = fresh_store(directory / f"old-{tasks}-{time.monotonic_ns()}.duckdb", tasks)

        def old_way() -> None:
            old_store.save_snapshot(Snapshot(meta, state.snapshot()))

        began = time.perf_counter()
        row.update(figures("old", tick_lateness(old_way, None), []))
        row["old_total_s"] = round(time.perf_counter() - began, 2)
        old_store.close()

    if "new" in ways:
        new_store = fresh_store(directory / f"new-{tasks}-{time.monotonic_ns()}.duckdb", tasks)
        box: dict[str, object] = {}
        phases: list[tuple[float, str]] = []

        def take_source() -> None:
            t0 = time.perf_counter()
            box["source"] = state.snapshot_source()
            row["new_on_thread_ms"] = round((time.perf_counter() - t0) * 1000, 1)

        def encode_and_write() -> None:
            t0 = time.perf_counter()
            phases.append((t0, "encode"))
            pace = Pacer() if paced else None  # as RaftActor.start_snapshot does
            snapshot = Snapshot(meta, encode_snapshot(box["source"], pace=pace))  # type: ignore[arg-type]
            t1 = time.perf_counter()
            phases.append((t1, "write"))
            new_store.write_snapshot(snapshot)
            t2 = time.perf_counter()
            phases.append((t2, "after"))
            row["new_encode_s"] = round(t1 - t0, 2)
            row["new_write_s"] = round(t2 - t1, 2)
            row["snapshot_mb"] = round(len(snapshot.data) / 1e6, 1)

        failures: list[BaseException] = []

        def in_background() -> None:
            try:
                encode_and_write()
            except BaseException as exc:
                failures.append(exc)

        lateness = tick_lateness(take_source, in_background)
        if failures:
            raise RuntimeError("the background snapshot failed") from failures[0]
        row.update(figures("new", lateness, phases))
        new_store.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--way", choices=["old", "new", "both"], default="both")
    parser.add_argument(
        "--unpaced-encode", action="store_true", help="encode without a Pacer (write_snapshot still paces)"
    )
    args = parser.parse_args()
    ways = ["old", "new"] if args.way == "both" else [args.way]
    rows = []
    with tempfile.TemporaryDirectory(prefix="orion-snap-") as tmp:
        for _ in range(args.repeat):
            for tasks in args.tasks:
                row = run(tasks, Path(tmp), ways, not args.unpaced_encode)
                rows.append(row)
                print(row, flush=True)
    print(f"\ntick {TICK_S * 1000:.0f} ms; lateness of each tick handled while the snapshot was taken")
    print(f"{'tasks':>8} {'load':>5} " + " ".join(f"{w + ': worst / p99 ms':>24} {'>tick':>5}" for w in ways))
    for row in rows:
        cells = [
            f"{row[f'{w}_worst_late_ms']:>12} / {row[f'{w}_p99_late_ms']:>9} {row[f'{w}_over_a_tick']:>5}"
            for w in ways
        ]
        print(f"{row['tasks']:>8} {row['loadavg_1m']:>5} " + " ".join(cells))
    save_result("snapshot_pause", {"tick_ms": TICK_S * 1000, "rows": rows})


if __name__ == "__main__":
    main()
