"""Services in the cluster state: each command's effect, its refusals, and the version
bookkeeping the controller and rollback rely on."""

from __future__ import annotations

import msgspec
import pytest

from orion.fsm.commands import (
    AssignTasks,
    Command,
    CommandError,
    CreateService,
    PauseServiceUpdate,
    Refusal,
    RemoveService,
    ReportHealth,
    ReportTaskState,
    RescheduleNodeTasks,
    ResumeServiceUpdate,
    RollbackService,
    ScaleService,
    ServiceStep,
    StopTask,
    SubmitTask,
    UpdateService,
    UpsertNode,
    decode_command,
    encode_command,
)
from orion.fsm.state import ClusterState
from orion.model import Health, HealthCheck, NodeMeta, Task, TaskState
from orion.services.spec import (
    KEPT_VERSIONS,
    Service,
    ServicePort,
    ServiceSpec,
    TaskTemplate,
    UpdateState,
    UpdateStatus,
    slot_name,
)


class Driver:
    """Feeds commands to a ClusterState as committed entries with increasing indexes."""

    def __init__(self) -> None:
        self.fsm = ClusterState()
        self.index = 0

    def __call__(self, command: Command) -> object:
        self.index += 1
        return self.fsm.apply(self.index, encode_command(command))


def spec(name: str = "web", image: str = "web:1", replicas: int = 2, **fields: object) -> ServiceSpec:
    return ServiceSpec(name=name, template=TaskTemplate(image=image), replicas=replicas, **fields)


def slot_task(service: Service, slot: int, task_id: str, **fields: object) -> Task:
    """A task as the controller makes one for ``slot`` of ``service``'s current template."""
    template = service.spec.template
    return Task(
        id=task_id,
        name=slot_name(service.name, slot),
        image=template.image,
        service=service.name,
        slot=slot,
        version=service.template_version,
        port_bindings={f"{p.target}/tcp": "0" for p in service.spec.ports},
        health_check=template.health,
        **fields,
    )


@pytest.fixture
def run() -> Driver:
    driver = Driver()
    driver(UpsertNode(at=1.0, meta=NodeMeta(id="n1", memory_total=1 << 34, cpu_total=4.0)))
    driver(UpsertNode(at=1.0, meta=NodeMeta(id="n2", memory_total=1 << 34, cpu_total=4.0)))
    return driver


def refusal(result: object) -> Refusal:
    assert isinstance(result, CommandError), result
    return result.code


def test_service_commands_round_trip_the_codec() -> None:
    web = Service(name="web", spec=spec())
    commands: list[Command] = [
        CreateService(at=1.0, spec=spec(ports=[ServicePort(published=8080, target=80)])),
        UpdateService(at=2.0, spec=spec(image="web:2"), expected_version=3),
        ScaleService(at=3.0, name="web", replicas=5),
        RollbackService(at=4.0, name="web", reason="unhealthy", automatic=True, expected_version=2),
        PauseServiceUpdate(at=5.0, name="web"),
        ResumeServiceUpdate(at=6.0, name="web"),
        RemoveService(at=7.0, name="web"),
        ServiceStep(
            at=8.0,
            name="web",
            expected_version=2,
            add=[slot_task(web, 1, "t1")],
            drain=["t0"],
            stop=["t9"],
            status=UpdateStatus(state=UpdateState.COMPLETED, to_version=2),
        ),
        ReportHealth(at=9.0, task_id="t1", node_id="n1", health=Health.HEALTHY, reason="HTTP 200"),
    ]
    for command in commands:
        assert decode_command(encode_command(command)) == command


def test_create_records_the_service_at_version_one(run: Driver) -> None:
    created = run(CreateService(at=10.0, spec=spec()))
    assert isinstance(created, Service)
    assert (created.version, created.template_version, created.previous) == (1, 1, [])
    assert (created.created_at, created.updated_at, created.update.state) == (10.0, 10.0, "completed")
    assert run.fsm.services() == [created]
    assert run.fsm.service("web") == created
    assert run.fsm.service("nope") is None
    assert run.fsm.service_tasks("web") == []


