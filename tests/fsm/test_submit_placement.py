"""SubmitTask carrying the leader's placement: one entry creates the task Scheduled; apply only
checks the placement still holds on the applied state, and otherwise leaves it Pending (and
fresh, so the scheduler places it). Replaying the log gives the same state."""

from __future__ import annotations

import msgspec
import pytest

from orion.fsm.commands import (
    AssignTasks,
    SetNodeStatus,
    SubmitTask,
    UpsertNode,
    decode_command,
    encode_command,
)
from orion.fsm.state import AssignResult, ClusterState
from orion.model import NodeMeta, NodeStatus, Task, TaskState
from tests.fsm.test_state import Driver

GiB = 1 << 30


def meta(node_id: str, memory: int = 4 * GiB, **fields: object) -> NodeMeta:
    return NodeMeta(id=node_id, memory_total=memory, cpu_total=2.0, version=1, host_ip="127.0.0.1", **fields)


def task(task_id: str, memory: int = GiB, **fields: object) -> Task:
    return Task(id=task_id, name=task_id, image="busybox", memory=memory, cpu=0.5, **fields)


@pytest.fixture
def run() -> Driver:
    driver = Driver()
    driver(UpsertNode(at=1.0, meta=meta("n1")))
    driver(UpsertNode(at=1.0, meta=meta("n2")))
    return driver


def test_a_placed_submit_creates_the_task_scheduled_in_one_entry(run: Driver) -> None:
    placed = run(SubmitTask(at=2.0, task=task("t1"), node_id="n2"))
    assert isinstance(placed, Task)
    assert (placed.state, placed.node_id, placed.reason) == (TaskState.SCHEDULED, "n2", "")
    assert [(e.state, e.reason) for e in placed.history] == [("Pending", "submitted"), ("Scheduled", "")]
    assert run.fsm.allocated("n2") == (GiB, 0.5, 0)
    assert run.fsm.pending_count == 0 and run.fsm.fresh_pending(10) == []  # nothing for the scheduler
    assert run(SubmitTask(at=3.0, task=task("t1"), node_id="n1")) == placed  # a retry changes nothing


class SubmitBeforePlacement(msgspec.Struct, frozen=True, kw_only=True, tag_field="op", tag="submit"):
    """SubmitTask as entries written before the leader placed at submit carry it."""

    at: float
    task: Task


def test_an_entry_of_the_old_shape_still_creates_a_pending_task() -> None:
    old = msgspec.msgpack.encode(SubmitBeforePlacement(at=2.0, task=task("t1")))
    command = decode_command(old)
    assert isinstance(command, SubmitTask)
    assert (command.node_id, command.host_ports, command.reason) == ("", {}, "")
    fsm = ClusterState()
    created = fsm.apply(1, old)
    assert isinstance(created, Task) and (created.state, created.reason) == ("Pending", "waiting for a node")
    assert [t.id for t in fsm.fresh_pending(10)] == ["t1"]


def test_a_placement_on_a_node_that_died_since_leaves_the_task_pending_for_the_scheduler(run: Driver) -> None:
    run(SetNodeStatus(at=2.0, node_id="n1", status=NodeStatus.DEAD))
    refused = run(SubmitTask(at=3.0, task=task("t1"), node_id="n1"))
    assert isinstance(refused, Task) and (refused.state, refused.node_id) == (TaskState.PENDING, "")
    assert (
        refused.reason == "placed on n1 when submitted, but node n1 is dead when applied: waiting for a node"
    )
    assert [t.id for t in run.fsm.fresh_pending(10)] == ["t1"]  # the scheduler places it
    assert run.fsm.allocated("n1") == (0, 0.0, 0)
    gone = run(SubmitTask(at=3.0, task=task("t2"), node_id="n9"))
    assert isinstance(gone, Task) and "node n9 is not known" in gone.reason


def test_a_placement_on_a_node_that_filled_up_since_is_refused(run: Driver) -> None:
    assert run(SubmitTask(at=2.0, task=task("big", memory=3 * GiB), node_id="n1")).state == "Scheduled"
    # Decided on a view that did not count "big" yet: 2 GiB no longer fit in the 1 GiB left.
    late = run(SubmitTask(at=2.5, task=task("late", memory=2 * GiB), node_id="n1"))
    assert isinstance(late, Task) and late.state == TaskState.PENDING
    assert "insufficient memory (need 2.0 GiB, free 1.0 GiB)" in late.reason
    assert run.fsm.allocated("n1") == (3 * GiB, 0.5, 0)
    assert [t.id for t in run.fsm.fresh_pending(10)] == ["late"]


def test_a_placement_on_a_node_whose_tags_no_longer_match_is_refused(run: Driver) -> None:
    refused = run(SubmitTask(at=2.0, task=task("t1", node_selectors={"zone": "b"}), node_id="n1"))
    assert isinstance(refused, Task) and refused.state == TaskState.PENDING
    assert "node selector zone=b not matched" in refused.reason


