"""Cost of taking an FSM snapshot in two steps: capture on the Raft thread, encode elsewhere.

    .venv/bin/python -m tools.bench.snapshot [--tasks 10000 100000]

For each size: builds a state of N Running tasks (a small env, one port, a 3-event history;
restored from records, not applied), then times ``snapshot_source()`` (what stays on the
Raft thread; best of 20), and ``encode_snapshot()`` run in a second thread while the main
thread plays the Raft thread: it wakes every millisecond (as a thread waiting on its sockets
does) and records the longest wait for the interpreter lock beyond that. For comparison, the
same is measured while the second thread runs a plain Python loop for as long as the
encoding took: any CPU-bound Python thread delays the others this much (lock hand-over every
5 ms, plus the OS's scheduling on a busy host), so only a stall well above that baseline is
the encoder's fault. Prints the snapshot bytes per task.
"""

from __future__ import annotations

import argparse
import threading
import time

from orion.fsm.snapshot import SnapshotSource, encode_snapshot
from orion.fsm.state import ClusterState
from orion.fsm.tables import NodeRecord
from orion.model import NodeMeta, Task, TaskEvent, TaskState

NODES = 10


def build(n: int) -> ClusterState:
    """A state of ``n`` Running tasks, restored from records made here: building it through
    ``apply`` would time the apply path (tools/bench/fsm.py does that), not the snapshot."""
    nodes = [
        NodeRecord(
            id=f"n{i}", status="alive", meta=NodeMeta(id=f"n{i}", memory_total=1 << 50, cpu_total=64.0)
        )
        for i in range(NODES)
    ]
    tasks = []
    for i in range(n):
        node_id = f"n{i % NODES}"
        at = 1.0 + i
        tasks.append(
            Task(
                id=f"{i:032x}",
                name=f"web-{i}",
                image="busybox:latest",
                state=TaskState.RUNNING.value,
                memory=64 << 20,
                cpu=0.1,
                port_bindings={"80/tcp": "0"},
                host_ports={"80/tcp": 20000 + i % 12000},
                host_ip="127.0.0.1",
                env={"MODE": "production", "LOG_LEVEL": "info"},
                command=["httpd", "-f", "-p", "80"],
                node_id=node_id,
                created_at=at,
                updated_at=at + 2,
                history=[
                    TaskEvent(at=at, state=TaskState.PENDING.value, reason="submitted"),
                    TaskEvent(at=at + 1, state=TaskState.SCHEDULED.value, node_id=node_id),
                    TaskEvent(at=at + 2, state=TaskState.RUNNING.value, node_id=node_id),
                ],
            )
        )
    fsm = ClusterState()
    fsm.restore(encode_snapshot(SnapshotSource(applied_index=3 * n + NODES, tasks=tasks, nodes=nodes)))
    return fsm


def longest_stall_while(work: threading.Thread) -> float:
    """Seconds of the longest wake-up delay of this thread (beyond its 1 ms sleep) while
    ``work`` runs."""
    longest = 0.0
    work.start()
    while work.is_alive():
        before = time.perf_counter()
        time.sleep(0.001)
        longest = max(longest, time.perf_counter() - before - 0.001)
    work.join()
    return longest


def measure(n: int) -> None:
    fsm = build(n)
    best = min(_timed(fsm.snapshot_source) for _ in range(20))
    source = fsm.snapshot_source()
    box: list[bytes] = []
    timing: list[float] = []

    def encode() -> None:
        started = time.perf_counter()
        box.append(encode_snapshot(source))
        timing.append(time.perf_counter() - started)

    stall = longest_stall_while(threading.Thread(target=encode))
    baseline = longest_stall_while(threading.Thread(target=_spin, args=(timing[0],)))
    data = box[0]
    print(
        f"{n:>7} tasks  snapshot_source() {best * 1e3:7.2f} ms   encode_snapshot() {timing[0] * 1e3:8.1f} ms"
    )
    print(
        f"{'':>14}longest stall of the other thread: {stall * 1e3:6.1f} ms "
        f"(baseline, a Python loop: {baseline * 1e3:6.1f} ms)"
    )
    print(f"{'':>14}snapshot {len(data) / 1e6:6.1f} MB = {len(data) / n:5.0f} bytes/task")


def _spin(seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def _timed(fn: object) -> float:
    started = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    for n in args.tasks:
        measure(n)


if __name__ == "__main__":
    main()