def test_create_refuses_a_taken_name_and_invalid_specs(run: Driver) -> None:
    created = run(CreateService(at=1.0, spec=spec()))
    assert run(CreateService(at=1.5, spec=spec())) == created  # a retry of the same create
    taken = run(CreateService(at=2.0, spec=spec(image="other")))
    assert refusal(taken) == Refusal.CONFLICT
    assert "already exists" in taken.message  # type: ignore[union-attr]
    bad = run(CreateService(at=2.0, spec=spec(name="Bad_Name")))
    assert refusal(bad) == Refusal.INVALID
    assert bad.message.startswith("name: ")  # type: ignore[union-attr]
    no_image = run(CreateService(at=2.0, spec=spec(name="api", image="")))
    assert refusal(no_image) == Refusal.INVALID
    assert [s.name for s in run.fsm.services()] == ["web"]


def test_a_published_port_is_one_services_only(run: Driver) -> None:
    run(CreateService(at=1.0, spec=spec(ports=[ServicePort(published=8080, target=80)])))
    clash = run(CreateService(at=2.0, spec=spec(name="api", ports=[ServicePort(published=8080, target=81)])))
    assert refusal(clash) == Refusal.CONFLICT
    assert "8080/tcp is taken by service web" in clash.message  # type: ignore[union-attr]
    # An update moving web off 8080 frees it.
    moved = run(UpdateService(at=3.0, spec=spec(ports=[ServicePort(published=9090, target=80)])))
    assert isinstance(moved, Service)
    api = run(CreateService(at=4.0, spec=spec(name="api", ports=[ServicePort(published=8080, target=81)])))
    assert isinstance(api, Service)
    # Updating a service keeps its own ports without clashing with itself.
    assert isinstance(
        run(UpdateService(at=5.0, spec=spec(name="api", image="api:2", ports=api.spec.ports))), Service
    )


def test_a_published_port_against_tasks_fixed_host_ports(run: Driver) -> None:
    run(SubmitTask(at=1.0, task=Task(id="t1", name="db", image="db", port_bindings={"5432/tcp": "8080"})))
    run(SubmitTask(at=1.0, task=Task(id="t2", name="dns", image="dns", port_bindings={"53/udp": "9090"})))
    clash = run(CreateService(at=2.0, spec=spec(ports=[ServicePort(published=8080, target=80)])))
    assert refusal(clash) == Refusal.CONFLICT
    assert "task db (t1)" in clash.message  # type: ignore[union-attr]
    # Another protocol on the same number does not clash.
    assert isinstance(
        run(CreateService(at=2.0, spec=spec(ports=[ServicePort(published=9090, target=80)]))), Service
    )
    # Once the task stopped, its port is free for a service.
    run(StopTask(at=3.0, task_id="t1"))
    assert isinstance(
        run(CreateService(at=4.0, spec=spec("api", ports=[ServicePort(published=8080, target=80)]))), Service
    )


def test_a_task_submit_on_a_published_port_is_refused(run: Driver) -> None:
    run(CreateService(at=1.0, spec=spec(ports=[ServicePort(published=8080, target=80)])))
    refused = run(
        SubmitTask(at=2.0, task=Task(id="t1", name="x", image="x", port_bindings={"80/tcp": "8080"}))
    )
    assert refusal(refused) == Refusal.CONFLICT
    assert "published by service web" in refused.message  # type: ignore[union-attr]
    dynamic = run(SubmitTask(at=2.0, task=Task(id="t2", name="y", image="y", port_bindings={"80/tcp": "0"})))
    assert isinstance(dynamic, Task)
    udp = run(SubmitTask(at=2.0, task=Task(id="t3", name="z", image="z", port_bindings={"53/udp": "8080"})))
    assert isinstance(udp, Task)


def test_a_late_duplicate_of_an_earlier_scale_never_undoes_a_later_one(run: Driver) -> None:
    # The nemesis found it: "scale 2" acknowledged, then "scale 3" acknowledged, and a first
    # attempt of "scale 2", parked on a paused node, applied last. Conditional on the version
    # the client read, that attempt is refused.
    run(CreateService(at=1.0, spec=spec(replicas=1)))
    two = run(ScaleService(at=2.0, name="web", replicas=2, expected_version=1))
    assert isinstance(two, Service) and two.version == 2
    three = run(ScaleService(at=3.0, name="web", replicas=3, expected_version=2))
    assert isinstance(three, Service) and three.spec.replicas == 3
    assert refusal(run(ScaleService(at=4.0, name="web", replicas=2, expected_version=1))) == Refusal.CONFLICT
    # The count already set answers with the service, whatever version the caller read.
    assert run(ScaleService(at=5.0, name="web", replicas=3, expected_version=1)) == three


