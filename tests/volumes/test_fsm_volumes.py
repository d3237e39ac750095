"""The volumes table of the FSM: create, rm refused while in use, binding, single writer,
reports from the node (lost stays lost), snapshots."""

from __future__ import annotations

import itertools

from orion.fsm.commands import (
    AssignTasks,
    Command,
    CommandError,
    CreateService,
    CreateVolume,
    PurgeVolume,
    RemoveVolume,
    ReportVolume,
    StopTask,
    SubmitTask,
    UpsertNode,
    encode_command,
)
from orion.fsm.state import ClusterState
from orion.model import NodeMeta, Task, VolumeMount
from orion.services.spec import ServiceSpec, TaskTemplate
from orion.volumes.spec import Volume, VolumeSpec


class Cluster:
    def __init__(self) -> None:
        self.fsm = ClusterState()
        self.index = itertools.count(1)
        for node in ("n1", "n2"):
            self.do(UpsertNode(meta=NodeMeta(id=node, memory_total=1 << 30, cpu_total=2.0), at=1.0))

    def do(self, command: Command) -> object:
        return self.fsm.apply(next(self.index), encode_command(command))

    def volume(self, name: str = "data", **spec: object) -> object:
        return self.do(
            CreateVolume(
                volume=Volume(name=name, uid=f"uid-{name}", spec=VolumeSpec(name=name, **spec)), at=2.0
            )
        )  # type: ignore[arg-type]

    def submit(self, task_id: str, volume: str = "data", read_only: bool = False) -> object:
        mount = VolumeMount(volume=volume, target="/data", read_only=read_only)
        return self.do(
            SubmitTask(task=Task(id=task_id, name=task_id, image="busybox", volumes=[mount]), at=3.0)
        )


def test_a_task_may_mount_only_a_volume_that_exists() -> None:
    cluster = Cluster()
    result = cluster.submit("t1", volume="nope")
    assert isinstance(result, CommandError)
    assert "volume nope does not exist" in result.message


def test_create_twice_is_a_conflict_and_a_retry_is_not() -> None:
    cluster = Cluster()
    first = cluster.volume()
    assert isinstance(first, Volume) and first.state == "pending"
    assert cluster.volume() == first  # same uid: a retry
    other = cluster.do(
        CreateVolume(volume=Volume(name="data", uid="other", spec=VolumeSpec(name="data")), at=3.0)
    )
    assert isinstance(other, CommandError) and "already exists" in other.message


def test_unknown_driver_is_refused() -> None:
    cluster = Cluster()
    result = cluster.volume(driver="nfs-magic")
    assert isinstance(result, CommandError) and "unknown volume driver" in result.message


def test_placement_binds_the_volume_and_a_second_writer_is_skipped() -> None:
    cluster = Cluster()
    cluster.volume()
    cluster.submit("t1")
    cluster.submit("t2")
    assert cluster.do(AssignTasks(assignments=[("t1", "n2")], at=4.0)).assigned == ["t1"]  # type: ignore[union-attr]
    volume = cluster.fsm.volume("data")
    assert volume is not None and volume.node_id == "n2"
    # The second writer is refused on apply even if a stale plan placed it.
    assert cluster.do(AssignTasks(assignments=[("t2", "n2")], at=5.0)).skipped == ["t2"]  # type: ignore[union-attr]
    assert [t.id for t in cluster.fsm.volume_writers("data")] == ["t1"]
    # Once the writer stops, the volume is free for the next one (on its node only).
    cluster.do(StopTask(task_id="t1", at=6.0))
    assert cluster.do(AssignTasks(assignments=[("t2", "n1")], at=7.0)).skipped == ["t2"]  # type: ignore[union-attr]
    assert cluster.do(AssignTasks(assignments=[("t2", "n2")], at=8.0)).assigned == ["t2"]  # type: ignore[union-attr]


def test_remove_is_refused_while_in_use_then_waits_for_its_node() -> None:
    cluster = Cluster()
    cluster.volume()
    cluster.submit("t1")
    cluster.do(AssignTasks(assignments=[("t1", "n1")], at=4.0))
    cluster.do(ReportVolume(name="data", uid="uid-data", node_id="n1", state="ready", at=4.5))
    refused = cluster.do(RemoveVolume(name="data", at=5.0))
    assert isinstance(refused, CommandError) and "in use by 1 task(s): t1" in refused.message
    cluster.do(StopTask(task_id="t1", at=6.0))
    removing = cluster.do(RemoveVolume(name="data", at=7.0))
    assert isinstance(removing, Volume) and removing.state == "removing"
    assert isinstance(cluster.submit("t3"), CommandError)  # no new users of a volume being removed
    cluster.do(PurgeVolume(name="data", uid="uid-data", at=8.0))
    assert cluster.fsm.volume("data") is None


def test_a_lost_volume_stays_lost() -> None:
    cluster = Cluster()
    cluster.volume(node="n1")
    cluster.do(ReportVolume(name="data", uid="uid-data", node_id="n1", state="ready", at=3.0))
    wrong_node = cluster.do(ReportVolume(name="data", uid="uid-data", node_id="n2", state="lost", at=4.0))
    assert isinstance(wrong_node, CommandError)
    lost = cluster.do(
        ReportVolume(name="data", uid="uid-data", node_id="n1", state="lost", reason="gone", at=5.0)
    )
    assert isinstance(lost, Volume) and lost.state == "lost"
    again = cluster.do(ReportVolume(name="data", uid="uid-data", node_id="n1", state="ready", at=6.0))
    assert isinstance(again, CommandError) and "lost" in again.message


def test_a_service_template_needs_its_volumes() -> None:
    cluster = Cluster()
    mount = VolumeMount(volume="db", target="/var/lib/db")
    spec = ServiceSpec(name="db", template=TaskTemplate(image="busybox", volumes=[mount]))
    refused = cluster.do(CreateService(spec=spec, at=3.0))
    assert isinstance(refused, CommandError) and "spec.template.volume db does not exist" in refused.message
    cluster.volume("db")
    assert not isinstance(cluster.do(CreateService(spec=spec, at=4.0)), CommandError)


def test_volumes_and_their_users_survive_a_snapshot() -> None:
    cluster = Cluster()
    cluster.volume(node="n1", access="multi", options={"type": "tmpfs"})
    cluster.submit("t1")
    restored = ClusterState()
    restored.restore(cluster.fsm.snapshot())
    assert restored.volumes() == cluster.fsm.volumes()
    assert [t.id for t in restored.volume_users("data")] == ["t1"]
    assert restored.task("t1").volumes == [VolumeMount(volume="data", target="/data")]  # type: ignore[union-attr]
