"""The cluster state machine: every command, stale inputs, accounting, snapshots, determinism."""

from __future__ import annotations

import random
from pathlib import Path

import duckdb
import msgspec
import pytest

from orion.fsm.commands import (
    AssignTasks,
    CollectGarbage,
    Command,
    CommandError,
    Refusal,
    RemoveNode,
    RemoveTask,
    ReportTaskState,
    ReportTaskStates,
    RescheduleNodeTasks,
    SetNodeStatus,
    SetPending,
    StopTask,
    SubmitTask,
    TaskReport,
    UpsertNode,
    decode_command,
    encode_command,
)
from orion.fsm.results import ReportResults
from orion.fsm.state import MAX_HISTORY, AssignResult, ClusterState, TaskIds
from orion.fsm.tables import NodeRecord
from orion.model import NodeMeta, Task, TaskState
from orion.raft.duckdb_store import DuckDBStore
from orion.raft.types import Entry, HardState, Membership, Snapshot, SnapshotMeta

GiB = 1 << 30


class Driver:
    """Feeds commands to a ClusterState as committed entries with increasing indexes."""

    def __init__(self) -> None:
        self.fsm = ClusterState()
        self.index = 0
        self.log: list[bytes] = []

    def __call__(self, command: Command) -> object:
        data = encode_command(command)
        self.log.append(data)
        self.index += 1
        return self.fsm.apply(self.index, data)


def task(task_id: str, memory: int = GiB, cpu: float = 0.5, disk: int = 0, **fields: object) -> Task:
    return Task(
        id=task_id, name=f"name-{task_id}", image="busybox", memory=memory, cpu=cpu, disk=disk, **fields
    )


def node(node_id: str, version: int = 1, **fields: object) -> NodeMeta:
    return NodeMeta(id=node_id, memory_total=16 * GiB, cpu_total=4.0, version=version, **fields)


@pytest.fixture
def run() -> Driver:
    driver = Driver()
    driver(UpsertNode(at=1.0, meta=node("n1")))
    driver(UpsertNode(at=1.0, meta=node("n2")))
    return driver


def test_command_encoding_round_trips() -> None:
    commands: list[Command] = [
        SubmitTask(at=1.5, task=task("t1", env={"A": "1"}, port_bindings={"80/tcp": "8080"})),
        StopTask(at=2.0, task_id="t1"),
        AssignTasks(at=3.0, assignments=[("t1", "n1"), ("t2", "n2")]),
        SetPending(at=3.0, task_ids=["t3"], reason="0/2 nodes fit"),
        ReportTaskState(
            at=4.0, task_id="t1", node_id="n1", state=TaskState.FAILED, exit_code=137, restarts=3
        ),
        RescheduleNodeTasks(at=5.0, node_id="n1", reason="node n1 is dead"),
        UpsertNode(at=6.0, meta=node("n3", tags={"zone": "a"}), status="suspect"),
        SetNodeStatus(at=7.0, node_id="n3", status="dead"),
        RemoveNode(at=8.0, node_id="n3"),
        RemoveTask(at=9.0, task_id="t1", force=True),
        CollectGarbage(at=10.0, before=5.0, max_tasks=100),
    ]
    for command in commands:
        assert decode_command(encode_command(command)) == command


def test_submit_creates_a_pending_task(run: Driver) -> None:
    created = run(SubmitTask(at=10.0, task=task("t1", state="Running", node_id="n9")))
    assert isinstance(created, Task)
    assert (created.state, created.node_id, created.created_at, created.desired) == (
        "Pending",
        "",
        10.0,
        "run",
    )
    assert run.fsm.task("t1") == created
    assert run.fsm.task_by_name("name-t1") == created
    assert run.fsm.pending_tasks() == [created]
    assert [e.state for e in created.history] == ["Pending"]


def test_submit_is_idempotent_on_the_task_id(run: Driver) -> None:
    first = run(SubmitTask(at=10.0, task=task("t1")))
    again = run(SubmitTask(at=11.0, task=task("t1", memory=5)))
    assert again == first
    assert len(run.fsm.tasks()) == 1


def test_submit_refuses_invalid_tasks(run: Driver) -> None:
    assert isinstance(run(SubmitTask(at=1.0, task=task("t1", memory=-1))), CommandError)
    assert isinstance(run(SubmitTask(at=1.0, task=task("t1", cpu=float("nan")))), CommandError)
    assert isinstance(run(SubmitTask(at=1.0, task=task("t1", cpu=float("inf")))), CommandError)
    assert isinstance(run(SubmitTask(at=1.0, task=Task(id="", name="x", image="busybox"))), CommandError)
    assert run.fsm.tasks() == []