def test_a_late_remove_is_refused_once_the_service_changed(run: Driver) -> None:
    # (A service created again starts at version 1: a late remove read at version 1 still
    # matches it until it changes once. Versions do not outlive a removal.)
    run(CreateService(at=1.0, spec=spec()))
    assert isinstance(run(RemoveService(at=2.0, name="web", expected_version=1)), Service)
    assert isinstance(run(CreateService(at=3.0, spec=spec(image="web:2"))), Service)
    run(ScaleService(at=4.0, name="web", replicas=3))
    assert refusal(run(RemoveService(at=5.0, name="web", expected_version=1))) == Refusal.CONFLICT
    assert run(RemoveService(at=6.0, name="web")) is not None  # unconditional still removes


def test_scale_keeps_the_template_version(run: Driver) -> None:
    run(CreateService(at=1.0, spec=spec()))
    scaled = run(ScaleService(at=2.0, name="web", replicas=5))
    assert isinstance(scaled, Service)
    assert (scaled.version, scaled.template_version, scaled.spec.replicas) == (2, 1, 5)
    assert scaled.previous == [] and scaled.update.state == UpdateState.COMPLETED
    assert run(ScaleService(at=3.0, name="web", replicas=5)) == scaled  # no change, no new version
    assert refusal(run(ScaleService(at=3.0, name="web", replicas=-1))) == Refusal.INVALID
    negative = run(ScaleService(at=3.0, name="web", replicas=-1))
    assert negative.message.startswith("replicas: must be >= 0")  # type: ignore[union-attr]
    assert refusal(run(ScaleService(at=3.0, name="web", replicas=1001))) == Refusal.INVALID
    assert refusal(run(ScaleService(at=3.0, name="nope", replicas=1))) == Refusal.NOT_FOUND


def test_update_with_a_new_template_keeps_the_old_one_for_rollback(run: Driver) -> None:
    run(CreateService(at=1.0, spec=spec()))
    updated = run(UpdateService(at=2.0, spec=spec(image="web:2")))
    assert isinstance(updated, Service)
    assert (updated.version, updated.template_version) == (2, 2)
    assert [(v.version, v.template.image) for v in updated.previous] == [(1, "web:1")]
    assert (updated.update.state, updated.update.from_version, updated.update.to_version) == (
        "updating",
        1,
        2,
    )
    assert updated.update.started_at == 2.0
    # A change of replicas only is not a rolling update.
    scaled = run(UpdateService(at=3.0, spec=spec(image="web:2", replicas=4)))
    assert isinstance(scaled, Service)
    assert (scaled.version, scaled.template_version, len(scaled.previous)) == (3, 2, 1)
    # The same spec again changes nothing.
    assert run(UpdateService(at=4.0, spec=scaled.spec)) == scaled


def test_previous_is_capped_at_kept_versions(run: Driver) -> None:
    run(CreateService(at=1.0, spec=spec()))
    for n in range(2, KEPT_VERSIONS + 4):
        run(UpdateService(at=float(n), spec=spec(image=f"web:{n}")))
    service = run.fsm.service("web")
    assert service is not None
    assert len(service.previous) == KEPT_VERSIONS
    assert [v.version for v in service.previous] == list(
        range(service.version - KEPT_VERSIONS, service.version)
    )


def test_update_with_a_stale_expected_version_is_a_conflict(run: Driver) -> None:
    run(CreateService(at=1.0, spec=spec()))
    run(ScaleService(at=2.0, name="web", replicas=3))
    stale = run(UpdateService(at=3.0, spec=spec(image="web:2"), expected_version=1))
    assert refusal(stale) == Refusal.CONFLICT
    assert "at version 2, not 1" in stale.message  # type: ignore[union-attr]
    assert isinstance(run(UpdateService(at=3.0, spec=spec(image="web:2"), expected_version=2)), Service)
    assert refusal(run(UpdateService(at=3.0, spec=spec(name="nope")))) == Refusal.NOT_FOUND


