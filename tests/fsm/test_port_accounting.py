"""Host ports in the replicated state: claims across assign, stop, fail, reschedule, conflicts
and releases; one port space per Docker engine; replay and snapshots keep them exact."""

from __future__ import annotations

import random

import pytest

from orion.fsm.commands import (
    AssignTasks,
    Command,
    CommandError,
    PortConflict,
    ReleasePorts,
    RemoveTask,
    ReportTaskState,
    RescheduleNodeTasks,
    SetNodeStatus,
    StopTask,
    SubmitTask,
    UpsertNode,
    encode_command,
)
from orion.fsm.state import AssignResult, ClusterState, TaskIds
from orion.model import NodeMeta, PortClaim, RestartSpec, Task
from orion.scheduler.ports import FOREIGN_BLOCK_S, WILDCARD_IPS, port_space

GiB = 1 << 30


class Driver:
    def __init__(self) -> None:
        self.fsm = ClusterState()
        self.index = 0
        self.log: list[bytes] = []

    def __call__(self, command: Command) -> object:
        data = encode_command(command)
        self.log.append(data)
        self.index += 1
        return self.fsm.apply(self.index, data)


def meta(node_id: str, space: str = "engine-1", host_ip: str = "127.0.0.1") -> NodeMeta:
    return NodeMeta(
        id=node_id, memory_total=16 * GiB, cpu_total=4.0, version=1, host_ip=host_ip, port_space=space
    )


def web(task_id: str, host: str = "8080", container: str = "80/tcp") -> Task:
    return Task(
        id=task_id, name=task_id, image="busybox", memory=GiB, cpu=0.5, port_bindings={container: host}
    )


def claims(fsm: ClusterState, node_id: str) -> list[tuple[str, int, str]]:
    return [(c.kind, c.port, c.task_id) for c in fsm.port_claims(node_id)]


@pytest.fixture
def run() -> Driver:
    driver = Driver()
    for node_id in ("n1", "n2"):
        driver(UpsertNode(at=1.0, meta=meta(node_id)))  # one engine, one address: one port space
    driver(UpsertNode(at=1.0, meta=meta("far", space="engine-2")))
    return driver


def test_assign_records_the_ports_and_a_second_claim_on_the_same_engine_is_skipped(run: Driver) -> None:
    run(SubmitTask(at=2.0, task=web("a")))
    run(SubmitTask(at=2.0, task=web("b")))
    run(SubmitTask(at=2.0, task=web("c")))
    result = run(AssignTasks(at=3.0, assignments=[("a", "n1"), ("b", "n2"), ("c", "far")]))
    # b's plan was made on an older state: 8080 is taken on the engine n1 and n2 share.
    assert result == AssignResult(assigned=["a", "c"], skipped=["b"])
    a = run.fsm.task("a")
    assert a is not None and (a.host_ports, a.host_ip) == ({"80/tcp": 8080}, "127.0.0.1")
    assert claims(run.fsm, "n1") == [("task", 8080, "a")]
    assert claims(run.fsm, "far") == [("task", 8080, "c")]
    assert run.fsm.task("b").state == "Pending"


def test_dynamic_ports_come_from_the_plan_and_are_refused_when_missing(run: Driver) -> None:
    run(SubmitTask(at=2.0, task=web("d", host="0")))
    assert run(AssignTasks(at=3.0, assignments=[("d", "n1")])) == AssignResult(assigned=[], skipped=["d"])
    plan = AssignTasks(at=3.0, assignments=[("d", "n1")], host_ports={"d": {"80/tcp": 20000}})
    assert run(plan) == AssignResult(assigned=["d"], skipped=[])
    assert run.fsm.task("d").host_ports == {"80/tcp": 20000}
    assert run.fsm.task("d").port_bindings == {"80/tcp": "0"}  # the request stays as asked


def test_a_submit_cannot_smuggle_port_fields(run: Driver) -> None:
    forged = web("f")
    forged.host_ports = {"80/tcp": 1}
    forged.port_holds = [PortClaim(host_ip="", port=1, protocol="tcp", node_id="n1", kind="held")]
    created = run(SubmitTask(at=2.0, task=forged))
    assert isinstance(created, Task) and created.host_ports == {} and created.port_holds == []
    assert run.fsm.port_claims("n1") == []


