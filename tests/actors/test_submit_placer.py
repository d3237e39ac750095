"""The leader's submit placer against a real ClusterState: what it writes into a SubmitTask,
how placements in flight are debited until applied, and what it leaves alone."""

from __future__ import annotations

from collections import Counter

import pytest

from orion.actors.submit_placer import SubmitPlacer
from orion.fsm.commands import (
    ReportTaskState,
    SetNodeStatus,
    StopTask,
    SubmitTask,
    UpsertNode,
    decode_command,
    encode_command,
)
from orion.fsm.state import ClusterState
from orion.model import NodeMeta, NodeStatus, Task, TaskState

GiB = 1 << 30


class Leader:
    """A ClusterState, the log the leader appends to, and the placer between them."""

    def __init__(self) -> None:
        self.fsm = ClusterState()
        self.log: list[bytes] = []
        self.term = 1
        self.placer = SubmitPlacer(
            self.fsm,
            strategy="binpack",
            next_index=lambda: len(self.log) + 1,
            term=lambda: self.term,
            dynamic_ports=(20000, 20010),
        )

    def propose(self, command: object) -> bytes:
        data = self.placer.prepare(encode_command(command))  # type: ignore[arg-type]
        self.log.append(data)
        return data

    def apply_all(self) -> None:
        for index in range(self.fsm.applied_index + 1, len(self.log) + 1):
            self.fsm.apply(index, self.log[index - 1])


def submit(task_id: str, memory: int = GiB, **fields: object) -> SubmitTask:
    return SubmitTask(
        at=10.0, task=Task(id=task_id, name=task_id, image="busybox", memory=memory, cpu=0.5, **fields)
    )


@pytest.fixture
def leader() -> Leader:
    leader = Leader()
    for node_id in ("n1", "n2"):
        meta = NodeMeta(id=node_id, memory_total=4 * GiB, cpu_total=2.0, version=1, host_ip="127.0.0.1")
        leader.propose(UpsertNode(at=1.0, meta=meta))
    leader.apply_all()
    return leader


def test_a_submit_leaves_with_the_node_and_applies_scheduled(leader: Leader) -> None:
    command = decode_command(leader.propose(submit("t1")))
    assert isinstance(command, SubmitTask) and command.node_id in ("n1", "n2") and command.reason == ""
    leader.apply_all()
    stored = leader.fsm.task("t1")
    assert stored is not None and (stored.state, stored.node_id) == ("Scheduled", command.node_id)


