"""NodeRecordSync (orion/cluster/node_records.py) moving a dead node's tasks, around a real
ClusterState and MemberMirror: the record of a node found dead and the rescheduling of its
tasks are separate commands, neither holding the other back."""

from __future__ import annotations

from orion.cluster.leadership import Leadership
from orion.cluster.mirror import MemberMirror
from orion.cluster.node_records import NodeRecordSync
from orion.fsm.commands import (
    Command,
    RescheduleNodeTasks,
    SubmitTask,
    UpsertNode,
    decode_command,
    encode_command,
)
from orion.fsm.state import ClusterState
from orion.gossip.events import MemberEvent
from orion.model import NodeMeta, NodeStatus, Task

GiB = 1 << 30


class Leader:
    """A leader's records sync whose proposals are applied at once, in order."""

    def __init__(self, reschedule_after: float) -> None:
        self.fsm = ClusterState()
        self.mirror = MemberMirror()
        self.leadership = Leadership(now=0.0)
        self.proposed: list[Command] = []
        self.sync = NodeRecordSync(
            self.fsm, self.mirror, self.leadership, self._propose, reschedule_after=reschedule_after
        )

    def _propose(self, data: bytes, _deadline: float) -> None:
        self.proposed.append(decode_command(data))
        self.fsm.apply(self.fsm.applied_index + 1, data)

    def commit(self, command: Command) -> None:
        self.fsm.apply(self.fsm.applied_index + 1, encode_command(command))

    def gossip(self, kind: str, node_id: str, now: float) -> None:
        meta = NodeMeta(id=node_id, memory_total=4 * GiB, cpu_total=2.0, version=1)
        self.mirror.apply_events([MemberEvent(kind, node_id, "127.0.0.1:1", meta, 1)], now)

    def step(self, now: float) -> list[str]:
        """The commands one step proposed, by name."""
        before = len(self.proposed)
        self.sync.step(now, 1000.0 + now)
        return [type(c).__name__ for c in self.proposed[before:]]


def running_on_n2(leader: Leader) -> None:
    leader.gossip("joined", "n2", now=0.0)
    assert leader.step(0.0) == ["UpsertNode"]
    leader.commit(SubmitTask(at=1.0, task=Task(id="t1", name="t1", image="busybox"), node_id="n2"))
    assert leader.fsm.task("t1").node_id == "n2"


def test_with_no_grace_the_record_and_the_rescheduling_go_in_one_step() -> None:
    leader = Leader(reschedule_after=0.0)
    running_on_n2(leader)
    leader.gossip("dead", "n2", now=10.0)
    assert leader.step(10.0) == ["UpsertNode", "RescheduleNodeTasks"]  # the record first
    assert leader.fsm.node("n2").status == NodeStatus.DEAD
    assert (leader.fsm.task("t1").state, leader.fsm.task("t1").reason) == ("Pending", "node n2 is dead")
    assert leader.step(10.2) == []


def test_the_grace_counts_from_gossips_report_not_from_the_records_commit() -> None:
    leader = Leader(reschedule_after=1.0)
    running_on_n2(leader)
    leader.gossip("dead", "n2", now=10.0)
    assert leader.step(10.0) == ["UpsertNode"]
    assert leader.step(10.8) == []
    # One second after gossip's report, though the record's command was proposed 1 s ago
    # (a command of the same kind would wait two seconds while it commits).
    assert leader.step(11.0) == ["RescheduleNodeTasks"]
    assert isinstance(leader.proposed[-1], RescheduleNodeTasks)
    assert isinstance(leader.proposed[-2], UpsertNode)
    assert leader.fsm.task("t1").state == "Pending"