def test_assign_then_reports_then_stop(run: Driver) -> None:
    run(SubmitTask(at=1.0, task=task("t1", memory=2 * GiB, cpu=1.5, disk=10)))
    result = run(AssignTasks(at=2.0, assignments=[("t1", "n1")]))
    assert result == AssignResult(assigned=["t1"], skipped=[])
    scheduled = run.fsm.task("t1")
    assert scheduled is not None and (scheduled.state, scheduled.node_id) == ("Scheduled", "n1")
    assert run.fsm.pending_tasks() == []
    assert run.fsm.allocated("n1") == (2 * GiB, 1.5, 10)
    assert run.fsm.tasks_on_node("n1") == [scheduled]

    running = run(ReportTaskState(at=3.0, task_id="t1", node_id="n1", state=TaskState.RUNNING))
    assert isinstance(running, Task) and running.state == "Running"
    assert run.fsm.allocated("n1") == (2 * GiB, 1.5, 10)
    # The same report again changes nothing (no new history line).
    assert run(ReportTaskState(at=3.5, task_id="t1", node_id="n1", state=TaskState.RUNNING)) == running

    stopped = run(StopTask(at=4.0, task_id="t1"))
    assert isinstance(stopped, Task)
    assert (stopped.state, stopped.desired, stopped.node_id) == ("Stopped", "stop", "n1")
    assert run.fsm.allocated("n1") == (0, 0.0, 0)
    assert [e.state for e in stopped.history] == ["Pending", "Scheduled", "Running", "Stopped"]
    # Stopping again is idempotent; a late report from the node does not revive it.
    assert run(StopTask(at=5.0, task_id="t1")) == stopped
    assert isinstance(run(ReportTaskState(at=6.0, task_id="t1", node_id="n1", state="Running")), CommandError)
    assert run.fsm.task("t1") == stopped


def test_stop_unknown_task_is_an_error_value(run: Driver) -> None:
    result = run(StopTask(at=1.0, task_id="nope"))
    assert result == CommandError(Refusal.NOT_FOUND, "no task with id nope")


def test_failed_report_frees_resources(run: Driver) -> None:
    run(SubmitTask(at=1.0, task=task("t1")))
    run(AssignTasks(at=2.0, assignments=[("t1", "n2")]))
    failed = run(
        ReportTaskState(
            at=3.0, task_id="t1", node_id="n2", state="Failed", reason="exit 1", exit_code=1, restarts=5
        )
    )
    assert isinstance(failed, Task)
    assert (failed.state, failed.exit_code, failed.restarts, failed.reason) == ("Failed", 1, 5, "exit 1")
    assert run.fsm.allocated("n2") == (0, 0.0, 0)


def test_stale_assignments_are_skipped(run: Driver) -> None:
    run(SubmitTask(at=1.0, task=task("t1")))
    run(SubmitTask(at=1.0, task=task("t2")))
    run(AssignTasks(at=2.0, assignments=[("t1", "n1")]))
    run(SetNodeStatus(at=2.0, node_id="n2", status="dead"))
    # t1 is no longer Pending, n2 is dead, t9 and n9 do not exist.
    result = run(AssignTasks(at=3.0, assignments=[("t1", "n2"), ("t2", "n2"), ("t9", "n1"), ("t2", "n9")]))
    assert result == AssignResult(assigned=[], skipped=["t1", "t2", "t9", "t2"])
    t1 = run.fsm.task("t1")
    assert t1 is not None and t1.node_id == "n1"
    assert run.fsm.allocated("n2") == (0, 0.0, 0)


def test_stale_reports_are_ignored(run: Driver) -> None:
    run(SubmitTask(at=1.0, task=task("t1")))
    run(AssignTasks(at=2.0, assignments=[("t1", "n1")]))
    run(RescheduleNodeTasks(at=3.0, node_id="n1", reason="node n1 is dead"))
    run(AssignTasks(at=4.0, assignments=[("t1", "n2")]))
    before = run.fsm.task("t1")
    # n1 comes back and reports the container it still had.
    stale = run(ReportTaskState(at=5.0, task_id="t1", node_id="n1", state="Running"))
    assert isinstance(stale, CommandError) and "stale report" in stale.message
    assert run.fsm.task("t1") == before
    assert run.fsm.allocated("n1") == (0, 0.0, 0)
    assert run.fsm.allocated("n2") == (GiB, 0.5, 0)
    # A node may not report Pending (only the leader moves a task back to Pending).
    assert isinstance(run(ReportTaskState(at=6.0, task_id="t1", node_id="n2", state="Pending")), CommandError)


