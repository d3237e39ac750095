"""Node drain and eligibility in the cluster state: DrainNode, SetNodeEligibility and
FinishDrain, what they do to the node's tasks, and that they survive gossip and snapshots."""

from __future__ import annotations

from orion.fsm import commands as c
from orion.fsm.results import AssignResult, TaskIds
from orion.fsm.state import ClusterState
from orion.fsm.tables import NODE_COLUMNS, NodeDrain, NodeRecord, nodes_from_table
from orion.model import Desired, NodeMeta, Task, TaskState
from orion.raft.tabular import decode_tabular_snapshot
from orion.raft.types import Table


class Driver:
    def __init__(self) -> None:
        self.fsm = ClusterState()
        self.index = 0

    def __call__(self, command: c.Command) -> object:
        self.index += 1
        return self.fsm.apply(self.index, c.encode_command(command))


def cluster() -> Driver:
    apply = Driver()
    for node_id in ("n1", "n2"):
        apply(c.UpsertNode(meta=NodeMeta(id=node_id, memory_total=1 << 30, cpu_total=2.0), at=1.0))
    for task_id, service in (("one-off", ""), ("web-1", "web")):
        task = Task(id=task_id, name=task_id, image="x", service=service, slot=1 if service else 0)
        apply(c.SubmitTask(task=task, at=2.0))
    apply(c.AssignTasks(assignments=[("one-off", "n1"), ("web-1", "n1")], at=3.0))
    return apply


def test_drain_makes_the_node_ineligible_and_sends_one_off_tasks_back_to_pending() -> None:
    apply = cluster()
    record = apply(c.DrainNode(node_id="n1", deadline=60.0, at=10.0))
    assert isinstance(record, NodeRecord)
    assert (record.eligible, record.drain, record.schedulable) == (False, NodeDrain(10.0, 70.0), False)
    one_off, web = apply.fsm.task("one-off"), apply.fsm.task("web-1")
    assert one_off is not None and web is not None
    assert (one_off.state, one_off.node_id, one_off.reason) == (TaskState.PENDING, "", "node n1 is draining")
    # A service task stays: the service controller starts its replacement elsewhere first.
    assert (web.state, web.node_id) == (TaskState.SCHEDULED, "n1")
    assert apply.fsm.live_tasks_on_node("n1") == 1
    # Draining again keeps when it started and takes the new deadline.
    again = apply(c.DrainNode(node_id="n1", at=20.0))
    assert isinstance(again, NodeRecord) and again.drain == NodeDrain(10.0, None)


def test_no_placement_on_an_ineligible_node_even_from_an_older_plan() -> None:
    apply = cluster()
    apply(c.SubmitTask(task=Task(id="late", name="late", image="x"), at=4.0))
    apply(c.SetNodeEligibility(node_id="n2", eligible=False, at=5.0))
    result = apply(c.AssignTasks(assignments=[("late", "n2")], at=6.0))
    assert result == AssignResult(assigned=[], skipped=["late"])
    apply(c.SetNodeEligibility(node_id="n2", eligible=True, at=7.0))
    assert apply(c.AssignTasks(assignments=[("late", "n2")], at=8.0)) == AssignResult(
        assigned=["late"], skipped=[]
    )


def test_enabling_ends_a_drain_and_gossip_updates_keep_both() -> None:
    apply = cluster()
    apply(c.DrainNode(node_id="n1", at=10.0))
    meta = NodeMeta(id="n1", memory_total=1 << 30, cpu_total=2.0, version=5)
    kept = apply(c.UpsertNode(meta=meta, at=11.0))
    assert isinstance(kept, NodeRecord) and (kept.eligible, kept.drain) == (False, NodeDrain(10.0, None))
    enabled = apply(c.SetNodeEligibility(node_id="n1", eligible=True, at=12.0))
    assert isinstance(enabled, NodeRecord) and (enabled.eligible, enabled.drain) == (True, None)
    assert apply(c.SetNodeEligibility(node_id="nope", eligible=False, at=13.0)) == c.CommandError(
        c.Refusal.NOT_FOUND, "no node with id nope"
    )


def test_finish_drain_stops_what_is_left_only_after_the_deadline() -> None:
    apply = cluster()
    apply(c.DrainNode(node_id="n1", deadline=60.0, at=10.0))
    early = apply(c.FinishDrain(node_id="n1", at=69.0))
    assert isinstance(early, c.CommandError) and early.code == c.Refusal.INVALID
    assert apply(c.FinishDrain(node_id="n1", at=70.0)) == TaskIds(["web-1"])
    web = apply.fsm.task("web-1")
    assert web is not None and (web.state, web.desired) == (TaskState.STOPPED, Desired.STOP)
    assert "reached its deadline" in web.reason
    assert apply.fsm.live_tasks_on_node("n1") == 0
    bad = apply(c.DrainNode(node_id="n1", deadline=-1.0, at=80.0))
    assert isinstance(bad, c.CommandError) and bad.message.startswith("deadline:")


def test_eligibility_and_drain_survive_a_snapshot_and_older_snapshots_restore_eligible() -> None:
    apply = cluster()
    apply(c.DrainNode(node_id="n1", deadline=5.0, at=10.0))
    apply(c.SetNodeEligibility(node_id="n2", eligible=False, at=11.0))
    restored = ClusterState()
    restored.restore(apply.fsm.snapshot())
    assert restored.nodes() == apply.fsm.nodes()
    assert restored.snapshot() == apply.fsm.snapshot()

    nodes = decode_tabular_snapshot(apply.fsm.snapshot()).tables["nodes"]
    cut = NODE_COLUMNS.index(("eligible", "BOOLEAN", False))  # written before eligibility and drain
    old = Table(columns=nodes.columns[:cut], types=nodes.types[:cut], rows=[row[:cut] for row in nodes.rows])
    assert [(n.id, n.eligible, n.drain) for n in nodes_from_table(old)] == [
        ("n1", True, None),
        ("n2", True, None),
    ]
