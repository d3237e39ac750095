"""A late duplicate cannot bring back what was removed: the cluster state remembers removed task
ids and services for a while (orion/fsm/tombstones.py), in snapshots too, and forgets them
as the commands' times move past the window or the count bound."""

from __future__ import annotations

from pathlib import Path

import duckdb
import msgspec
import pytest

from orion.fsm import tombstones
from orion.fsm.commands import (
    AssignTasks,
    CollectGarbage,
    Command,
    CommandError,
    CreateService,
    Refusal,
    RemoveService,
    RemoveTask,
    ReportTaskState,
    ScaleService,
    ServiceStep,
    SetPending,
    StopTask,
    SubmitTask,
    UpdateService,
    UpsertNode,
    encode_command,
)
from orion.fsm.snapshot import decode_snapshot
from orion.fsm.state import ClusterState
from orion.fsm.tombstones import TOMBSTONE_RETENTION_S, ServiceTombstone
from orion.model import NodeMeta, Task, TaskState
from orion.raft.duckdb_store import DuckDBStore
from orion.raft.tabular import decode_tabular_snapshot
from orion.raft.types import Entry, HardState, Membership, Snapshot, SnapshotMeta, TabularSnapshot
from orion.services.spec import Service, ServiceSpec, TaskTemplate, slot_name


class Driver:
    """Feeds commands to a ClusterState as committed entries with increasing indexes."""

    def __init__(self) -> None:
        self.fsm = ClusterState()
        self.index = 0

    def __call__(self, command: Command) -> object:
        self.index += 1
        return self.fsm.apply(self.index, encode_command(command))


@pytest.fixture
def run() -> Driver:
    driver = Driver()
    driver(UpsertNode(at=1.0, meta=NodeMeta(id="n1", memory_total=1 << 34, cpu_total=4.0)))
    return driver


def submit(task_id: str, at: float) -> SubmitTask:
    return SubmitTask(at=at, task=Task(id=task_id, name=task_id, image="busybox"))


def spec(name: str = "web", replicas: int = 2) -> ServiceSpec:
    return ServiceSpec(name=name, template=TaskTemplate(image="web:1"), replicas=replicas)


def refusal(result: object) -> tuple[Refusal, str]:
    assert isinstance(result, CommandError), result
    return result.code, result.message


def removed_task(run: Driver, task_id: str, at: float) -> None:
    """``task_id`` submitted, stopped and removed (``orion task rm``) at ``at``."""
    run(submit(task_id, at - 2))
    run(StopTask(at=at - 1, task_id=task_id))
    assert isinstance(run(RemoveTask(at=at, task_id=task_id)), Task)


# -- tasks -------------------------------------------------------------------------------------


def test_a_late_submit_after_rm_is_refused(run: Driver) -> None:
    removed_task(run, "x", at=4.0)
    code, message = refusal(run(submit("x", at=2.0)))  # the first attempt, parked until now
    assert code == Refusal.CONFLICT
    assert message == "task x was removed at 1970-01-01T00:00:04Z; choose a new id"
    assert run.fsm.task("x") is None and run.fsm.tasks() == []
    assert isinstance(run(submit("y", at=5.0)), Task)  # other ids are not affected


def test_a_late_submit_after_a_forced_rm_of_a_running_task_is_refused(run: Driver) -> None:
    run(submit("x", at=2.0))
    run(AssignTasks(at=3.0, assignments=[("x", "n1")]))
    run(ReportTaskState(at=4.0, task_id="x", node_id="n1", state=TaskState.RUNNING))
    assert isinstance(run(RemoveTask(at=5.0, task_id="x", force=True)), Task)
    assert refusal(run(submit("x", at=2.0)))[0] == Refusal.CONFLICT
    assert run.fsm.task("x") is None and run.fsm.allocated("n1") == (0, 0.0, 0)


def test_a_late_submit_after_garbage_collection_is_refused(run: Driver) -> None:
    run(submit("x", at=2.0))
    run(StopTask(at=3.0, task_id="x"))
    assert run(CollectGarbage(at=100.0, before=50.0)).task_ids == ["x"]  # type: ignore[attr-defined]
    code, message = refusal(run(submit("x", at=2.0)))
    assert code == Refusal.CONFLICT and message.startswith("task x was removed at 1970-01-01T00:01:40Z")
    assert run.fsm.task("x") is None


def test_a_retry_while_the_task_lives_still_returns_it(run: Driver) -> None:
    first = run(submit("x", at=2.0))
    assert isinstance(first, Task) and run(submit("x", at=3.0)) == first


def test_service_tasks_leave_no_task_tombstone(run: Driver) -> None:
    """Their ids come from the controller's versioned steps, not from client submits: they
    must not crowd the bounded tombstones of one-off tasks out."""
    service = run(CreateService(at=2.0, spec=spec(replicas=1)))
    assert isinstance(service, Service)
    task = Task(id="w1", name=slot_name("web", 1), image="web:1", service="web", slot=1, version=1)
    run(ServiceStep(at=3.0, name="web", expected_version=service.version, add=[task]))
    run(RemoveService(at=4.0, name="web"))
    run(CollectGarbage(at=100.0, before=50.0))
    assert run.fsm.task("w1") is None
    assert run.fsm.snapshot_source().tombstones.task_removed_at == {}