def test_host_ports_travel_in_the_entry_and_a_port_taken_since_is_refused(run: Driver) -> None:
    web = task("web", port_bindings={"80/tcp": "0"})
    placed = run(SubmitTask(at=2.0, task=web, node_id="n1", host_ports={"80/tcp": 20000}))
    assert isinstance(placed, Task)
    assert (placed.state, placed.host_ports, placed.host_ip) == ("Scheduled", {"80/tcp": 20000}, "127.0.0.1")
    other = task("other", port_bindings={"80/tcp": "0"})
    clash = run(SubmitTask(at=2.5, task=other, node_id="n1", host_ports={"80/tcp": 20000}))
    assert isinstance(clash, Task) and clash.state == TaskState.PENDING and clash.host_ports == {}
    assert "when applied" in clash.reason and "20000" in clash.reason


def test_an_unplaced_submit_shows_the_leaders_reason_and_stays_fresh(run: Driver) -> None:
    why = "0/2 nodes fit: 2 insufficient memory (need 64.0 GiB, largest free 4.0 GiB)"
    pending = run(SubmitTask(at=2.0, task=task("huge", memory=64 * GiB), reason=why))
    assert isinstance(pending, Task) and (pending.state, pending.reason) == ("Pending", why)
    assert [t.id for t in run.fsm.fresh_pending(10)] == ["huge"]  # judged once more on the applied state


def test_assign_refuses_a_plan_that_no_longer_fits_on_resources(run: Driver) -> None:
    run(SubmitTask(at=2.0, task=task("a", memory=3 * GiB)))
    run(SubmitTask(at=2.0, task=task("b", memory=3 * GiB), node_id="n1"))  # placed by the leader meanwhile
    result = run(AssignTasks(at=3.0, assignments=[("a", "n1")]))
    assert result == AssignResult(assigned=[], skipped=["a"])
    assert run.fsm.task("a").state == TaskState.PENDING
    assert [t.id for t in run.fsm.fresh_pending(10)] == ["a"]  # still fresh: judged again


def test_replaying_the_log_gives_the_same_state(run: Driver) -> None:
    run(SubmitTask(at=2.0, task=task("a", memory=3 * GiB), node_id="n1"))
    run(SubmitTask(at=2.1, task=task("b", memory=3 * GiB), node_id="n1"))  # refused: n1 is full
    run(SetNodeStatus(at=2.2, node_id="n2", status=NodeStatus.DEAD))
    run(SubmitTask(at=2.3, task=task("c"), node_id="n2"))  # refused: n2 is dead
    run(
        SubmitTask(
            at=2.4, task=task("d", port_bindings={"80/tcp": "0"}), node_id="n1", host_ports={"80/tcp": 20001}
        )
    )
    replica = ClusterState()
    for index, data in enumerate(run.log, start=1):
        replica.apply(index, data)
    assert replica.snapshot() == run.fsm.snapshot()
    assert [(t.id, t.state, t.node_id) for t in replica.tasks()] == [
        ("a", "Scheduled", "n1"),
        ("b", "Pending", ""),
        ("c", "Pending", ""),
        ("d", "Scheduled", "n1"),
    ]


def test_a_reason_judged_on_the_very_state_it_applies_to_needs_no_second_judgement(run: Driver) -> None:
    why = "0/2 nodes fit: 2 node selector zone=b not matched"
    selected = task("z1", node_selectors={"zone": "b"})
    # judged_at is the index just before this entry's: nothing changed in between.
    pending = run(SubmitTask(at=2.0, task=selected, reason=why, judged_at=run.index))
    assert isinstance(pending, Task) and (pending.state, pending.reason) == ("Pending", why)
    assert run.fsm.fresh_pending(10) == [] and run.fsm.pending_count == 1  # swept when capacity grows
    # Judged on an older state with only submits applied since (as under concurrent submits):
    # a submit only takes room, so the reason still stands.
    behind = task("z2", node_selectors={"zone": "b"})
    run(SubmitTask(at=2.0, task=behind, reason=why, judged_at=run.index - 1))
    assert run.fsm.fresh_pending(10) == [] and run.fsm.pending_count == 2
    # Judged before an entry that may have made room (a node came back): the scheduler judges it.
    judged = run.index
    run(SetNodeStatus(at=2.1, node_id="n2", status=NodeStatus.ALIVE))
    stale = task("z3", node_selectors={"zone": "b"})
    run(SubmitTask(at=2.2, task=stale, reason=why, judged_at=judged))
    assert [t.id for t in run.fsm.fresh_pending(10)] == ["z3"]
    # Not judged at all (a placement was in flight): judged again too.
    run(SubmitTask(at=2.3, task=task("z4", node_selectors={"zone": "b"}), reason=why, judged_at=0))
    assert [t.id for t in run.fsm.fresh_pending(10)] == ["z3", "z4"]
    # A state restored from a snapshot does not know what its entries did: judged again.
    restored = ClusterState()
    restored.restore(run.fsm.snapshot())
    restored.apply(
        run.index + 1,
        encode_command(
            SubmitTask(
                at=2.4, task=task("z5", node_selectors={"zone": "b"}), reason=why, judged_at=run.index - 1
            )
        ),
    )
    assert "z5" in [t.id for t in restored.fresh_pending(10)]