def test_a_batch_of_reports_applies_each_as_a_single_report_would(run: Driver) -> None:
    for task_id in ("t1", "t2", "t3"):
        run(SubmitTask(at=1.0, task=task(task_id)))
    run(AssignTasks(at=2.0, assignments=[("t1", "n1"), ("t2", "n1"), ("t3", "n2")]))
    single = Driver()
    for command in commands_of(run):
        single(command)
    batch = ReportTaskStates(
        at=3.0,
        node_id="n1",
        reports=[
            TaskReport("t1", TaskState.RUNNING),
            TaskReport("t3", TaskState.RUNNING),  # on n2: stale
            TaskReport("t9", TaskState.RUNNING),  # no such task
            TaskReport("t2", TaskState.FAILED, reason="exit 1", exit_code=1, restarts=2),
            TaskReport("t1", TaskState.PENDING),  # not a state a node reports
        ],
    )
    result = run(batch)
    assert isinstance(result, ReportResults)
    refused = result.refusals()
    assert sorted(refused) == [1, 2, 4]
    assert refused[1][0] == "invalid" and "stale report for task t3 from n1: it is on n2" in refused[1][1]
    assert refused[2] == ("not_found", "no task with id t9")
    assert "cannot report state Pending" in refused[4][1]
    # The same as the reports one entry each, item for item.
    for item in batch.reports:
        single(ReportTaskState(at=3.0, node_id="n1", **msgspec.structs.asdict(item)))
    for task_id in ("t1", "t2", "t3"):
        assert run.fsm.task(task_id) == single.fsm.task(task_id)
    assert run.fsm.allocated("n1") == single.fsm.allocated("n1") == (GiB, 0.5, 0)
    assert run.fsm.task("t2").state == TaskState.FAILED and run.fsm.task("t1").state == TaskState.RUNNING


def commands_of(driver: Driver) -> list[Command]:
    return [decode_command(data) for data in driver.log]


def test_set_pending_updates_the_reason_only_when_it_changes(run: Driver) -> None:
    run(SubmitTask(at=1.0, task=task("t1")))
    run(SubmitTask(at=1.0, task=task("t2")))
    run(AssignTasks(at=2.0, assignments=[("t2", "n1")]))
    reason = "0/2 nodes fit: 2 insufficient memory"
    assert run(SetPending(at=3.0, task_ids=["t1", "t2"], reason=reason)) == TaskIds(["t1"])
    assert run(SetPending(at=4.0, task_ids=["t1"], reason=reason)) == TaskIds([])
    t1 = run.fsm.task("t1")
    assert t1 is not None and t1.reason == reason and t1.updated_at == 3.0
    t2 = run.fsm.task("t2")
    assert t2 is not None and t2.state == "Scheduled" and t2.reason == ""


def test_reschedule_node_tasks(run: Driver) -> None:
    for i in range(3):
        run(SubmitTask(at=1.0, task=task(f"t{i}")))
    run(AssignTasks(at=2.0, assignments=[("t0", "n1"), ("t1", "n1"), ("t2", "n2")]))
    run(ReportTaskState(at=3.0, task_id="t1", node_id="n1", state="Running"))
    run(StopTask(at=3.0, task_id="t0"))
    moved = run(RescheduleNodeTasks(at=4.0, node_id="n1", reason="node n1 is dead"))
    assert moved == TaskIds(["t1"])
    t1 = run.fsm.task("t1")
    assert t1 is not None and (t1.state, t1.node_id, t1.reason) == ("Pending", "", "node n1 is dead")
    assert run.fsm.allocated("n1") == (0, 0.0, 0)
    assert [t.id for t in run.fsm.pending_tasks()] == ["t1"]
    assert [t.id for t in run.fsm.tasks_on_node("n1")] == ["t0"]  # the stopped one, for cleanup