# -- services ----------------------------------------------------------------------------------


def test_a_late_create_after_service_rm_is_refused(run: Driver) -> None:
    assert isinstance(run(CreateService(at=2.0, spec=spec(), request_id="r1")), Service)
    assert run(CreateService(at=2.5, spec=spec(), request_id="r1")) == run.fsm.service("web")  # a retry
    run(RemoveService(at=3.0, name="web"))
    code, message = refusal(run(CreateService(at=2.0, spec=spec(), request_id="r1")))
    assert code == Refusal.CONFLICT
    assert message == (
        "service web was removed at 1970-01-01T00:00:03Z; this is a late retry of the create that made it"
    )
    assert run.fsm.service("web") is None


def test_a_late_create_is_refused_even_after_the_name_was_used_again(run: Driver) -> None:
    run(CreateService(at=2.0, spec=spec(), request_id="r1"))
    run(RemoveService(at=3.0, name="web"))
    run(CreateService(at=4.0, spec=spec(replicas=5), request_id="r2"))
    run(RemoveService(at=5.0, name="web"))
    assert refusal(run(CreateService(at=2.0, spec=spec(), request_id="r1")))[0] == Refusal.CONFLICT
    assert refusal(run(CreateService(at=4.0, spec=spec(replicas=5), request_id="r2")))[0] == Refusal.CONFLICT
    assert run.fsm.service("web") is None


def test_a_create_without_request_id_behaves_as_before(run: Driver) -> None:
    run(CreateService(at=2.0, spec=spec()))
    run(RemoveService(at=3.0, name="web"))
    again = run(CreateService(at=4.0, spec=spec()))
    assert isinstance(again, Service) and again.version == 2  # made again, versions go on


def test_versions_go_on_after_a_removed_service(run: Driver) -> None:
    run(CreateService(at=2.0, spec=spec(), request_id="r1"))
    old = run(ScaleService(at=3.0, name="web", replicas=3))
    assert isinstance(old, Service) and old.version == 2
    run(RemoveService(at=4.0, name="web", expected_version=old.version))
    new = run(CreateService(at=5.0, spec=spec(), request_id="r2"))
    assert isinstance(new, Service) and (new.version, new.template_version) == (3, 3)
    # A client that read the old service at version 2 can change nothing of the new one.
    assert (
        refusal(run(ScaleService(at=6.0, name="web", replicas=9, expected_version=2)))[0] == Refusal.CONFLICT
    )
    stale_update = UpdateService(at=6.0, spec=spec(replicas=7), expected_version=2)
    assert refusal(run(stale_update))[0] == Refusal.CONFLICT
    assert refusal(run(RemoveService(at=6.0, name="web", expected_version=2)))[0] == Refusal.CONFLICT
    assert run.fsm.service("web") == new
    # Its own version works, and the controller's steps name it.
    task = Task(id="w1", name=slot_name("web", 1), image="web:1", service="web", slot=1, version=3)
    assert run(ServiceStep(at=7.0, name="web", expected_version=3, add=[task])) == new
    assert run(ScaleService(at=8.0, name="web", replicas=1, expected_version=3)).version == 4  # type: ignore[union-attr]


# -- forgetting ----------------------------------------------------------------------------------


def test_tombstones_expire_as_the_commands_time_moves_on(run: Driver) -> None:
    removed_task(run, "x", at=10.0)
    run(CreateService(at=10.0, spec=spec(), request_id="r1"))
    run(RemoveService(at=10.0, name="web"))
    run(SetPending(at=10.0 + TOMBSTONE_RETENTION_S - 1, task_ids=[], reason=""))
    assert refusal(run(submit("x", at=9.0)))[0] == Refusal.CONFLICT  # not yet
    # Any command moves the time: a late command stamped earlier expires nothing.
    run(SetPending(at=5.0, task_ids=[], reason=""))
    assert refusal(run(submit("x", at=9.0)))[0] == Refusal.CONFLICT
    run(SetPending(at=10.0 + TOMBSTONE_RETENTION_S, task_ids=[], reason=""))
    assert run.fsm.snapshot_source().tombstones == tombstones.TombstoneSource()
    assert isinstance(run(submit("x", at=9.0)), Task)  # the id is free again
    again = run(CreateService(at=9.0, spec=spec(), request_id="r1"))
    assert isinstance(again, Service) and again.version == 1


