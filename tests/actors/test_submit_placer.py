"""The leader's submit placer against a real ClusterState: what it writes into a SubmitTask,
how placements in flight are debited until applied, and what it leaves alone."""

from __future__ import annotations

import pytest

from orion.actors.submit_placer import SubmitPlacer
from orion.fsm.commands import StopTask, SubmitTask, UpsertNode, decode_command, encode_command
from orion.fsm.state import ClusterState
from orion.model import NodeMeta, Task

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