def test_failed_and_completed_tasks_free_their_ports_at_once(run: Driver) -> None:
    for task_id, port in (("x", "7001"), ("y", "7002")):
        run(SubmitTask(at=2.0, task=web(task_id, host=port)))
    run(AssignTasks(at=3.0, assignments=[("x", "n1"), ("y", "n1")]))
    releases = run.fsm.port_releases
    run(ReportTaskState(at=4.0, task_id="x", node_id="n1", state="Running"))
    assert run.fsm.port_releases == releases  # still Running on n1: nothing given up
    run(ReportTaskState(at=5.0, task_id="x", node_id="n1", state="Failed", reason="exited with code 1"))
    run(ReportTaskState(at=5.0, task_id="y", node_id="n1", state="Stopped", reason="completed"))
    assert run.fsm.port_claims("n1") == []
    assert run.fsm.port_releases == releases + 2


def test_a_stopped_task_holds_its_port_until_the_node_sees_the_container_gone(run: Driver) -> None:
    run(SubmitTask(at=2.0, task=web("s")))
    run(AssignTasks(at=3.0, assignments=[("s", "n1")]))
    run(StopTask(at=4.0, task_id="s"))
    assert claims(run.fsm, "n1") == [("held", 8080, "s")]
    assert run.fsm.held_port_tasks("n1") == ["s"]
    run(SubmitTask(at=5.0, task=web("next")))
    assert run(AssignTasks(at=6.0, assignments=[("next", "n2")])).skipped == ["next"]
    assert run(ReleasePorts(at=7.0, node_id="n2", task_ids=["s"])) == TaskIds([])  # not held there
    assert run(ReleasePorts(at=7.0, node_id="n1", task_ids=["s", "gone"])) == TaskIds(["s"])
    assert run.fsm.port_claims("n1") == [] and run.fsm.held_port_tasks("n1") == []
    stopped = run.fsm.task("s")
    assert stopped.updated_at == 4.0 and stopped.history[-1].state == "Stopped"  # bookkeeping only
    assert run(AssignTasks(at=8.0, assignments=[("next", "n2")])).assigned == ["next"]


def test_reschedule_off_a_dead_node_holds_the_ports_there_and_clears_the_task(run: Driver) -> None:
    run(SubmitTask(at=2.0, task=web("w")))
    run(AssignTasks(at=3.0, assignments=[("w", "n1")]))
    run(ReportTaskState(at=4.0, task_id="w", node_id="n1", state="Running"))
    run(SetNodeStatus(at=5.0, node_id="n1", status="dead"))
    assert run(RescheduleNodeTasks(at=6.0, node_id="n1", reason="node n1 is dead")) == TaskIds(["w"])
    w = run.fsm.task("w")
    assert (w.state, w.node_id, w.host_ports, w.host_ip) == ("Pending", "", {}, "")
    assert claims(run.fsm, "n1") == [("held", 8080, "w")]
    # The old container may still hold 8080 on the shared engine: n2 is refused, far is not.
    assert run(AssignTasks(at=7.0, assignments=[("w", "n2")])).skipped == ["w"]
    assert run(AssignTasks(at=7.0, assignments=[("w", "far")])).assigned == ["w"]
    assert claims(run.fsm, "far") == [("task", 8080, "w")]
    assert claims(run.fsm, "n1") == [("held", 8080, "w")]  # until n1 (back) removes its copy


def test_a_port_conflict_sends_the_task_back_to_pending_and_blocks_the_port_there(run: Driver) -> None:
    run(SubmitTask(at=2.0, task=web("p", host="9000")))
    run(AssignTasks(at=3.0, assignments=[("p", "n1")]))
    reason = "port 9000 on 127.0.0.1 already in use on n1; rescheduling"
    wrong_node = PortConflict(
        at=4.0, task_id="p", node_id="n2", host_ip="127.0.0.1", port=9000, reason=reason
    )
    assert isinstance(run(wrong_node), CommandError)
    conflict = PortConflict(at=4.0, task_id="p", node_id="n1", host_ip="127.0.0.1", port=9000, reason=reason)
    p = run(conflict)
    assert isinstance(p, Task) and (p.state, p.node_id, p.reason, p.restarts) == ("Pending", "", reason, 0)
    assert [(e.state, e.reason) for e in p.history[-2:]] == [("Scheduled", ""), ("Pending", reason)]
    (block,) = run.fsm.port_claims("n1")
    assert (block.kind, block.port, block.until) == ("foreign", 9000, 4.0 + FOREIGN_BLOCK_S)
    assert run.fsm.task("p") in run.fsm.fresh_pending(10)  # the scheduler judges it again
    # Foreign blocks are the scheduler's advice; the state does not refuse a plan over them.
    run(AssignTasks(at=5.0, assignments=[("p", "far")]))
    assert run.fsm.task("p").port_holds == [block]
    # A lapsed block is dropped from the task at its next placement.
    run(PortConflict(at=6.0, task_id="p", node_id="far", host_ip="127.0.0.1", port=9000, reason=reason))
    run(AssignTasks(at=7.0 + FOREIGN_BLOCK_S, assignments=[("p", "n2")]))
    assert run.fsm.task("p").port_holds == []


