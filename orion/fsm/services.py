"""The services table of the cluster state and the commands that change it.

Part of ``ClusterState`` (orion/fsm/state.py), kept apart for size: deterministic like it (no
clock: every time is the command's ``at``), and never mutating a stored ``Service``: a change
stores a new record, so records handed out may be read from other threads.

Versions: ``Service.version`` goes up by one on every change a user makes (update, scale,
rollback, pause, resume); ``template_version`` is the version that introduced the template the
tasks should run. The controller's ``ServiceStep`` does not move the version: it names the
version it decided on and is refused once a user's change came in between. A service created
again under the name of a removed one goes on from that one's last version (the removal is
remembered for a while: orion/fsm/tombstones.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from orion.fsm.commands import (
    CommandError,
    CreateService,
    PauseServiceUpdate,
    Refusal,
    RemoveService,
    ReportHealth,
    ResumeServiceUpdate,
    RollbackService,
    ScaleService,
    ServiceStep,
    UpdateService,
)
from orion.fsm.tombstones import Tombstones, late_create_message
from orion.model import ACTIVE_STATES, Desired, Health, Task, TaskState
from orion.services.spec import (
    KEPT_VERSIONS,
    MAX_REPLICAS,
    Service,
    ServicePort,
    ServiceSpec,
    ServiceVersion,
    UpdateState,
    UpdateStatus,
    slot_name,
)
from orion.services.validate import SpecError, validate_spec

if TYPE_CHECKING:
    from orion.fsm.results import ApplyResult


class TaskTable(Protocol):
    """What the services table needs of the task table it lives beside (``ClusterState``)."""

    def task(self, task_id: str) -> Task | None: ...

    def service_tasks(self, name: str) -> list[Task]: ...

    def fixed_port_tasks(self, port: int, protocol: str) -> list[str]: ...

    def new_task(self, task: Task, at: float, how: str) -> Task: ...

    def stop_task(self, task: Task, at: float, reason: str) -> Task: ...

    def change_task(self, task: Task, at: float, **changes: Any) -> Task: ...

    def put_task(self, old: Task | None, new: Task) -> None: ...

    def delete_task(self, task_id: str) -> None: ...


REMOVED_REASON = "service {name} removed"
STEP_STOP_REASON = "stopped by service {name}"
DRAIN_REASON = "draining: out of the ingress, stopping soon"
TERMINAL = frozenset({TaskState.STOPPED, TaskState.FAILED})
# Pause and resume move between these (an update or a rollback in progress, and paused).
_PAUSED = {UpdateState.UPDATING: UpdateState.PAUSED, UpdateState.ROLLING_BACK: UpdateState.ROLLBACK_PAUSED}
_RESUMED = {paused: running for running, paused in _PAUSED.items()}


def fixed_host_ports(task: Task) -> list[tuple[int, str]]:
    """(host port, protocol) of each binding with a fixed (non-zero) host port."""
    fixed = []
    for container_port, host_port in task.port_bindings.items():
        if host_port.isdigit() and int(host_port) != 0:
            fixed.append((int(host_port), container_port.partition("/")[2] or "tcp"))
    return fixed


def _template_changed(old: ServiceSpec, new: ServiceSpec) -> bool:
    return old.template != new.template or old.ports != new.ports


class ServiceBook:
    """Services by name (creation order) and the published ports they hold."""

    def __init__(self, state: TaskTable, tombstones: Tombstones | None = None) -> None:
        self._state = state
        self._tombstones = tombstones if tombstones is not None else Tombstones()
        self._services: dict[str, Service] = {}
        self._published: dict[tuple[int, str], str] = {}  # (port, protocol) -> service (derived)

    # -- reading -----------------------------------------------------------------------------

    def all(self) -> list[Service]:
        return list(self._services.values())

    def get(self, name: str) -> Service | None:
        return self._services.get(name)

    def publisher(self, port: int, protocol: str) -> str | None:
        """The service publishing ``port``/``protocol``, if any."""
        return self._published.get((port, protocol))

    def restore(self, services: list[Service]) -> None:
        self._services.clear()
        self._published.clear()
        for service in services:
            self._store(None, service)

    # -- commands ------------------------------------------------------------------------------

    def create(self, cmd: CreateService) -> ApplyResult:
        spec = cmd.spec
        problem = _invalid(spec)
        if problem is not None:
            return problem
        removed = self._tombstones.late_create(cmd.request_id)
        if removed is not None:
            return CommandError(Refusal.CONFLICT, late_create_message(removed.name, removed.removed_at))
        existing = self._services.get(spec.name)
        if existing is not None:
            if existing.spec == spec:
                return existing  # a retried create (the first attempt went unanswered)
            return CommandError(Refusal.CONFLICT, f"service {spec.name} already exists: update it instead")
        clash = self._port_clash(spec.name, spec.ports)
        if clash is not None:
            return clash
        # Tasks left by an earlier service of this name are all terminal (RemoveService stopped
        # them): they are history of another service, not tasks of this one.
        for task in self._state.service_tasks(spec.name):
            self._state.delete_task(task.id)
        # Versions go on from a removed service of this name: a version read from that one
        # never matches this one (update, scale and remove are conditional on it).
        version = self._tombstones.first_service_version(spec.name)
        service = Service(
            name=spec.name,
            spec=spec,
            version=version,
            template_version=version,
            created_at=cmd.at,
            updated_at=cmd.at,
        )
        self._store(None, service)
        self._tombstones.service_created(spec.name, cmd.request_id)
        return service

    def update(self, cmd: UpdateService) -> ApplyResult:
        spec = cmd.spec
        old = self._current(spec.name, cmd.expected_version)
        if isinstance(old, CommandError):
            return old
        problem = _invalid(spec)
        if problem is not None:
            return problem
        if spec == old.spec:
            return old  # nothing to change (``apply -f`` twice)
        clash = self._port_clash(spec.name, spec.ports)
        if clash is not None:
            return clash
        version = old.version + 1
        if not _template_changed(old.spec, spec):
            return self._store(
                old, msgspec.structs.replace(old, spec=spec, version=version, updated_at=cmd.at)
            )
        earlier = ServiceVersion(
            version=old.template_version, template=old.spec.template, ports=old.spec.ports
        )
        status = UpdateStatus(
            state=UpdateState.UPDATING,
            from_version=old.template_version,
            to_version=version,
            started_at=cmd.at,
        )
        new = msgspec.structs.replace(
            old,
            spec=spec,
            version=version,
            template_version=version,
            previous=[*old.previous, earlier][-KEPT_VERSIONS:],
            update=status,
            updated_at=cmd.at,
        )
        return self._store(old, new)

    def _current(self, name: str, expected_version: int) -> Service | CommandError:
        """The service ``name`` if it is at ``expected_version`` (0: any), else why not."""
        service = self._services.get(name)
        if service is None:
            return _no_service(name)
        stale = _stale(service, expected_version)
        return service if stale is None else stale

    def scale(self, cmd: ScaleService) -> ApplyResult:
        old = self._services.get(cmd.name)
        if old is None:
            return _no_service(cmd.name)
        if not 0 <= cmd.replicas <= MAX_REPLICAS:
            bound = ">= 0" if cmd.replicas < 0 else f"<= {MAX_REPLICAS}"
            return CommandError(Refusal.INVALID, f"replicas: must be {bound}, got {cmd.replicas}")
        if cmd.replicas == old.spec.replicas:
            return old
        stale = _stale(old, cmd.expected_version)
        if stale is not None:
            return stale
        spec = msgspec.structs.replace(old.spec, replicas=cmd.replicas)
        return self._store(
            old, msgspec.structs.replace(old, spec=spec, version=old.version + 1, updated_at=cmd.at)
        )

    def rollback(self, cmd: RollbackService) -> ApplyResult:
        old = self._current(cmd.name, cmd.expected_version)
        if isinstance(old, CommandError):
            return old
        if cmd.automatic and old.update.state != UpdateState.UPDATING:
            return CommandError(
                Refusal.CONFLICT,
                f"service {old.name}: no update in progress to roll back ({old.update.state})",
            )
        if not old.previous:
            return CommandError(
                Refusal.INVALID, f"service {old.name} has no previous version to roll back to"
            )
        target = old.previous[-1]
        clash = self._port_clash(old.name, target.ports)
        if clash is not None:
            return clash
        spec = msgspec.structs.replace(old.spec, template=target.template, ports=target.ports)
        how = "automatic rollback" if cmd.automatic else "rollback requested"
        status = UpdateStatus(
            state=UpdateState.ROLLING_BACK,
            from_version=old.template_version,
            to_version=target.version,
            started_at=cmd.at,
            message=f"{how}: {cmd.reason}" if cmd.reason else how,
        )
        new = msgspec.structs.replace(
            old,
            spec=spec,
            version=old.version + 1,
            template_version=target.version,
            previous=old.previous[:-1],
            update=status,
            updated_at=cmd.at,
        )
        return self._store(old, new)

    def pause(self, cmd: PauseServiceUpdate) -> ApplyResult:
        return self._move_update(
            cmd.name, cmd.at, _PAUSED, "paused by user", "no update or rollback in progress"
        )

    def resume(self, cmd: ResumeServiceUpdate) -> ApplyResult:
        # The controller counts failures of the new template since started_at: a resume starts
        # that count afresh, or an update paused on failures would pause again at once.
        return self._move_update(
            cmd.name, cmd.at, _RESUMED, "", "its update is not paused", started_at=cmd.at, failed_tasks=[]
        )

    def remove(self, cmd: RemoveService) -> ApplyResult:
        old = self._current(cmd.name, cmd.expected_version)
        if isinstance(old, CommandError):
            return old
        reason = REMOVED_REASON.format(name=cmd.name)
        for task in self._state.service_tasks(cmd.name):
            if task.state not in TERMINAL:
                self._state.stop_task(task, cmd.at, reason)
        self._store(old, None)
        self._tombstones.service_removed(old.name, old.version, cmd.at)
        return old

    def step(self, cmd: ServiceStep) -> ApplyResult:
        service = self._services.get(cmd.name)
        if service is None:
            return _no_service(cmd.name)
        if cmd.expected_version != service.version:
            return CommandError(
                Refusal.CONFLICT,
                f"stale step for service {cmd.name}: made at version {cmd.expected_version}, "
                f"it is at {service.version}",
            )
        # Everything is checked before anything changes: a step is applied whole or not at all.
        problem = self._step_problem(service, cmd)
        if problem is not None:
            return CommandError(Refusal.INVALID, f"service step for {cmd.name}: {problem}")
        state = self._state
        for task in cmd.add:
            health = Health.STARTING if task.health_check is not None else Health.NONE
            task = msgspec.structs.replace(task, health=health.value, drain_at=0.0)
            state.put_task(None, state.new_task(task, cmd.at, f"created by service {cmd.name}"), compact=True)
        for task_id in cmd.drain:
            task = state.task(task_id)
            if task is not None and task.state not in TERMINAL and not task.drain_at:
                state.change_task(task, cmd.at, drain_at=cmd.at, reason=DRAIN_REASON)
        stop_reason = STEP_STOP_REASON.format(name=cmd.name)
        for task_id in cmd.stop:
            task = state.task(task_id)
            if task is not None and task.state not in TERMINAL:
                state.stop_task(task, cmd.at, stop_reason)
        if cmd.status is not None and cmd.status != service.update:
            service = self._store(service, msgspec.structs.replace(service, update=cmd.status))
        return service

    def report_health(self, cmd: ReportHealth) -> ApplyResult:
        task = self._state.task(cmd.task_id)
        if task is None:
            return CommandError(Refusal.NOT_FOUND, f"no task with id {cmd.task_id}")
        if cmd.node_id != task.node_id or task.state not in ACTIVE_STATES or task.desired != Desired.RUN:
            return CommandError(
                Refusal.INVALID,
                f"stale health report for task {task.id} from {cmd.node_id}: "
                f"it is {task.state} on {task.node_id or 'no node'}",
            )
        if task.health == cmd.health:
            return task
        what = Health(cmd.health).value or "no health check"
        reason = f"{what}: {cmd.reason}" if cmd.reason else what
        return self._state.change_task(task, cmd.at, health=Health(cmd.health).value, reason=reason)

    # -- helpers -------------------------------------------------------------------------------

    def _store(self, old: Service | None, new: Service | None) -> Service:
        """Put ``new`` in place of ``old`` (either may be None), keeping the port index."""
        if old is not None:
            for port in old.spec.ports:
                self._published.pop((port.published, port.protocol), None)
            if new is None:
                del self._services[old.name]
                return old
        assert new is not None
        self._services[new.name] = new
        for port in new.spec.ports:
            self._published[(port.published, port.protocol)] = new.name
        return new

    def _port_clash(self, name: str, ports: list[ServicePort]) -> CommandError | None:
        for port in ports:
            owner = self._published.get((port.published, port.protocol))
            if owner is not None and owner != name:
                return CommandError(
                    Refusal.CONFLICT,
                    f"ports: published port {port.published}/{port.protocol} is taken by service {owner}",
                )
            holders = self._state.fixed_port_tasks(port.published, port.protocol)
            if holders:
                task = self._state.task(holders[0])
                shown = f"{task.name} ({task.id})" if task is not None else holders[0]
                return CommandError(
                    Refusal.CONFLICT,
                    f"ports: published port {port.published}/{port.protocol} is bound as a host port "
                    f"by task {shown}; every node's ingress needs it",
                )
        return None

    def _step_problem(self, service: Service, cmd: ServiceStep) -> str | None:
        state = self._state
        new_ids: set[str] = set()
        for task in cmd.add:
            if not task.id or task.id in new_ids or state.task(task.id) is not None:
                return f"task id {task.id!r} is empty, given twice or taken"
            new_ids.add(task.id)
            if (
                task.service != service.name
                or task.slot < 1
                or task.name != slot_name(service.name, task.slot)
            ):
                return f"task {task.id} is not a slot task of {service.name} (service, slot and name)"
            if task.version != service.template_version:
                return (
                    f"task {task.id} is of version {task.version}, the service runs "
                    f"template version {service.template_version}"
                )
            if fixed_host_ports(task):
                return f'task {task.id} binds a fixed host port; service tasks take dynamic ones ("0")'
            if not task.image or task.memory < 0 or task.disk < 0 or not 0 <= task.cpu < float("inf"):
                return f"task {task.id} needs an image and finite, non-negative resources"
        for task_id in [*cmd.drain, *cmd.stop]:
            task = state.task(task_id)
            if task is None or task.service != service.name:
                return f"task {task_id} is not a task of service {service.name}"
        return None

    def _move_update(
        self,
        name: str,
        at: float,
        moves: dict[UpdateState, UpdateState],
        message: str,
        refusal: str,
        **status: Any,
    ) -> ApplyResult:
        old = self._services.get(name)
        if old is None:
            return _no_service(name)
        current = UpdateState(old.update.state)
        if current in moves.values():
            return old  # already there (a retried pause or resume)
        if current not in moves:
            return CommandError(Refusal.INVALID, f"service {name}: {refusal} (update {current.value})")
        update = msgspec.structs.replace(old.update, state=moves[current].value, message=message, **status)
        return self._store(
            old, msgspec.structs.replace(old, update=update, version=old.version + 1, updated_at=at)
        )


def _no_service(name: str) -> CommandError:
    return CommandError(Refusal.NOT_FOUND, f"no service named {name}")


def _stale(service: Service, expected_version: int) -> CommandError | None:
    if expected_version and expected_version != service.version:
        return CommandError(
            Refusal.CONFLICT,
            f"service {service.name} is at version {service.version}, not {expected_version}: "
            "it changed since it was read; read it again",
        )
    return None


def _invalid(spec: ServiceSpec) -> CommandError | None:
    try:
        validate_spec(spec)
    except SpecError as exc:
        return CommandError(Refusal.INVALID, str(exc))
    return None