def test_rollback_restores_the_newest_previous_template_and_its_version(run: Driver) -> None:
    run(CreateService(at=1.0, spec=spec()))
    run(UpdateService(at=2.0, spec=spec(image="web:2")))
    run(UpdateService(at=3.0, spec=spec(image="web:3")))
    rolled = run(RollbackService(at=4.0, name="web", reason="too slow"))
    assert isinstance(rolled, Service)
    assert rolled.spec.template.image == "web:2"
    assert (rolled.version, rolled.template_version) == (4, 2)
    assert [v.version for v in rolled.previous] == [1]
    assert (rolled.update.state, rolled.update.from_version, rolled.update.to_version) == (
        "rolling_back",
        3,
        2,
    )
    assert rolled.update.message == "rollback requested: too slow"
    again = run(RollbackService(at=5.0, name="web"))
    assert isinstance(again, Service)
    assert (again.spec.template.image, again.template_version, again.previous) == ("web:1", 1, [])
    nothing = run(RollbackService(at=6.0, name="web"))
    assert refusal(nothing) == Refusal.INVALID
    assert "no previous version" in nothing.message  # type: ignore[union-attr]


def test_an_automatic_rollback_needs_an_update_in_progress_and_a_current_view(run: Driver) -> None:
    run(CreateService(at=1.0, spec=spec()))
    updating = run(UpdateService(at=2.0, spec=spec(image="web:2")))
    assert isinstance(updating, Service)
    stale = RollbackService(at=3.0, name="web", automatic=True, expected_version=1)
    assert refusal(run(stale)) == Refusal.CONFLICT
    rolled = run(
        RollbackService(at=3.0, name="web", automatic=True, expected_version=2, reason="t1 unhealthy")
    )
    assert isinstance(rolled, Service)
    assert rolled.update.message == "automatic rollback: t1 unhealthy"
    run(UpdateService(at=4.0, spec=spec(image="web:3")))
    run(ServiceStep(at=5.0, name="web", expected_version=4, status=UpdateStatus(state=UpdateState.COMPLETED)))
    assert refusal(run(RollbackService(at=6.0, name="web", automatic=True))) == Refusal.CONFLICT


def test_pause_and_resume_an_update(run: Driver) -> None:
    run(CreateService(at=1.0, spec=spec()))
    assert refusal(run(PauseServiceUpdate(at=2.0, name="web"))) == Refusal.INVALID
    run(UpdateService(at=2.0, spec=spec(image="web:2")))
    paused = run(PauseServiceUpdate(at=3.0, name="web"))
    assert isinstance(paused, Service)
    assert (paused.update.state, paused.version, paused.update.to_version) == ("paused", 3, 2)
    assert run(PauseServiceUpdate(at=4.0, name="web")) == paused  # a retry changes nothing
    run(
        ServiceStep(
            at=3.5,
            name="web",
            expected_version=3,
            status=msgspec.structs.replace(
                paused.update, failed_tasks=["t9"], message="2 of 3 new tasks failed"
            ),
        )
    )
    resumed = run(ResumeServiceUpdate(at=4.0, name="web"))
    assert isinstance(resumed, Service)
    assert (resumed.update.state, resumed.version) == ("updating", 4)
    # The failures that paused it no longer count: the update starts counting again.
    assert (resumed.update.started_at, resumed.update.failed_tasks, resumed.update.message) == (4.0, [], "")
    run(RollbackService(at=5.0, name="web"))
    paused = run(PauseServiceUpdate(at=6.0, name="web"))
    assert paused.update.state == "rollback_paused"  # type: ignore[union-attr]
    resumed = run(ResumeServiceUpdate(at=7.0, name="web"))
    assert resumed.update.state == "rolling_back"  # type: ignore[union-attr]
    assert run(ResumeServiceUpdate(at=8.0, name="web")) == resumed
    run(
        ServiceStep(
            at=9.0, name="web", expected_version=7, status=UpdateStatus(state=UpdateState.ROLLED_BACK)
        )
    )
    assert refusal(run(ResumeServiceUpdate(at=10.0, name="web"))) == Refusal.INVALID
    assert refusal(run(PauseServiceUpdate(at=8.0, name="nope"))) == Refusal.NOT_FOUND


