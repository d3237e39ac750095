"""Cost of taking an FSM snapshot in two steps: capture on the Raft thread, encode elsewhere.

    .venv/bin/python tools/bench_snapshot.py [--tasks 10000 100000]

For each size: builds a state of N Running tasks (a small env, one port, a 3-event history),
then times ``snapshot_source()`` (what stays on the Raft thread; best of 20), and
``encode_snapshot()`` run in a second thread while the main thread plays the Raft thread: it
wakes every millisecond (as a thread waiting on its sockets does) and records the longest
wait for the interpreter lock beyond that. For comparison, the same is measured while the
second thread runs a plain Python loop for as long as the encoding took: any CPU-bound Python
thread delays the others this much (lock hand-over every 5 ms, plus the OS's scheduling on a
busy host), so only a stall well above that baseline is the encoder's fault. Prints the
snapshot bytes per task.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from orion.fsm.commands import AssignTasks, ReportTaskState, SubmitTask, UpsertNode, encode_command
from orion.fsm.snapshot import encode_snapshot
from orion.fsm.state import ClusterState
from orion.model import NodeMeta, Task, TaskState

NODES = 10


def build(n: int) -> ClusterState:
    fsm = ClusterState()
    commands = [UpsertNode(at=0.0, meta=NodeMeta(id=f"n{i}", memory_total=1 << 50)) for i in range(NODES)]
    for i in range(n):
        task = Task(
            id=f"{i:032x}",
            name=f"web-{i}",
            image="busybox:latest",
            memory=64 << 20,
            cpu=0.1,
            port_bindings={"80/tcp": str(20000 + i % 40000)},
            env={"MODE": "production", "LOG_LEVEL": "info"},
            command=["httpd", "-f", "-p", "80"],
        )
        commands.append(SubmitTask(at=1.0 + i, task=task))
    for i in range(n):
        commands.append(AssignTasks(at=2.0 + n + i, assignments=[(f"{i:032x}", f"n{i % NODES}")]))
    for i in range(n):
        commands.append(
            ReportTaskState(
                at=3.0 + 2 * n + i, task_id=f"{i:032x}", node_id=f"n{i % NODES}", state=TaskState.RUNNING
            )
        )
    for index, command in enumerate(commands, 1):
        fsm.apply(index, encode_command(command))
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
