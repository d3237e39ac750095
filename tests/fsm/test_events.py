"""Events derived while applying entries (orion/fsm/events.py): what each command changed, with
its Raft index, the same on every replica, and nothing for a restore or bookkeeping."""

from __future__ import annotations

from orion.fsm.commands import (
    AssignTasks,
    CreateService,
    DrainNode,
    ReleasePorts,
    RemoveService,
    ReportTaskState,
    ScaleService,
    SetNodeEligibility,
    SetNodeStatus,
    StopTask,
    SubmitTask,
    UpsertNode,
    encode_command,
)
from orion.fsm.events import Event
from orion.fsm.state import ClusterState
from orion.model import NodeMeta, Task
from orion.services.spec import ServiceSpec, TaskTemplate

GiB = 1 << 30


def meta(node_id: str, version: int = 1, memory_used: int = 0) -> NodeMeta:
    return NodeMeta(
        id=node_id, memory_total=16 * GiB, cpu_total=4.0, version=version, memory_used=memory_used
    )


def task(task_id: str) -> Task:
    return Task(id=task_id, name=f"name-{task_id}", image="busybox", memory=GiB, cpu=0.5)


COMMANDS = [
    UpsertNode(at=1.0, meta=meta("n1")),
    UpsertNode(at=1.0, meta=meta("n2")),
    SubmitTask(at=2.0, task=task("t1")),
    AssignTasks(at=3.0, assignments=[("t1", "n1")]),
    ReportTaskState(at=4.0, task_id="t1", node_id="n1", state="Running"),
    UpsertNode(at=4.5, meta=meta("n1", version=2, memory_used=GiB)),  # gossip figures only: no event
    ReleasePorts(at=4.6, node_id="n1", task_ids=["t1"]),  # bookkeeping: no event
    DrainNode(at=5.0, node_id="n1"),
    SetNodeStatus(at=6.0, node_id="n2", status="dead"),
    SetNodeEligibility(at=7.0, node_id="n1", eligible=True),
    StopTask(at=8.0, task_id="t1"),
    CreateService(at=9.0, spec=ServiceSpec(name="web", template=TaskTemplate(image="web:1"), replicas=2)),
    ScaleService(at=10.0, name="web", replicas=3),
    RemoveService(at=11.0, name="web"),
]


def replay(commands: list[object]) -> tuple[ClusterState, list[Event]]:
    fsm = ClusterState()
    fsm.events.enabled = True
    for index, command in enumerate(commands, start=1):
        fsm.apply(index, encode_command(command))
    return fsm, fsm.take_events()


def summary(events: list[Event]) -> list[tuple[int, str, str, str, str, str]]:
    return [(e.index, e.type, e.action, e.id, e.previous, e.state) for e in events]


def test_each_committed_change_is_an_event_with_its_raft_index() -> None:
    _, events = replay(COMMANDS)
    assert summary(events) == [
        (1, "node", "created", "n1", "", "alive"),
        (2, "node", "created", "n2", "", "alive"),
        (3, "task", "created", "t1", "", "Pending"),
        (4, "task", "changed", "t1", "Pending", "Scheduled"),
        (5, "task", "changed", "t1", "Scheduled", "Running"),
        # index 6 (gossip figures) and 7 (port bookkeeping) change nothing anyone watches
        # The drain: a one-off task leaves the drained node (tasks as they change, then the node).
        (8, "task", "changed", "t1", "Running", "Pending"),
        (8, "node", "changed", "n1", "alive", "alive"),
        (9, "node", "changed", "n2", "alive", "dead"),
        (10, "node", "changed", "n1", "alive", "alive"),  # eligible again, drain over
        (11, "task", "changed", "t1", "Pending", "Stopped"),
        (12, "service", "created", "web", "", "completed"),
        (13, "service", "changed", "web", "completed", "completed"),
        (14, "service", "removed", "web", "completed", ""),
    ]
    by_index = {e.index: e for e in events if e.type == "node"}
    assert by_index[8].changed == {"eligible": "False", "drain": "draining"}
    assert by_index[9].changed == {"status": "dead"}
    assert by_index[10].changed == {"eligible": "True", "drain": ""}
    scaled = next(e for e in events if e.index == 13)
    assert scaled.changed == {"version": "2", "replicas": "3"}
    scheduled = next(e for e in events if e.index == 4)
    assert scheduled.changed == {"state": "Scheduled", "node_id": "n1", "reason": ""}
    assert scheduled.at == 3.0  # the command's time: the same on every replica


def test_replicas_fed_the_same_entries_derive_the_same_events() -> None:
    first, second = replay(COMMANDS)[1], replay(COMMANDS)[1]
    assert first == second
    assert len(first) == len(set(map(repr, first)))  # no event twice


def test_a_restore_or_a_state_with_events_off_keeps_none() -> None:
    fsm, _ = replay(COMMANDS)
    restored = ClusterState()
    restored.events.enabled = True
    restored.restore(fsm.snapshot())
    assert restored.take_events() == []
    quiet = ClusterState()  # the simulator's and tools' states: nobody takes events from them
    quiet.apply(1, encode_command(COMMANDS[0]))
    assert quiet.take_events() == []


def test_a_refused_command_makes_no_event() -> None:
    _, events = replay(
        [*COMMANDS[:2], StopTask(at=3.0, task_id="nope"), SetNodeStatus(at=3.0, node_id="x", status="dead")]
    )
    assert [e.index for e in events] == [1, 2]
