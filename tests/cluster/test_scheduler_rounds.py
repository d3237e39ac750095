"""The scheduler actor's pure helpers, and the FSM's record of which pending tasks are fresh."""

from orion.actors.scheduler_actor import capacity_grew, free_capacity, lowest
from orion.fsm.commands import AssignTasks, SetPending, SubmitTask, UpsertNode, encode_command
from orion.fsm.state import ClusterState
from orion.model import NodeMeta, Task
from orion.scheduler.types import NodeView


def view(node_id: str, memory_used: int = 0, status: str = "alive") -> NodeView:
    meta = NodeMeta(id=node_id, memory_total=100, cpu_total=1.0, disk_total=100)
    return NodeView(node_id, status, meta, allocated_memory=memory_used)


def test_capacity_grows_only_when_something_was_freed_or_a_node_came():
    before = free_capacity([view("a", 50), view("b", 10)])
    assert not capacity_grew(before, free_capacity([view("a", 60), view("b", 10)]))  # placements
    assert capacity_grew(before, free_capacity([view("a", 40), view("b", 10)]))  # a task ended
    assert capacity_grew(before, free_capacity([view("a", 50), view("b", 10), view("c")]))  # new node
    assert not capacity_grew(before, free_capacity([view("a", 50), view("b", 10, "dead")]))


def test_lowest_keeps_the_least_free_per_resource():
    a = free_capacity([view("a", 50), view("b", 10)])
    b = free_capacity([view("a", 70)])
    assert lowest(a, b) == {"a": (30, 1.0, 100)}


def test_fresh_pending_until_judged_and_again_after_rescheduling():
    fsm = ClusterState()
    index = iter(range(1, 100))
    fsm.apply(next(index), encode_command(UpsertNode(meta=NodeMeta(id="n1", memory_total=100), at=1.0)))
    for i in range(3):
        task = Task(id=f"t{i}", name="t", image="i")
        fsm.apply(next(index), encode_command(SubmitTask(task=task, at=1.0)))
    assert [t.id for t in fsm.fresh_pending(10)] == ["t0", "t1", "t2"]
    fsm.apply(next(index), encode_command(SetPending(task_ids=["t0"], reason="0/1 nodes fit", at=2.0)))
    fsm.apply(next(index), encode_command(AssignTasks(assignments=[("t1", "n1")], at=2.0)))
    assert [t.id for t in fsm.fresh_pending(10)] == ["t2"]
    assert [t.id for t in fsm.pending_window(0, 10)] == ["t0", "t2"]
    assert fsm.pending_count == 2
