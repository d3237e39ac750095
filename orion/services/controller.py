"""The service controller's pure core: a service, its tasks and the time -> one decision.

``decide`` reads no clock and draws no random number; the shell (orion/actors/service_actor.py)
passes the time and a function that makes task ids, and proposes the decision through Raft as
one ``ServiceStep`` (or ``RollbackService``), conditional on the service's version.

Rules, in the order they apply (vocabulary in orion/services/slots.py):

1. Stop what must go now: lost tasks (their node is dead or left) and unhealthy ones, and
   draining tasks whose ``drain_delay`` has passed (every node's ingress saw the drain).
2. Retire (drain if available, else stop at once) every task of a slot above ``replicas``
   (scale down: the highest slots go) and the duplicates of a slot.
3. A slot that holds an available task of the current template keeps only that one: an older
   one beside it is drained (start-first's overlap ends there).
4. Rolling update (state updating / rolling_back; paused does nothing here): failures of the
   new template since the update started are counted; above ``max_failure_ratio`` the failure
   action runs (rollback, pause, or continue). Otherwise, when no slot is in flight and
   ``delay`` has passed since the last batch finished, the next ``parallelism`` stale slots
   start: start-first adds a new task beside the old one; stop-first retires the old one,
   and the slot is filled once it stopped. The update completes once every slot is done and
   ``monitor`` seconds passed since the last batch, with no failure too many; a failure of a
   new task at any time until then counts (Swarm counts per task; this is the simple,
   stricter reading).
5. Node drains (``orion node drain``): a slot whose only task of the current template is on a
   draining node is EVACUATING; like a start-first update, a replacement starts elsewhere (the
   scheduler no longer places there) at most ``parallelism`` slots at a time, counting the
   evacuations in flight, and rule 3 drains the old task once the replacement is available.
6. Fill empty slots with a task of the current template, unless the slot's recent failures
   (of the current template) call for a backoff: the template's restart delay (or
   ``Settings.backoff_base``), doubled per failure within the window, capped.

Only ``template_version`` tasks are ever created, so no task of a version that was never
requested can appear.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec

from orion.model import Health, Task, TaskState
from orion.services.slots import (
    Resolution,
    SlotKind,
    SlotTasks,
    failed_at,
    group_slots,
    is_available,
    resolve,
)
from orion.services.spec import (
    FailureAction,
    Service,
    UpdateOrder,
    UpdatePolicy,
    UpdateState,
    UpdateStatus,
    slot_name,
)

DEFAULT_DRAIN_DELAY = 2.0  # [services] drain_delay
ACTIVE_UPDATES = frozenset({UpdateState.UPDATING, UpdateState.ROLLING_BACK})
SETTLED = frozenset({UpdateState.COMPLETED, UpdateState.ROLLED_BACK})
MAX_FAILED_RECORDED = 50  # ids kept in UpdateStatus.failed_tasks (the newest)
MAX_ADD_PER_STEP = 200  # one ServiceStep stays far below the FSM's 1 MiB command limit


@dataclass(frozen=True, slots=True)
class Settings:
    drain_delay: float = DEFAULT_DRAIN_DELAY
    backoff_base: float = 1.0  # seconds, when the template's restart policy sets no delay
    backoff_cap: float = 60.0
    backoff_window: float = 300.0  # failures older than this do not count (or restart.interval)
    max_add: int = MAX_ADD_PER_STEP


@dataclass(frozen=True, slots=True)
class Step:
    """One ``ServiceStep``: tasks to add (full Pending tasks), to drain, to stop, and the new
    update status (None: unchanged)."""

    add: tuple[Task, ...] = ()
    drain: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    status: UpdateStatus | None = None


@dataclass(frozen=True, slots=True)
class Rollback:
    """The update failed and its failure action is rollback: propose ``RollbackService``."""

    reason: str


Decision = Step | Rollback | None


@dataclass(slots=True)
class _Plan:
    add: list[Task] = field(default_factory=list)
    drain: list[str] = field(default_factory=list)
    stop: list[str] = field(default_factory=list)

    def retire(self, task: Task, down_nodes: frozenset[str]) -> None:
        """Out of service: a task the ingress may be sending to drains first; any other stops."""
        (self.drain if is_available(task, down_nodes) else self.stop).append(task.id)


def decide(
    service: Service,
    tasks: Sequence[Task],
    now: float,
    new_id: Callable[[], str],
    *,
    down_nodes: frozenset[str] = frozenset(),
    draining_nodes: frozenset[str] = frozenset(),
    settings: Settings = Settings(),
) -> Decision:
    """The controller's next step for ``service`` (``tasks``: every task of it, any state;
    ``draining_nodes``: nodes being drained, whose tasks move elsewhere)."""
    version = service.template_version
    replicas = service.spec.replicas
    slots = group_slots((t for t in tasks if t.service == service.name), down_nodes)
    plan = _Plan()
    for slot in slots.values():
        plan.stop.extend(t.id for t in slot.broken)
        plan.stop.extend(t.id for t in slot.draining if _drain_over(t, now, settings.drain_delay))
    resolutions: dict[int, Resolution] = {}
    for number in range(1, replicas + 1):
        resolution = resolve(slots.get(number, SlotTasks(number)), version, down_nodes, draining_nodes)
        resolutions[number] = resolution
        for task in resolution.retire:
            plan.retire(task, down_nodes)
    for number, slot in slots.items():
        if not 1 <= number <= replicas:
            for task in slot.occupants:
                plan.retire(task, down_nodes)
    progress = _update(service, tasks, resolutions, now, plan, down_nodes)
    if progress.rollback is not None:
        return progress.rollback
    wanted = {n for n, r in resolutions.items() if r.kind == SlotKind.EMPTY} | set(progress.start_beside)
    wanted |= set(_evacuations(service, resolutions, draining_nodes))
    _fill(service, slots, sorted(wanted), now, new_id, plan, settings)
    changed_status = progress.status if progress.status != service.update else None
    if not (plan.add or plan.drain or plan.stop or changed_status):
        return None
    return Step(
        add=tuple(plan.add),
        drain=tuple(sorted(set(plan.drain))),
        stop=tuple(sorted(set(plan.stop))),
        status=changed_status,
    )


def _evacuations(
    service: Service, resolutions: dict[int, Resolution], draining_nodes: frozenset[str]
) -> list[int]:
    """EVACUATING slots that get their replacement now: as many as the update policy's
    ``parallelism`` allows (0: all) beside those whose replacement is still starting."""
    waiting = sorted(n for n, r in resolutions.items() if r.kind == SlotKind.EVACUATING)
    if not waiting:
        return []
    parallelism = update_policy(service).parallelism
    if not parallelism:
        return waiting
    moving = sum(
        1
        for r in resolutions.values()
        if r.kind == SlotKind.STARTING and any(t.node_id in draining_nodes for t in r.keep[1:])
    )
    return waiting[: max(0, parallelism - moving)]


def _drain_over(task: Task, now: float, drain_delay: float) -> bool:
    # Only a Running task can be in some ingress; any other has nothing to drain.
    return task.state != TaskState.RUNNING or now >= task.drain_at + drain_delay


# -- the rolling update ---------------------------------------------------------------------


def update_policy(service: Service) -> UpdatePolicy:
    """The policy the update in progress follows: ``rollback`` while rolling back."""
    rolling_back = service.update.state in (UpdateState.ROLLING_BACK, UpdateState.ROLLBACK_PAUSED)
    policy = service.spec.rollback if rolling_back else service.spec.update
    if any(not mount.read_only for mount in service.spec.template.volumes):
        # A volume written by the old task is not given to the new one while the old runs
        # (single-writer, and a local volume pins both to one node): stop-first, always.
        policy = msgspec.structs.replace(policy, order=UpdateOrder.STOP_FIRST.value)
    return policy


def update_failures(service: Service, tasks: Sequence[Task], status: UpdateStatus) -> list[Task]:
    """Tasks of the current template that failed since the update started, oldest first."""
    found = []
    for task in tasks:
        if task.service != service.name or task.version != service.template_version:
            continue
        when = failed_at(task)
        if when is not None and when >= status.started_at:
            found.append((when, task.id, task))
    return [task for _, _, task in sorted(found, key=lambda item: item[:2])]


@dataclass(frozen=True, slots=True)
class _Progress:
    status: UpdateStatus  # the update status to hold after this step
    rollback: Rollback | None = None
    start_beside: tuple[int, ...] = ()  # start-first: slots that get a new task beside the old one


def _update(
    service: Service,
    tasks: Sequence[Task],
    resolutions: dict[int, Resolution],
    now: float,
    plan: _Plan,
    down_nodes: frozenset[str],
) -> _Progress:
    """Advance the rolling update: count failures, act on them, start the next batch."""
    status = service.update
    stale = [n for n, r in resolutions.items() if r.kind == SlotKind.STALE]
    if status.state in SETTLED:
        if not stale:
            return _Progress(status)
        # Tasks of an older template but no update under way (a status lost or never set):
        # this is an update like any other, from the newest older version found.
        older = max(r.keep[0].version for r in resolutions.values() if r.kind == SlotKind.STALE)
        restarted = UpdateStatus(
            state=UpdateState.UPDATING,
            from_version=older,
            to_version=service.template_version,
            started_at=now,
        )
        return _Progress(restarted)
    if status.state not in ACTIVE_UPDATES:
        return _Progress(status)  # paused: only healing goes on
    policy = update_policy(service)
    failures = update_failures(service, tasks, status)
    failed_ids = [t.id for t in failures][-MAX_FAILED_RECORDED:]
    if failed_ids != status.failed_tasks:
        status = msgspec.structs.replace(status, failed_tasks=failed_ids)
    if failures and len(failures) / max(1, service.spec.replicas) > policy.max_failure_ratio:
        action = _failure_action(service, policy)
        reason = _failure_reason(service, failures)
        if action == FailureAction.ROLLBACK:
            return _Progress(status, rollback=Rollback(reason))
        if action == FailureAction.PAUSE:
            paused = (
                UpdateState.PAUSED if status.state == UpdateState.UPDATING else UpdateState.ROLLBACK_PAUSED
            )
            return _Progress(msgspec.structs.replace(status, state=paused, message=reason))
    done = sorted(n for n, r in resolutions.items() if r.kind == SlotKind.DONE)
    in_flight = sum(1 for r in resolutions.values() if r.kind != SlotKind.DONE and r.kind != SlotKind.STALE)
    if done != status.updated_slots:
        grown = not set(done) <= set(status.updated_slots)
        status = msgspec.structs.replace(status, updated_slots=done)
        if grown and in_flight == 0:
            status = msgspec.structs.replace(status, batch_done_at=now)
    if not stale and in_flight == 0:
        settled_at = max(status.batch_done_at, status.started_at)
        if now >= settled_at + policy.monitor:
            finished = (
                UpdateState.COMPLETED if status.state == UpdateState.UPDATING else UpdateState.ROLLED_BACK
            )
            status = msgspec.structs.replace(status, state=finished, finished_at=now)
        return _Progress(status)
    if not stale or in_flight > 0 or now < status.batch_done_at + policy.delay:
        return _Progress(status)
    # The next batch: slots whose old task serves nothing anyway go first.
    batch = sorted(stale, key=lambda n: (is_available(resolutions[n].keep[0], down_nodes), n))
    batch = batch[: policy.parallelism or len(batch)]
    if policy.order == UpdateOrder.START_FIRST:
        return _Progress(status, start_beside=tuple(batch))
    for number in batch:  # stop-first: the slot is filled once its old task stopped
        for task in resolutions[number].keep:
            plan.retire(task, down_nodes)
    return _Progress(status)


def _failure_action(service: Service, policy: UpdatePolicy) -> str:
    action = policy.failure_action
    if action == FailureAction.ROLLBACK and (
        service.update.state == UpdateState.ROLLING_BACK or not service.previous
    ):
        return FailureAction.PAUSE  # a rollback is not rolled back; nothing to go back to
    return action


def _failure_reason(service: Service, failures: list[Task]) -> str:
    last = failures[-1]
    why = last.reason or (last.health if last.health == Health.UNHEALTHY else last.state)
    return (
        f"{len(failures)} of {service.spec.replicas} task(s) of version {service.template_version} "
        f"failed (last: {last.name} {why})"
    )


# -- filling slots --------------------------------------------------------------------------


def _fill(
    service: Service,
    slots: dict[int, SlotTasks],
    wanted: list[int],
    now: float,
    new_id: Callable[[], str],
    plan: _Plan,
    settings: Settings,
) -> None:
    """New tasks of the current template for the ``wanted`` slots whose backoff is over."""
    for number in wanted:
        if len(plan.add) >= settings.max_add:
            break
        slot = slots.get(number, SlotTasks(number))
        if now < ready_at(service, slot, settings):
            continue
        plan.add.append(new_task(service, number, new_id(), now))


def ready_at(service: Service, slot: SlotTasks, settings: Settings) -> float:
    """When the slot may get a new task of the current template: at once, unless tasks of
    that template failed in it recently; then ``base * 2**(n-1)`` after the last of the n
    failures within the window, capped."""
    restart = service.spec.template.restart
    base = (restart.delay if restart is not None and restart.delay else None) or settings.backoff_base
    window = (
        restart.interval if restart is not None and restart.interval else None
    ) or settings.backoff_window
    times = sorted(
        when
        for task in slot.ended
        if task.version == service.template_version and (when := failed_at(task)) is not None
    )
    if not times:
        return 0.0
    recent = [t for t in times if t >= times[-1] - window]
    return times[-1] + min(settings.backoff_cap, base * 2 ** (len(recent) - 1))


def new_task(service: Service, slot: int, task_id: str, now: float) -> Task:
    """A Pending task of the service's current template for ``slot``. Every target port (and
    the health check's port) is published on a dynamic host port, so an old and a new task
    can run side by side on one node; placement constraints become node selectors."""
    spec = service.spec
    template = spec.template
    bindings = {f"{port.target}/{port.protocol}": "0" for port in spec.ports}
    check = template.health
    if check is not None and check.kind in ("http", "tcp") and check.port:
        bindings.setdefault(f"{check.port}/tcp", "0")
    return Task(
        id=task_id,
        name=slot_name(service.name, slot),
        image=template.image,
        memory=template.memory,
        cpu=template.cpu,
        disk=template.disk,
        node_selectors=dict(spec.placement.constraints),
        port_bindings=bindings,
        command=list(template.command) if template.command is not None else None,
        env=dict(template.env),
        created_at=now,
        updated_at=now,
        restart=template.restart,
        service=service.name,
        slot=slot,
        version=service.template_version,
        health_check=check,
        stop_grace=template.stop_grace,
        volumes=list(template.volumes),
    )