def test_task_tombstones_are_bounded_oldest_first(run: Driver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tombstones, "MAX_TASK_TOMBSTONES", 3)
    for n in range(5):
        removed_task(run, f"t{n}", at=10.0 + n)
    assert list(run.fsm.snapshot_source().tombstones.task_removed_at) == ["t2", "t3", "t4"]
    assert isinstance(run(submit("t0", at=20.0)), Task)
    assert isinstance(run(submit("t1", at=20.0)), Task)
    for n in (2, 3, 4):
        assert refusal(run(submit(f"t{n}", at=20.0)))[0] == Refusal.CONFLICT


def test_service_tombstones_are_bounded_oldest_first(run: Driver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tombstones, "MAX_SERVICE_TOMBSTONES", 2)
    for n in range(3):
        run(CreateService(at=2.0 + n, spec=spec(f"s{n}"), request_id=f"r{n}"))
        run(RemoveService(at=2.5 + n, name=f"s{n}"))
    kept = run.fsm.snapshot_source().tombstones.services
    assert [t.name for t in kept] == ["s1", "s2"]
    assert isinstance(run(CreateService(at=9.0, spec=spec("s0"), request_id="r0")), Service)
    assert refusal(run(CreateService(at=9.0, spec=spec("s1"), request_id="r1")))[0] == Refusal.CONFLICT


# -- snapshots -----------------------------------------------------------------------------------


def remembering(run: Driver) -> ClusterState:
    """A state that remembers a removed task, a removed service and a live service's creator."""
    removed_task(run, "x", at=4.0)
    run(CreateService(at=5.0, spec=spec(), request_id="r1"))
    run(ScaleService(at=5.5, name="web", replicas=3))
    run(RemoveService(at=6.0, name="web"))
    run(CreateService(at=7.0, spec=spec("api"), request_id="r2"))
    return run.fsm


def test_tombstones_survive_a_snapshot_round_trip(run: Driver) -> None:
    state = remembering(run)
    data = state.snapshot()
    restored = ClusterState()
    restored.restore(data)
    assert restored.snapshot() == data
    source = restored.snapshot_source().tombstones
    assert source.task_removed_at == {"x": 4.0}
    assert source.services == [ServiceTombstone(name="web", version=2, request_id="r1", removed_at=6.0)]
    assert source.creators == {"api": "r2"}
    following = Driver()
    following.fsm, following.index = restored, restored.applied_index
    assert refusal(following(submit("x", at=2.0)))[0] == Refusal.CONFLICT
    assert refusal(following(CreateService(at=5.0, spec=spec(), request_id="r1")))[0] == Refusal.CONFLICT
    following(RemoveService(at=8.0, name="api"))  # its creator's id goes into its tombstone
    assert refusal(following(CreateService(at=7.0, spec=spec("api"), request_id="r2")))[0] == Refusal.CONFLICT
    assert following(CreateService(at=9.0, spec=spec(), request_id="r3")).version == 3  # type: ignore[union-attr]


def without_tombstone_tables(data: bytes) -> bytes:
    tables = dict(decode_tabular_snapshot(data).tables)
    del tables["tombstones"], tables["service_creators"]
    return msgspec.msgpack.encode(TabularSnapshot(tables=tables))


def test_a_snapshot_from_before_tombstones_loads(run: Driver) -> None:
    state = remembering(run)
    restored = ClusterState()
    restored.restore(without_tombstone_tables(state.snapshot()))
    assert restored.tasks() == state.tasks() and restored.services() == state.services()
    assert restored.snapshot_source().tombstones == tombstones.TombstoneSource()
    assert decode_snapshot(restored.snapshot()).tombstones == tombstones.TombstoneSource()


def test_a_malformed_tombstone_row_is_refused_and_changes_nothing(run: Driver) -> None:
    state = remembering(run)
    tables = dict(decode_tabular_snapshot(state.snapshot()).tables)
    bad = tables["tombstones"]
    tables["tombstones"] = msgspec.structs.replace(bad, rows=[["ghost", "x", 1.0, 0, ""]])
    before = state.snapshot()
    with pytest.raises(ValueError, match=r"tombstones: bad row \['ghost'"):
        state.restore(msgspec.msgpack.encode(TabularSnapshot(tables=tables)))
    assert state.snapshot() == before


def test_the_tombstones_table_goes_through_the_duckdb_store(run: Driver, tmp_path: Path) -> None:
    state = remembering(run)
    data = state.snapshot()
    path = tmp_path / "raft.duckdb"
    store = DuckDBStore(path)
    store.load()
    store.save(HardState(term=1, commit=1), [Entry(1, 1, 0, encode_command(submit("y", 1.0)))])
    store.save_snapshot(Snapshot(SnapshotMeta(1, 1, Membership(voters={"n1": "127.0.0.1:7100"})), data))
    store.close()
    store = DuckDBStore(path)
    loaded = store.load().snapshot
    store.close()
    assert loaded is not None and loaded.data == data
    con = duckdb.connect(str(path), read_only=True)
    rows = con.execute("select kind, key, removed_at, version, request_id from snap_tombstones").fetchall()
    con.close()
    assert rows == [("task", "x", 4.0, 0, ""), ("service", "web", 6.0, 2, "r1")]