def test_removing_a_task_gives_up_its_claims(run: Driver) -> None:
    run(SubmitTask(at=2.0, task=web("r")))
    run(AssignTasks(at=3.0, assignments=[("r", "n1")]))
    run(StopTask(at=4.0, task_id="r"))
    releases = run.fsm.port_releases
    run(RemoveTask(at=5.0, task_id="r"))
    assert run.fsm.port_claims("n1") == [] and run.fsm.port_releases == releases + 1


def overlap(a: PortClaim, b: PortClaim) -> bool:
    return (a.port, a.protocol) == (b.port, b.protocol) and (
        a.host_ip == b.host_ip or a.host_ip in WILDCARD_IPS or b.host_ip in WILDCARD_IPS
    )


def random_port_commands(seed: int, count: int) -> list[Command]:
    rng = random.Random(seed)
    nodes = {"a1": meta("a1"), "a2": meta("a2"), "b1": meta("b1", space="e2", host_ip="0.0.0.0")}
    commands: list[Command] = [UpsertNode(at=0.0, meta=m) for m in nodes.values()]
    shadow = Driver()
    for command in commands:
        shadow(command)
    for step in range(count):
        at = 10.0 + step
        task_id = f"t{rng.randrange(count // 3 + 1)}"
        active = [t for t in shadow.fsm.tasks() if t.state in ("Scheduled", "Running")]
        if active and rng.random() < 0.6:  # aim most node reports at tasks that are placed
            task_id = rng.choice(active).id
        current = shadow.fsm.task(task_id)
        roll = rng.random()
        if roll < 0.25:
            bindings = {"80/tcp": rng.choice(["0", "8080", "8081"])}
            if rng.random() < 0.3:
                bindings["53/udp"] = rng.choice(["0", "8080"])
            command: Command = SubmitTask(
                at=at, task=Task(id=task_id, name=task_id, image="i", port_bindings=bindings)
            )
        elif roll < 0.5:
            pending = shadow.fsm.pending_tasks()
            target = rng.choice(pending) if pending and rng.random() < 0.9 else current
            target_id = target.id if target else task_id
            dynamic = {"80/tcp": rng.choice([20000, 20001, 8080]), "53/udp": rng.choice([20000, 8080])}
            command = AssignTasks(
                at=at, assignments=[(target_id, rng.choice(list(nodes)))], host_ports={target_id: dynamic}
            )
        elif roll < 0.62:
            node_id = current.node_id if current and current.node_id else rng.choice(list(nodes))
            state = rng.choice(["Running", "Running", "Failed", "Stopped", "Scheduled"])
            command = ReportTaskState(at=at, task_id=task_id, node_id=node_id, state=state)
        elif roll < 0.7:
            command = StopTask(at=at, task_id=task_id)
        elif roll < 0.78:
            node_id = current.node_id if current and current.node_id else rng.choice(list(nodes))
            port = next(iter(current.host_ports.values()), 8080) if current else 8080
            command = PortConflict(
                at=at, task_id=task_id, node_id=node_id, host_ip="127.0.0.1", port=port, reason="taken"
            )
        elif roll < 0.88:
            node_id = rng.choice(list(nodes))
            held = shadow.fsm.held_port_tasks(node_id)
            command = ReleasePorts(at=at, node_id=node_id, task_ids=held[: rng.randrange(3)] or [task_id])
        elif roll < 0.94:
            command = RescheduleNodeTasks(at=at, node_id=rng.choice(list(nodes)), reason="dead")
        elif roll < 0.97:
            command = RemoveTask(at=at, task_id=task_id, force=rng.random() < 0.5)
        else:
            status = rng.choice(["alive", "alive", "dead"])
            command = SetNodeStatus(at=at, node_id=rng.choice(list(nodes)), status=status)
        commands.append(command)
        shadow(command)
    return commands


def feed(commands: list[Command]) -> Driver:
    driver = Driver()
    for command in commands:
        driver(command)
    return driver


def brute_force_claims(fsm: ClusterState, node_id: str) -> list[tuple[str, str, int, str]]:
    """(task, kind, port, protocol) of every claim on ``node_id``, from the task records alone."""
    found = []
    for task in fsm.tasks():
        if task.state in ("Scheduled", "Running") and task.node_id == node_id:
            found += [(task.id, "task", port, cp.partition("/")[2]) for cp, port in task.host_ports.items()]
        found += [(task.id, h.kind, h.port, h.protocol) for h in task.port_holds if h.node_id == node_id]
    return sorted(found)