def test_nodes_table(run: Driver) -> None:
    assert [n.id for n in run.fsm.nodes()] == ["n1", "n2"]
    newer = run(UpsertNode(at=2.0, meta=node("n1", version=5, tags={"zone": "b"}), status="alive"))
    assert isinstance(newer, NodeRecord) and newer.meta.tags == {"zone": "b"}
    # An older meta delivered late keeps the newer one, but the status is updated.
    late = run(UpsertNode(at=3.0, meta=node("n1", version=2), status="suspect"))
    assert isinstance(late, NodeRecord) and late.meta.version == 5 and late.status == "suspect"
    status = run(SetNodeStatus(at=4.0, node_id="n1", status="left"))
    assert isinstance(status, NodeRecord) and status.status == "left"
    assert isinstance(run(SetNodeStatus(at=4.0, node_id="zz", status="dead")), CommandError)
    assert isinstance(run(RemoveNode(at=5.0, node_id="n1")), NodeRecord)
    assert isinstance(run(RemoveNode(at=5.0, node_id="n1")), CommandError)
    assert [n.id for n in run.fsm.nodes()] == ["n2"]


def test_history_is_capped(run: Driver) -> None:
    run(SubmitTask(at=0.0, task=task("t1")))
    run(AssignTasks(at=0.0, assignments=[("t1", "n1")]))
    for i in range(50):
        run(ReportTaskState(at=float(i), task_id="t1", node_id="n1", state="Running", restarts=i))
    t1 = run.fsm.task("t1")
    assert t1 is not None and len(t1.history) == MAX_HISTORY
    assert t1.history[-1].at == 49.0


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe garbage",
        msgspec.msgpack.encode({"op": "launch_missiles", "at": 1.0}),
        msgspec.msgpack.encode({"op": "stop", "at": "yesterday", "task_id": "t1"}),
        msgspec.msgpack.encode({"op": "node_status", "at": 1.0, "node_id": "n1", "status": "sleepy"}),
        b"\x91" * (2 << 20),
    ],
)
def test_garbage_command_is_an_error_value_and_changes_nothing(run: Driver, data: bytes) -> None:
    run(SubmitTask(at=1.0, task=task("t1")))
    tasks, nodes = run.fsm.tasks(), run.fsm.nodes()
    result = run.fsm.apply(run.index + 1, data)
    assert isinstance(result, CommandError)
    assert run.fsm.tasks() == tasks and run.fsm.nodes() == nodes
    assert run.fsm.applied_index == run.index + 1  # the entry is applied, as a no-op


def test_already_applied_index_is_refused(run: Driver) -> None:
    result = run.fsm.apply(1, encode_command(RemoveNode(at=1.0, node_id="n1")))
    assert isinstance(result, CommandError) and "already applied" in result.message
    assert run.fsm.node("n1") is not None


def random_commands(seed: int, count: int) -> list[Command]:
    """A plausible stream of commands with stale and invalid ones mixed in."""
    rng = random.Random(seed)
    nodes = [f"n{i}" for i in range(4)]
    commands: list[Command] = [UpsertNode(at=0.0, meta=node(n), status="alive") for n in nodes]
    shadow = feed(commands)  # to aim most commands at what is really there
    for step in range(count):
        if len(commands) > len(shadow.log):
            shadow(commands[-1])
        at = 100.0 + step * 0.25
        task_id = f"t{rng.randrange(count // 2 + 1)}"
        roll = rng.random()
        if roll < 0.3:
            commands.append(
                SubmitTask(
                    at=at,
                    task=task(
                        task_id,
                        memory=rng.randrange(1, 4) * GiB,
                        cpu=rng.choice([0.1, 0.25, 1.0]),
                        command=rng.choice([None, ["sleep", "60"]]),
                        env={"K": str(step)},
                    ),
                )
            )
        elif roll < 0.5:
            pending = shadow.fsm.pending_tasks()
            if pending and rng.random() < 0.8:
                task_id = rng.choice(pending).id
            commands.append(AssignTasks(at=at, assignments=[(task_id, rng.choice(nodes))]))
        elif roll < 0.7:
            state = rng.choice([TaskState.RUNNING, TaskState.RUNNING, TaskState.FAILED, TaskState.SCHEDULED])
            current = shadow.fsm.task(task_id)
            node_id = current.node_id if current and rng.random() < 0.7 else rng.choice(nodes)
            if rng.random() < 0.3:  # a pass's reports in one entry, a stale or repeated one among them
                others = [rng.choice(shadow.fsm.tasks_on_node(node_id) or [current or task(task_id)]).id]
                items = [TaskReport(t, state, restarts=rng.randrange(3)) for t in [task_id, *others]]
                commands.append(ReportTaskStates(at=at, node_id=node_id, reports=items))
            else:
                commands.append(
                    ReportTaskState(
                        at=at, task_id=task_id, node_id=node_id, state=state, restarts=rng.randrange(3)
                    )
                )
        elif roll < 0.78:
            commands.append(StopTask(at=at, task_id=task_id))
        elif roll < 0.84:
            commands.append(SetPending(at=at, task_ids=[task_id], reason=f"0/4 nodes fit ({step % 3})"))
        elif roll < 0.86:
            commands.append(RescheduleNodeTasks(at=at, node_id=rng.choice(nodes), reason="dead"))
        elif roll < 0.88:
            commands.append(RemoveTask(at=at, task_id=task_id, force=rng.random() < 0.3))
        elif roll < 0.9:
            # Collect what ended more than 5-30 s (20-120 steps) ago, a few at a time.
            before = at - rng.choice([5.0, 30.0])
            commands.append(CollectGarbage(at=at, before=before, max_tasks=rng.choice([1, 3, 100])))
        else:
            status = rng.choice(["alive", "alive", "alive", "suspect", "dead"])
            commands.append(SetNodeStatus(at=at, node_id=rng.choice(nodes), status=status))
    return commands