def test_placements_in_flight_are_debited_until_applied(leader: Leader) -> None:
    # Binpack fills one node first; three 3 GiB tasks cannot share a 4 GiB node, so each
    # submit proposed before the others apply must see what those took.
    nodes = [decode_command(leader.propose(submit(f"t{i}", memory=3 * GiB))) for i in range(3)]
    assert [c.node_id for c in nodes[:2]] in (["n1", "n2"], ["n2", "n1"])  # type: ignore[union-attr]
    third = nodes[2]
    assert isinstance(third, SubmitTask) and third.node_id == ""
    assert third.reason.startswith("0/2 nodes fit: 2 insufficient memory")
    assert len(leader.placer.in_flight) == 2
    leader.apply_all()
    assert [(t.state, t.node_id != "") for t in leader.fsm.tasks()] == [
        ("Scheduled", True),
        ("Scheduled", True),
        ("Pending", False),
    ]
    leader.propose(StopTask(at=11.0, task_id="t0"))  # the next write forgets what is applied
    leader.propose(submit("small", memory=GiB // 2))
    assert set(leader.placer.in_flight) == {"small"}


def test_dynamic_host_ports_in_flight_are_not_given_twice(leader: Leader) -> None:
    ports = [
        decode_command(leader.propose(submit(f"w{i}", memory=0, port_bindings={"80/tcp": "0"})))
        for i in range(3)
    ]
    given = [(c.node_id, c.host_ports["80/tcp"]) for c in ports]  # type: ignore[union-attr]
    assert len(set(given)) == 3  # the same host (one port space per node here) never twice
    leader.apply_all()
    assert all(t.state == "Scheduled" for t in leader.fsm.tasks())


def test_a_new_term_forgets_the_placements_in_flight(leader: Leader) -> None:
    leader.propose(submit("t1", memory=3 * GiB))
    leader.term = 2
    leader.propose(submit("t2", memory=3 * GiB))
    assert set(leader.placer.in_flight) == {"t2"}


def test_other_writes_retries_and_service_tasks_pass_unchanged(leader: Leader) -> None:
    stop = encode_command(StopTask(at=1.0, task_id="t1"))
    assert leader.placer.prepare(stop) == stop
    assert leader.placer.prepare(b"not a command") == b"not a command"
    leader.propose(submit("t1"))
    leader.apply_all()
    retry = encode_command(submit("t1"))
    assert leader.placer.prepare(retry) == retry  # the FSM answers with the task it has
    of_service = encode_command(submit("s1", service="web"))
    assert leader.placer.prepare(of_service) == of_service  # the scheduler spreads service tasks


def test_without_nodes_the_reason_says_so() -> None:
    empty = Leader()
    command = decode_command(empty.propose(submit("t1")))
    assert isinstance(command, SubmitTask) and (command.node_id, command.reason, command.judged_at) == (
        "",
        "0/0 nodes fit: no nodes in the cluster",
        0,
    )


def test_a_task_judged_with_nothing_in_flight_carries_the_index_it_was_judged_at(leader: Leader) -> None:
    command = decode_command(leader.propose(submit("z", node_selectors={"zone": "b"})))
    assert isinstance(command, SubmitTask) and command.judged_at == leader.fsm.applied_index == 2
    assert command.reason == "0/2 nodes fit: 2 node selector zone=b not matched"
    leader.apply_all()
    assert leader.fsm.fresh_pending(10) == []  # the entry came right after: no scheduler entry
    decode_command(leader.propose(submit("t1")))  # in flight now
    busy = decode_command(leader.propose(submit("z2", node_selectors={"zone": "b"})))
    assert isinstance(busy, SubmitTask) and busy.judged_at == 0  # judged with a placement in flight


def _node(node_id: str, memory: int = 4 * GiB, **fields: object) -> UpsertNode:
    meta = NodeMeta(id=node_id, memory_total=memory, cpu_total=2.0, version=1, host_ip="127.0.0.1", **fields)
    return UpsertNode(at=1.0, meta=meta)


def test_the_kept_fleet_sees_memory_an_applied_entry_freed(leader: Leader) -> None:
    first = [decode_command(leader.propose(submit(f"t{i}", memory=3 * GiB))) for i in range(2)]
    leader.apply_all()
    full = decode_command(leader.propose(submit("t2", memory=3 * GiB)))
    assert isinstance(full, SubmitTask) and full.node_id == "" and "insufficient memory" in full.reason
    done = first[0]
    assert isinstance(done, SubmitTask)
    leader.propose(ReportTaskState(at=12.0, task_id="t0", node_id=done.node_id, state=TaskState.FAILED))
    leader.apply_all()
    again = decode_command(leader.propose(submit("t3", memory=3 * GiB)))
    assert isinstance(again, SubmitTask) and again.node_id == done.node_id


def test_the_kept_fleet_follows_node_records_dead_and_new(leader: Leader) -> None:
    leader.propose(submit("warm"))  # the kept fleet is built now
    leader.propose(SetNodeStatus(at=12.0, node_id="n1", status=NodeStatus.DEAD))
    leader.apply_all()
    placed = [decode_command(leader.propose(submit(f"t{i}", memory=GiB // 4))) for i in range(3)]
    assert {c.node_id for c in placed} == {"n2"}  # type: ignore[union-attr]
    leader.propose(_node("n3", tags={"zone": "c"}))
    leader.apply_all()
    zoned = decode_command(leader.propose(submit("z", node_selectors={"zone": "c"})))
    assert isinstance(zoned, SubmitTask) and zoned.node_id == "n3"


def test_submits_walk_the_whole_fleet_as_one_batch_would() -> None:
    many = Leader()
    many.placer.strategy = "spread"
    for i in range(100):  # past EXACT_BELOW: a Nomad walk of nomad_limit(100) nodes per task
        many.propose(_node(f"n{i:03}", memory=64 * GiB))
    many.apply_all()
    for batch in range(4):
        for i in range(50):
            many.propose(submit(f"t{batch}-{i}", memory=GiB))
        many.apply_all()
    per_node = Counter(task.node_id for task in many.fsm.tasks())
    assert len(per_node) == 100 and set(per_node.values()) == {2}


def test_a_task_with_host_ports_is_judged_with_every_claim_and_the_kept_fleet_debits_it(
    leader: Leader,
) -> None:
    leader.propose(submit("warm", memory=GiB))  # the kept fleet is built now
    fixed = decode_command(leader.propose(submit("p", memory=3 * GiB, port_bindings={"80/tcp": "8080"})))
    assert isinstance(fixed, SubmitTask) and fixed.host_ports == {"80/tcp": 8080}
    # Binpack would put the next 3 GiB task where "p" went had the kept fleet not seen it taken.
    other = decode_command(leader.propose(submit("q", memory=3 * GiB)))
    assert isinstance(other, SubmitTask) and other.node_id not in ("", fixed.node_id)


def test_tasks_that_ask_for_nothing_take_turns_on_equal_nodes_under_binpack() -> None:
    # Binpack scores a task with no memory or CPU the same on equal nodes. The kept fleet is
    # shuffled once, so without a moving tie-break every such task went to one node (a fresh
    # shuffle per submit, as before the kept fleet, spread them).
    leader = Leader()
    for node_id in ("n1", "n2", "n3"):
        meta = NodeMeta(id=node_id, memory_total=4 * GiB, cpu_total=2.0, version=1, host_ip="127.0.0.1")
        leader.propose(UpsertNode(at=1.0, meta=meta))
    leader.apply_all()
    placed = []
    for i in range(9):
        command = decode_command(
            leader.propose(SubmitTask(at=10.0, task=Task(id=f"t{i}", name=f"t{i}", image="busybox")))
        )
        placed.append(command.node_id)  # type: ignore[union-attr]
        leader.apply_all()
    assert Counter(placed) == {"n1": 3, "n2": 3, "n3": 3}


def test_the_reason_no_node_matches_follows_the_nodes(leader: Leader) -> None:
    """The reason for tasks whose selectors no node matches is formatted once per state of the
    nodes, and is what the Judge would say: it changes when a node does."""
    first, second = (
        decode_command(leader.propose(submit(f"u{i}", node_selectors={"zone": "c"}))) for i in range(2)
    )
    assert isinstance(first, SubmitTask) and isinstance(second, SubmitTask)
    assert first.node_id == second.node_id == ""
    assert first.reason == second.reason == "0/2 nodes fit: 2 node selector zone=c not matched"
    leader.propose(SetNodeStatus(at=12.0, node_id="n1", status=NodeStatus.DEAD))
    leader.apply_all()
    dead = decode_command(leader.propose(submit("u2", node_selectors={"zone": "c"})))
    assert isinstance(dead, SubmitTask)
    assert dead.reason == "0/2 nodes fit: 1 node selector zone=c not matched, 1 not alive"
    leader.propose(_node("n3", tags={"zone": "c"}))
    leader.apply_all()
    placed = decode_command(leader.propose(submit("u3", node_selectors={"zone": "c"})))
    assert isinstance(placed, SubmitTask) and placed.node_id == "n3" and not placed.reason
