"""Cost of the cluster state machine on the apply path, and of its snapshots.

    .venv/bin/python -m tools.bench.fsm [--tasks N]

Applies N SubmitTask, N AssignTasks (one placement each) and N ReportTaskState(Running)
commands as encoded entries, then times snapshot(), restore(), and the DuckDB store's
save_snapshot(), checkpoint() and load() of that snapshot. Each figure comes with the
process's CPU time, which a loaded machine moves less than the wall clock.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from orion.fsm.commands import AssignTasks, ReportTaskState, SubmitTask, UpsertNode, encode_command
from orion.fsm.state import ClusterState
from orion.model import NodeMeta, Task, TaskState
from orion.raft.duckdb_store import DuckDBStore
from orion.raft.types import Entry, HardState, Membership, Snapshot, SnapshotMeta


def timed(label: str, fn: Callable[[], object]) -> object:
    """Run ``fn``, print its wall and CPU time (CPU time moves less on a loaded machine)."""
    started, cpu = time.perf_counter(), time.process_time()
    result = fn()
    wall_ms, cpu_ms = (time.perf_counter() - started) * 1e3, (time.process_time() - cpu) * 1e3
    print(f"{label:<34} {wall_ms:>8.1f} ms  (CPU {cpu_ms:.1f} ms)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    args = parser.parse_args()
    n = args.tasks
    fsm = ClusterState()
    index = 0

    def apply_all(label: str, commands: list[bytes]) -> None:
        nonlocal index
        started, cpu = time.perf_counter(), time.process_time()
        for data in commands:
            index += 1
            fsm.apply(index, data)
        elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu
        print(
            f"{label:<34} {len(commands) / elapsed:>10,.0f} commands/s"
            f"  (CPU {cpu_s / len(commands) * 1e6:.1f} us each)"
        )

    apply_all(
        "upsert node", [encode_command(UpsertNode(at=0.0, meta=NodeMeta(id=f"n{i}"))) for i in range(10)]
    )
    submits = [
        encode_command(
            SubmitTask(
                at=1.0,
                task=Task(
                    id=f"t{i}",
                    name=f"web-{i}",
                    image="busybox",
                    memory=64 << 20,
                    cpu=0.1,
                    port_bindings={"80/tcp": str(20000 + i)},
                    env={"K": "v"},
                ),
            )
        )
        for i in range(n)
    ]
    apply_all("submit", submits)
    apply_all(
        "assign (1 placement each)",
        [encode_command(AssignTasks(at=2.0, assignments=[(f"t{i}", f"n{i % 10}")])) for i in range(n)],
    )
    reports = [
        encode_command(
            ReportTaskState(at=3.0, task_id=f"t{i}", node_id=f"n{i % 10}", state=TaskState.RUNNING)
        )
        for i in range(n)
    ]
    apply_all("report Running", reports)

    data = timed(f"snapshot() of {n} tasks", fsm.snapshot)
    assert isinstance(data, bytes)
    print(f"{'snapshot size':<34} {len(data) / 1e6:>8.1f} MB")
    timed("restore()", lambda: ClusterState().restore(data))
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(Path(tmp) / "raft.duckdb")
        store.load()
        store.save(HardState(term=1, commit=1), [Entry(1, 1)])
        snapshot = Snapshot(SnapshotMeta(1, 1, Membership()), data)
        timed("store.save_snapshot()", lambda: store.save_snapshot(snapshot))
        timed("store.checkpoint()", store.checkpoint)
        store.close()
        reopened = DuckDBStore(Path(tmp) / "raft.duckdb")
        state = timed("store.load() with the snapshot", reopened.load)
        reopened.close()
        assert getattr(state, "snapshot", None) == snapshot


if __name__ == "__main__":
    main()
