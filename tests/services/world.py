"""A tiny cluster for driving the service controller's core tick by tick: the real FSM
(orion/fsm/state.py) and the real scheduler (spreading the service), with nodes played by
this module: a Scheduled task starts at the next tick, and one tick later its health check
passes, or fails for the images marked bad. Time is simulated (``now`` moves by ``tick``'s step)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import msgspec

from orion.fsm import commands as c
from orion.fsm.state import ClusterState
from orion.model import HealthCheck, NodeMeta, NodeStatus, Task, TaskState
from orion.scheduler.judge import schedule
from orion.scheduler.types import NodeView
from orion.services.controller import Decision, Rollback, Settings, Step, decide
from orion.services.layout import service_layout
from orion.services.slots import is_available, is_draining, is_live
from orion.services.spec import Service, ServiceSpec, TaskTemplate, UpdatePolicy, UpdateState

GOOD = "good"
UNHEALTHY = "unhealthy"  # runs, then its health check fails
CRASH = "crash"  # its container fails at start (Failed)

CHECK = HealthCheck(kind="http", port=80, path="/")


def spec(
    replicas: int = 3,
    image: str = "web:1",
    update: UpdatePolicy | None = None,
    rollback: UpdatePolicy | None = None,
    health: HealthCheck | None = CHECK,
    name: str = "web",
) -> ServiceSpec:
    return ServiceSpec(
        name=name,
        template=TaskTemplate(image=image, health=health, memory=64 << 20, cpu=0.1),
        replicas=replicas,
        update=update or UpdatePolicy(),
        rollback=rollback or UpdatePolicy(failure_action="pause"),
    )


class World:
    def __init__(
        self,
        service_spec: ServiceSpec,
        nodes: int = 3,
        now: float = 1000.0,
        settings: Settings | None = None,
        seed: int = 0,
    ) -> None:
        self.fsm = ClusterState()
        self.index = 0
        self.now = now
        self.settings = settings or Settings()
        self.name = service_spec.name
        self.behaviour: dict[str, str] = {}  # image -> GOOD / UNHEALTHY / CRASH (default GOOD)
        self.random = random.Random(seed)
        self._ids = itertools.count(1)
        self.decisions: list[Decision] = []
        self.refusals: list[str] = []
        for n in range(1, nodes + 1):
            self.add_node(f"n{n}")
        self.must(c.CreateService(spec=service_spec, at=self.now))
        self.requested_versions = {1}
        # Set by tests to fail things at random: called once per tick with the world.
        self.chaos: Callable[[World], None] | None = None
        self.progress = 1.0  # chance that a task moves on (starts, passes its check) at a tick

    # -- the FSM -------------------------------------------------------------------------------

    def apply(self, command: c.Command) -> object:
        self.index += 1
        return self.fsm.apply(self.index, c.encode_command(command))

    def must(self, command: c.Command) -> object:
        result = self.apply(command)
        assert not isinstance(result, c.CommandError), result
        return result

    def add_node(self, node_id: str, tags: dict[str, str] | None = None) -> None:
        meta = NodeMeta(id=node_id, memory_total=8 << 30, cpu_total=8.0, tags=tags or {}, host_ip="127.0.0.1")
        self.must(c.UpsertNode(meta=meta, at=self.now))

    @property
    def service(self) -> Service:
        service = self.fsm.service(self.name)
        assert service is not None
        return service

    def tasks(self) -> list[Task]:
        return self.fsm.service_tasks(self.name)

    def live(self) -> list[Task]:
        return [t for t in self.tasks() if is_live(t)]

    def serving(self) -> list[Task]:
        """Live and not draining: what counts toward replicas (and the surge)."""
        return [t for t in self.live() if not is_draining(t)]

    def available(self) -> list[Task]:
        down = self.down_nodes()
        return [t for t in self.tasks() if is_available(t, down)]

    def down_nodes(self) -> frozenset[str]:
        return frozenset(n.id for n in self.fsm.nodes() if n.status in (NodeStatus.DEAD, NodeStatus.LEFT))

    @property
    def state(self) -> str:
        return self.service.update.state

    # -- what a user does ------------------------------------------------------------------------

    def update(self, **template: object) -> None:
        old = self.service.spec
        new = msgspec.structs.replace(old, template=msgspec.structs.replace(old.template, **template))
        self.update_spec(new)

    def update_spec(self, new: ServiceSpec) -> None:
        self.must(c.UpdateService(spec=new, at=self.now))
        self.requested_versions.add(self.service.template_version)

    def scale(self, replicas: int) -> None:
        self.must(c.ScaleService(name=self.name, replicas=replicas, at=self.now))

    def pause(self) -> object:
        return self.apply(c.PauseServiceUpdate(name=self.name, at=self.now))

    def resume(self) -> object:
        return self.apply(c.ResumeServiceUpdate(name=self.name, at=self.now))

    def rollback(self) -> object:
        return self.apply(c.RollbackService(name=self.name, reason="by hand", at=self.now))

    def kill_node(self, node_id: str) -> None:
        self.must(c.SetNodeStatus(node_id=node_id, status=NodeStatus.DEAD, at=self.now))

    def revive_node(self, node_id: str) -> None:
        self.must(c.SetNodeStatus(node_id=node_id, status=NodeStatus.ALIVE, at=self.now))

    # -- the controller, as its actor runs it ----------------------------------------------------

    def new_id(self) -> str:
        return f"t{next(self._ids):04d}"

    def control(self) -> Decision:
        service = self.service
        decision = decide(
            service, self.tasks(), self.now, self.new_id, down_nodes=self.down_nodes(), settings=self.settings
        )
        self.decisions.append(decision)
        if isinstance(decision, Rollback):
            result = self.apply(
                c.RollbackService(
                    name=self.name,
                    reason=decision.reason,
                    automatic=True,
                    expected_version=service.version,
                    at=self.now,
                )
            )
        elif isinstance(decision, Step):
            result = self.apply(
                c.ServiceStep(
                    name=self.name,
                    expected_version=service.version,
                    add=list(decision.add),
                    drain=list(decision.drain),
                    stop=list(decision.stop),
                    status=decision.status,
                    at=self.now,
                )
            )
        else:
            return None
        if isinstance(result, c.CommandError):
            self.refusals.append(result.message)
        return decision

    # -- what the nodes do -----------------------------------------------------------------------

    def place(self) -> None:
        pending = [t for t in self.fsm.pending_tasks()]
        if not pending:
            return
        views = []
        for record in self.fsm.nodes():
            memory, cpu, disk = self.fsm.allocated(record.id)
            ports = tuple(self.fsm.port_claims(record.id))
            views.append(NodeView(record.id, record.status, record.meta, memory, cpu, disk, ports=ports))
        plan = schedule(views, pending, "binpack", self.index, now=self.now, **self.placement_inputs())
        if plan.assignments:
            self.must(
                c.AssignTasks(
                    assignments=list(plan.assignments), host_ports=dict(plan.host_ports), at=self.now
                )
            )

    def placement_inputs(self) -> dict[str, object]:
        return {"services": {self.name: service_layout(self.service, self.tasks())}}

    def run(self) -> None:
        """Scheduled tasks on alive nodes start (or crash); Running ones pass their check (or
        fail it), one step per tick."""
        alive = {n.id for n in self.fsm.nodes() if n.status == NodeStatus.ALIVE}
        for task in self.fsm.tasks():
            if task.node_id not in alive or task.desired != "run":
                continue
            if self.progress < 1.0 and self.random.random() >= self.progress:
                continue
            behaviour = self.behaviour.get(task.image, GOOD)
            if task.state == TaskState.SCHEDULED:
                state = TaskState.FAILED if behaviour == CRASH else TaskState.RUNNING
                self.must(c.ReportTaskState(task_id=task.id, node_id=task.node_id, state=state, at=self.now))
            elif task.state == TaskState.RUNNING and task.health == "starting":
                health = "unhealthy" if behaviour == UNHEALTHY else "healthy"
                self.must(c.ReportHealth(task_id=task.id, node_id=task.node_id, health=health, at=self.now))

    def fail(self, task: Task) -> None:
        self.must(
            c.ReportTaskState(task_id=task.id, node_id=task.node_id, state=TaskState.FAILED, at=self.now)
        )

    def tick(self, step: float = 0.5) -> Decision:
        self.now += step
        self.place()
        self.run()
        if self.chaos is not None:
            self.chaos(self)
        return self.control()

    def settle(self, limit: int = 400, check: Callable[[World], None] | None = None) -> int:
        """Tick until the controller has nothing to do, every slot is filled and available, and
        no update is in progress; returns the ticks it took."""
        for ticks in range(1, limit + 1):
            decision = self.tick()
            if check is not None:
                check(self)
            if decision is None and self.converged():
                return ticks
        raise AssertionError(f"not settled after {limit} ticks: {self.describe()}")

    def converged(self) -> bool:
        service = self.service
        serving = self.serving()
        return (
            service.update.state not in (UpdateState.UPDATING, UpdateState.ROLLING_BACK)
            and len(self.live()) == service.spec.replicas
            and len(self.available()) == service.spec.replicas
            and sorted(t.slot for t in serving) == list(range(1, service.spec.replicas + 1))
            and all(t.version == service.template_version for t in serving)
        )

    def describe(self) -> str:
        service = self.service
        lines = [f"t={self.now} v{service.version} tv{service.template_version} {service.update}"]
        for t in sorted(self.tasks(), key=lambda t: (t.slot, t.created_at)):
            lines.append(
                f"  {t.id} {t.name} v{t.version} {t.state} {t.desired} {t.health or '-'} "
                f"drain={t.drain_at} node={t.node_id} {t.reason}"
            )
        return "\n".join(lines)
