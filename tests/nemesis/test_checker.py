"""The checker catches what it claims to: each check fed a history that breaks it."""

from __future__ import annotations

from orion.model import Task, TaskState
from orion.nemesis import checker
from orion.nemesis.history import History, Op, OpKind, Outcome
from orion.raft.types import Entry, HardState, Snapshot, SnapshotMeta, StoredState
from orion.raft.types import Membership as RaftMembership


def task(task_id: str, state: str = TaskState.RUNNING, node: str = "n1") -> Task:
    return Task(id=task_id, name=task_id, image="img", state=state, node_id=node)


def history(*ops: Op) -> History:
    h = History()
    for op in ops:
        h.record(op)
    return h


def op(
    kind: OpKind, task_id: str = "", outcome: Outcome = Outcome.OK, start: float = 0.0, **kw: object
) -> Op:
    return Op(client=1, kind=kind, task_id=task_id, start=start, end=start + 0.5, outcome=outcome, **kw)


def test_acknowledged_submit_must_exist_once() -> None:
    h = history(op(OpKind.SUBMIT, "a"), op(OpKind.SUBMIT, "b"))
    found = checker.check_submits(h, [task("a")])
    assert [v.task_id for v in found] == ["b"]
    assert checker.check_submits(h, [task("a"), task("b")]) == []


def test_refused_submit_must_not_exist_but_unknown_may() -> None:
    h = history(
        op(OpKind.SUBMIT, "refused", Outcome.ERROR, code="no_quorum"),
        op(OpKind.SUBMIT, "maybe", Outcome.UNKNOWN, code="timeout"),
        op(OpKind.SUBMIT_INVALID, "invalid", Outcome.ERROR, code="invalid"),
    )
    found = checker.check_refused(h, [task("refused"), task("maybe"), task("invalid")])
    assert sorted(v.task_id for v in found) == ["invalid", "refused"]


def test_running_means_one_container_on_the_tasks_node() -> None:
    final = [
        task("ok"),
        task("twice"),
        task("elsewhere"),
        task("stopped", TaskState.STOPPED),
        task("pending", "Pending"),
    ]
    running = {"ok": ["n1"], "twice": ["n1", "n2"], "elsewhere": ["n2"], "stopped": ["n1"], "ghost": ["n3"]}
    found = {v.task_id: v.check for v in checker.check_running(final, running)}
    assert found == {
        "twice": "container_count",
        "elsewhere": "container_count",
        "stopped": "stopped_has_container",
        "pending": "not_running",
        "ghost": "orphan_container",
    }


def test_reads_never_go_back_in_time() -> None:
    h = history(
        op(OpKind.SUBMIT, "a", start=0.0),  # acknowledged at 0.5
        op(OpKind.READ, start=1.0, seen=("a", "b")),  # first sees b at 1.5
        op(OpKind.READ, start=1.2, seen=("a",)),  # concurrent with the read that saw b: fine
        op(OpKind.READ, start=2.0, seen=("a",)),  # started after b was seen: stale
    )
    found = checker.check_reads(h)
    assert len(found) == 1 and found[0].task_id == "b" and found[0].at == 2.0


def stored(commit: int, entries: list[Entry], snapshot_at: tuple[int, int] | None = None) -> StoredState:
    snapshot = None
    if snapshot_at:
        snapshot = Snapshot(SnapshotMeta(snapshot_at[0], snapshot_at[1], RaftMembership()), b"")
    return StoredState(hard_state=HardState(term=3, commit=commit), snapshot=snapshot, entries=entries)


def test_committed_prefixes_must_agree() -> None:
    log = [Entry(1, 1, 0, b"x"), Entry(2, 1, 0, b"y"), Entry(3, 2, 0, b"z")]
    diverged = [Entry(1, 1, 0, b"x"), Entry(2, 1, 0, b"OTHER"), Entry(3, 2, 0, b"z")]
    assert checker.check_logs({"a": stored(3, log), "b": stored(3, log)}) == []
    # Beyond b's commit index an entry may still differ (it was never committed there).
    assert checker.check_logs({"a": stored(1, log), "b": stored(1, diverged)}) == []
    assert [v.check for v in checker.check_logs({"a": stored(3, log), "b": stored(3, diverged)})] == [
        "log_divergence"
    ]
    # A snapshot's term must match the committed entry another node holds at its index.
    assert checker.check_logs({"a": stored(3, log[2:], (2, 1)), "b": stored(3, log)}) == []
    assert len(checker.check_logs({"a": stored(3, log[2:], (2, 5)), "b": stored(3, log)})) == 1