def test_a_step_adds_drains_and_stops_tasks_at_once(run: Driver) -> None:
    web = run(CreateService(at=1.0, spec=spec(ports=[ServicePort(published=8080, target=80)])))
    assert isinstance(web, Service)
    added = run(
        ServiceStep(
            at=2.0, name="web", expected_version=1, add=[slot_task(web, 1, "a"), slot_task(web, 2, "b")]
        )
    )
    assert added == web
    tasks = run.fsm.service_tasks("web")
    assert [(t.id, t.name, t.state, t.slot, t.version) for t in tasks] == [
        ("a", "web.1", "Pending", 1, 1),
        ("b", "web.2", "Pending", 2, 1),
    ]
    assert [t.id for t in run.fsm.pending_tasks()] == ["a", "b"]
    assert tasks[0].history[0].reason == "created by service web"
    status = UpdateStatus(state=UpdateState.COMPLETED, message="done")
    after = run(ServiceStep(at=3.0, name="web", expected_version=1, drain=["a"], stop=["b"], status=status))
    assert isinstance(after, Service)
    assert after.update == status and after.version == 1  # a step does not move the version
    a, b = run.fsm.task("a"), run.fsm.task("b")
    assert a is not None and b is not None
    assert (a.drain_at, a.state) == (3.0, "Pending")
    assert (b.state, b.desired, b.reason) == ("Stopped", "stop", "stopped by service web")


def test_a_stale_or_malformed_step_changes_nothing(run: Driver) -> None:
    web = run(CreateService(at=1.0, spec=spec()))
    assert isinstance(web, Service)
    run(ScaleService(at=2.0, name="web", replicas=3))
    stale = run(ServiceStep(at=3.0, name="web", expected_version=1, add=[slot_task(web, 1, "a")]))
    assert refusal(stale) == Refusal.CONFLICT
    assert "stale step" in stale.message  # type: ignore[union-attr]
    web = run.fsm.service("web")
    assert web is not None
    run(SubmitTask(at=3.0, task=Task(id="plain", name="plain", image="x")))
    bad_steps = [
        [slot_task(web, 1, "a"), slot_task(web, 2, "a")],  # an id twice
        [slot_task(web, 1, "plain")],  # an id taken
        [slot_task(web, 1, "a"), msgspec.structs.replace(slot_task(web, 2, "b"), version=7)],
        [msgspec.structs.replace(slot_task(web, 1, "a"), name="web.9")],
        [msgspec.structs.replace(slot_task(web, 1, "a"), service="api")],
        [msgspec.structs.replace(slot_task(web, 1, "a"), port_bindings={"80/tcp": "8080"})],
    ]
    for add in bad_steps:
        assert refusal(run(ServiceStep(at=4.0, name="web", expected_version=2, add=add))) == Refusal.INVALID
    foreign = ServiceStep(
        at=4.0, name="web", expected_version=2, add=[slot_task(web, 1, "a")], stop=["plain"]
    )
    assert refusal(run(foreign)) == Refusal.INVALID
    assert run.fsm.service_tasks("web") == []
    assert refusal(run(ServiceStep(at=4.0, name="nope", expected_version=1))) == Refusal.NOT_FOUND


def test_remove_stops_every_task_and_a_new_service_starts_clean(run: Driver) -> None:
    web = run(CreateService(at=1.0, spec=spec(ports=[ServicePort(published=8080, target=80)])))
    assert isinstance(web, Service)
    run(
        ServiceStep(
            at=2.0, name="web", expected_version=1, add=[slot_task(web, 1, "a"), slot_task(web, 2, "b")]
        )
    )
    run(AssignTasks(at=3.0, assignments=[("a", "n1")], host_ports={"a": {"80/tcp": 31000}}))
    removed = run(RemoveService(at=4.0, name="web"))
    assert removed == web
    assert run.fsm.service("web") is None
    assert {(t.state, t.desired, t.reason) for t in run.fsm.service_tasks("web")} == {
        ("Stopped", "stop", "service web removed")
    }
    assert run.fsm.pending_tasks() == []
    # The published port is free again, and a new service of the name has no old tasks.
    assert isinstance(
        run(SubmitTask(at=5.0, task=Task(id="t", name="t", image="x", port_bindings={"1/tcp": "8080"}))), Task
    )
    run(StopTask(at=5.5, task_id="t"))
    assert isinstance(run(CreateService(at=6.0, spec=spec())), Service)
    assert run.fsm.service_tasks("web") == []
    assert run.fsm.task("a") is None
    assert refusal(run(RemoveService(at=7.0, name="nope"))) == Refusal.NOT_FOUND


