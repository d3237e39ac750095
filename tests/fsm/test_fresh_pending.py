"""The FSM's record of which pending tasks are fresh (not yet judged by the scheduler)."""

from orion.fsm.commands import AssignTasks, SetPending, SubmitTask, UpsertNode, encode_command
from orion.fsm.state import ClusterState
from orion.model import NodeMeta, Task


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
