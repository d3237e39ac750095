"""pending_window() continues where the last window stopped while no Pending id came or went,
and answers exactly what a walk from the start would, whatever happened in between."""

from __future__ import annotations

import itertools
import random

from orion.fsm.commands import (
    AssignTasks,
    Command,
    RemoveTask,
    SetPending,
    StopTask,
    SubmitTask,
    UpsertNode,
    encode_command,
)
from orion.fsm.state import ClusterState
from orion.model import NodeMeta, Task

GiB = 1 << 30


class Driver:
    def __init__(self) -> None:
        self.fsm = ClusterState()
        self.index = 0

    def __call__(self, command: Command) -> object:
        self.index += 1
        return self.fsm.apply(self.index, encode_command(command))


def walked(fsm: ClusterState, start: int, limit: int) -> list[str]:
    """The window as a walk from the first pending id gives it (what pending_window answered
    before it kept a cursor)."""
    return list(itertools.islice(fsm._pending, start, start + limit))


def test_windows_match_a_walk_from_the_start_under_interleaved_changes() -> None:
    rng = random.Random(7)
    apply = Driver()
    apply(UpsertNode(at=0.0, meta=NodeMeta(id="n1", memory_total=1000 * GiB, cpu_total=1000.0)))
    for number in range(60):
        apply(SubmitTask(at=1.0 + number, task=Task(id=f"t{number:02d}", name=f"t{number}", image="img")))
    next_id = 60
    for _ in range(200):
        start = rng.choice([0, 0, 5, 10, 17, 30, 55, 70])
        limit = rng.choice([1, 4, 8, 16])
        # Sweep a few windows in a row, as the scheduler does, between random changes.
        for _ in range(rng.randint(1, 4)):
            expected = walked(apply.fsm, start, limit)
            assert [t.id for t in apply.fsm.pending_window(start, limit)] == expected
            start += len(expected)
        pending = [t.id for t in apply.fsm.pending_tasks()]
        change = rng.randrange(5)
        at = 100.0 + next_id
        if change == 0 or not pending:
            apply(SubmitTask(at=at, task=Task(id=f"t{next_id:02d}", name=f"t{next_id}", image="img")))
            next_id += 1
        elif change == 1:
            apply(AssignTasks(at=at, assignments=[(rng.choice(pending), "n1")]))
        elif change == 2:
            apply(StopTask(at=at, task_id=rng.choice(pending)))
        elif change == 3:
            apply(RemoveTask(at=at, task_id=rng.choice(pending), force=True))
        else:  # a reason change keeps the id in place: the cursor stays valid
            apply(SetPending(at=at, task_ids=rng.sample(pending, min(3, len(pending))), reason=f"r{at}"))


def test_a_restore_starts_the_walk_over() -> None:
    apply = Driver()
    for number in range(10):
        apply(SubmitTask(at=1.0 + number, task=Task(id=f"t{number}", name=f"t{number}", image="img")))
    assert [t.id for t in apply.fsm.pending_window(0, 4)] == ["t0", "t1", "t2", "t3"]
    other = Driver()
    for number in range(10, 20):
        other(SubmitTask(at=1.0 + number, task=Task(id=f"t{number}", name=f"t{number}", image="img")))
    apply.fsm.restore(other.fsm.snapshot())
    assert [t.id for t in apply.fsm.pending_window(4, 3)] == ["t14", "t15", "t16"]