def test_task_by_name_prefers_an_active_task_of_a_slot(run: Driver) -> None:
    web = run(CreateService(at=1.0, spec=spec()))
    assert isinstance(web, Service)
    run(ServiceStep(at=2.0, name="web", expected_version=1, add=[slot_task(web, 1, "old")]))
    run(ServiceStep(at=3.0, name="web", expected_version=1, add=[slot_task(web, 1, "new")], stop=["old"]))
    assert run.fsm.task_by_name("web.1").id == "new"  # type: ignore[union-attr]
    run(ServiceStep(at=4.0, name="web", expected_version=1, stop=["new"]))
    assert run.fsm.task_by_name("web.1").id == "new"  # none active: the latest
    run(SubmitTask(at=5.0, task=Task(id="x1", name="job", image="x")))
    run(SubmitTask(at=6.0, task=Task(id="x2", name="job", image="x")))
    run(StopTask(at=7.0, task_id="x2"))
    assert run.fsm.task_by_name("job").id == "x1"  # type: ignore[union-attr]


def test_health_reports_come_from_the_node_running_the_task(run: Driver) -> None:
    check = HealthCheck(kind="http", port=80, path="/health")
    template = TaskTemplate(image="web:1", health=check)
    web_spec = ServiceSpec(name="web", template=template, ports=[ServicePort(published=8080, target=80)])
    web = run(CreateService(at=1.0, spec=web_spec))
    assert isinstance(web, Service)
    run(ServiceStep(at=2.0, name="web", expected_version=1, add=[slot_task(web, 1, "a")]))
    assert run.fsm.task("a").health == Health.STARTING  # type: ignore[union-attr]
    run(AssignTasks(at=3.0, assignments=[("a", "n1")], host_ports={"a": {"80/tcp": 31000}}))
    run(ReportTaskState(at=4.0, task_id="a", node_id="n1", state=TaskState.RUNNING))
    assert (
        refusal(run(ReportHealth(at=5.0, task_id="a", node_id="n2", health=Health.HEALTHY)))
        == Refusal.INVALID
    )
    healthy = run(ReportHealth(at=5.0, task_id="a", node_id="n1", health=Health.HEALTHY, reason="HTTP 200"))
    assert isinstance(healthy, Task)
    assert (healthy.health, healthy.reason, healthy.updated_at) == ("healthy", "healthy: HTTP 200", 5.0)
    assert run(ReportHealth(at=6.0, task_id="a", node_id="n1", health=Health.HEALTHY)) == healthy
    # Moved off its node: its check starts over, and the old node's word no longer counts.
    run(RescheduleNodeTasks(at=7.0, node_id="n1", reason="node n1 is dead"))
    assert run.fsm.task("a").health == Health.STARTING  # type: ignore[union-attr]
    assert (
        refusal(run(ReportHealth(at=8.0, task_id="a", node_id="n1", health=Health.UNHEALTHY)))
        == Refusal.INVALID
    )
    assert (
        refusal(run(ReportHealth(at=8.0, task_id="zz", node_id="n1", health=Health.HEALTHY)))
        == Refusal.NOT_FOUND
    )


def test_services_survive_a_snapshot_and_restore(run: Driver) -> None:
    web = run(CreateService(at=1.0, spec=spec(ports=[ServicePort(published=8080, target=80)])))
    assert isinstance(web, Service)
    run(CreateService(at=1.5, spec=spec("api", replicas=1)))
    run(UpdateService(at=2.0, spec=spec(image="web:2", ports=web.spec.ports)))
    web2 = run.fsm.service("web")
    assert web2 is not None
    run(ServiceStep(at=3.0, name="web", expected_version=2, add=[slot_task(web2, 1, "a")], drain=[]))
    run(ServiceStep(at=4.0, name="web", expected_version=2, drain=["a"]))
    data = run.fsm.snapshot()
    restored = ClusterState()
    restored.restore(data)
    assert restored.snapshot() == data
    assert restored.services() == run.fsm.services()
    assert restored.service_tasks("web") == run.fsm.service_tasks("web")
    task = restored.task("a")
    assert task is not None and (task.service, task.slot, task.version, task.drain_at) == ("web", 1, 2, 4.0)
    # The restored replica still knows who publishes what.
    clash = Task(id="t", name="t", image="x", port_bindings={"80/tcp": "8080"})
    assert (
        refusal(restored.apply(run.index + 1, encode_command(SubmitTask(at=5.0, task=clash))))
        == Refusal.CONFLICT
    )