@pytest.mark.parametrize("seed", range(6))
def test_claims_never_collide_on_one_engine_and_replicas_agree(seed: int) -> None:
    commands = random_port_commands(seed, 500)
    a, b = feed(commands), feed(commands)
    assert a.fsm.snapshot() == b.fsm.snapshot()
    spaces: dict[str, list[PortClaim]] = {}
    for record in a.fsm.nodes():
        mine = a.fsm.port_claims(record.id)
        assert sorted((c.task_id, c.kind, c.port, c.protocol) for c in mine) == brute_force_claims(
            a.fsm, record.id
        )
        spaces.setdefault(port_space(record.meta), []).extend(c for c in mine if c.kind != "foreign")
    for space_claims in spaces.values():
        for i, first in enumerate(space_claims):
            for second in space_claims[i + 1 :]:
                assert not overlap(first, second), (first, second)
    # A replica restored from a snapshot holds the same claims and goes on identically.
    restored = ClusterState()
    restored.restore(a.fsm.snapshot())
    assert restored.snapshot() == a.fsm.snapshot()
    for record in a.fsm.nodes():
        assert restored.port_claims(record.id) == a.fsm.port_claims(record.id)
        assert restored.held_port_tasks(record.id) == a.fsm.held_port_tasks(record.id)


def test_reported_restart_times_are_kept_bounded_and_finite(run: Driver) -> None:
    spec = RestartSpec(policy="always", attempts=5, interval=60.0, mode="delay")
    run(SubmitTask(at=2.0, task=Task(id="r", name="r", image="busybox", restart=spec)))
    run(AssignTasks(at=3.0, assignments=[("r", "n1")]))
    times = [float("nan"), *(100.0 + i for i in range(100))]
    report = ReportTaskState(
        at=4.0,
        task_id="r",
        node_id="n1",
        state="Scheduled",
        reason="restart",
        restarts=1,
        restart_times=times,
    )
    task = run(report)
    assert isinstance(task, Task) and task.restart_times == [100.0 + i for i in range(36, 100)]
    # A report without restart times keeps them.
    kept = run(ReportTaskState(at=5.0, task_id="r", node_id="n1", state="Running", restarts=1))
    assert kept.restart_times == task.restart_times
    restored = ClusterState()
    restored.restore(run.fsm.snapshot())
    assert restored.task("r") == run.fsm.task("r") and restored.task("r").restart == spec


def test_the_index_finds_exactly_the_conflicts_a_scan_of_every_claim_finds() -> None:
    """The FSM checks a placement through the (port, protocol) index; a scan over every task's
    claims is the oracle, over random histories of assigns, stops, reports and removals."""
    rng = random.Random(7)
    drive = Driver()
    for n, (space, ip) in enumerate(
        [("e1", "127.0.0.1"), ("e1", "127.0.0.2"), ("e2", "127.0.0.1"), ("e1", "0.0.0.0")]
    ):
        drive(UpsertNode(meta=meta(f"n{n}", space, ip), status="alive", at=1.0))
    nodes = [f"n{n}" for n in range(4)]
    for k in range(300):
        task_id = f"t{k}"
        drive(SubmitTask(task=web(task_id, str(rng.choice([8080, 8081, 8082]))), at=2.0))
        drive(AssignTasks(assignments=[(task_id, rng.choice(nodes))], at=3.0))
        if rng.random() < 0.3:
            drive(StopTask(task_id=task_id, at=4.0))
        if rng.random() < 0.1:
            drive(RemoveTask(task_id=task_id, force=True, at=5.0))
    fsm = drive.fsm
    records = {node.id: node for node in fsm.nodes()}
    index_book = fsm._ports.placement_book(records, {t.id: t for t in fsm.tasks()})
    every_claim = [
        (port_space(records[c.node_id].meta), c)
        for node_id in records
        for c in fsm.port_claims(node_id)
        if c.kind != "foreign"
    ]
    found = 0
    for space in ("e1", "e2"):
        for ip in ("127.0.0.1", "127.0.0.2", "0.0.0.0"):
            for port in (8080, 8081, 8082, 9999):
                expected = any(
                    s == space
                    and c.port == port
                    and c.protocol == "tcp"
                    and (c.host_ip == ip or c.host_ip in WILDCARD_IPS or ip in WILDCARD_IPS)
                    for s, c in every_claim
                )
                assert (index_book.conflict(space, ip, port, "tcp") is not None) == expected, (
                    space,
                    ip,
                    port,
                )
                found += expected
    assert 0 < found < 24, found  # some ports are taken and some are free: the oracle is not vacuous