def feed(commands: list[Command]) -> Driver:
    driver = Driver()
    for command in commands:
        driver(command)
    return driver


def expected_allocation(fsm: ClusterState, node_id: str) -> tuple[int, float, int]:
    active = [t for t in fsm.tasks() if t.node_id == node_id and t.state in ("Scheduled", "Running")]
    return (
        sum(t.memory for t in active),
        sum(round(t.cpu * 1000) for t in active) / 1000,
        sum(t.disk for t in active),
    )


@pytest.mark.parametrize("seed", range(5))
def test_replicas_are_deterministic_and_accounting_is_exact(seed: int) -> None:
    commands = random_commands(seed, 400)
    a, b = feed(commands), feed(commands)
    assert a.fsm.snapshot() == b.fsm.snapshot()
    for n in ("n0", "n1", "n2", "n3"):
        assert a.fsm.allocated(n) == expected_allocation(a.fsm, n)
    pending = {t.id for t in a.fsm.tasks() if t.state == "Pending" and t.desired == "run"}
    assert {t.id for t in a.fsm.pending_tasks()} == pending


@pytest.mark.parametrize("seed", range(3))
def test_snapshot_restore_round_trip(seed: int) -> None:
    commands = random_commands(seed, 300)
    driver = feed(commands[:200])
    data = driver.fsm.snapshot()
    restored = ClusterState()
    restored.restore(data)
    assert restored.snapshot() == data
    assert restored.tasks() == driver.fsm.tasks()
    assert restored.nodes() == driver.fsm.nodes()
    assert restored.applied_index == driver.fsm.applied_index
    for n in ("n0", "n1", "n2", "n3"):
        assert restored.allocated(n) == driver.fsm.allocated(n)
    assert [t.id for t in restored.pending_tasks()] == [t.id for t in driver.fsm.pending_tasks()]
    # The restored replica then applies the rest exactly like the original.
    for offset, command in enumerate(commands[200:], start=1):
        data_i = encode_command(command)
        assert restored.apply(driver.index + offset, data_i) == driver.fsm.apply(
            driver.index + offset, data_i
        )
    assert restored.snapshot() == driver.fsm.snapshot()


def test_restore_refuses_bad_data_and_keeps_state(run: Driver) -> None:
    run(SubmitTask(at=1.0, task=task("t1")))
    before = run.fsm.snapshot()
    with pytest.raises(ValueError, match="cannot restore"):
        run.fsm.restore(b"not a snapshot")
    assert run.fsm.snapshot() == before


def test_fsm_snapshot_round_trips_through_the_duckdb_store(tmp_path: Path) -> None:
    driver = feed(random_commands(11, 300))
    data = driver.fsm.snapshot()
    path = tmp_path / "raft.duckdb"
    store = DuckDBStore(path)
    store.load()
    store.save(
        HardState(term=1, commit=driver.index), [Entry(i, 1, 0, d) for i, d in enumerate(driver.log, 1)]
    )
    snapshot = Snapshot(SnapshotMeta(driver.index, 1, Membership(voters={"n1": "127.0.0.1:7100"})), data)
    store.save_snapshot(snapshot)
    store.close()
    store = DuckDBStore(path)
    state = store.load()
    store.close()
    con = duckdb.connect(str(path), read_only=True)  # as an operator would, on a stopped node
    tasks_in_sql = con.execute("select count(*) from snap_tasks").fetchone()
    con.close()
    assert state.snapshot == snapshot  # byte-identical data
    assert tasks_in_sql == (len(driver.fsm.tasks()),)
    restored = ClusterState()
    restored.restore(state.snapshot.data)
    assert restored.tasks() == driver.fsm.tasks()
