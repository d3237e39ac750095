"""Services: what a user declares (``ServiceSpec``) and what the cluster records about it
(``Service``). Records only: validation lives in orion/services/validate.py, the controller
that turns a service into tasks in orion/services/controller.py.

A service keeps ``replicas`` tasks of one template running, spread over nodes, each in a slot
(``web.1`` ... ``web.N``). ``version`` goes up on every change of the spec (update, scale,
rollback); ``template_version`` is the version that introduced the template the tasks should
run, and each task records the template version it was made from (``Task.version``), so a
scale does not replace tasks and a rollback only replaces the tasks of the rolled-back template.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

import msgspec

from orion.model import HealthCheck, RestartSpec, VolumeMount

MAX_REPLICAS = 1000
KEPT_VERSIONS = 5  # earlier templates a service keeps for rollback and ``service inspect``


class UpdateOrder(StrEnum):
    START_FIRST = "start-first"  # the new task runs and is healthy before the old one drains
    STOP_FIRST = "stop-first"  # the old task drains and stops before the new one starts


class FailureAction(StrEnum):
    ROLLBACK = "rollback"
    PAUSE = "pause"
    CONTINUE = "continue"


class UpdatePolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How tasks of a new template replace the old ones (Swarm's ``--update-*`` flags)."""

    parallelism: Annotated[int, msgspec.Meta(ge=0, le=MAX_REPLICAS)] = 1  # slots at once; 0 = all
    delay: Annotated[float, msgspec.Meta(ge=0, le=86400)] = 0.0  # seconds between batches
    order: Literal["start-first", "stop-first"] = UpdateOrder.START_FIRST
    # A new task that fails, exits or turns unhealthy within ``monitor`` seconds of becoming
    # available counts as a failure of the update.
    monitor: Annotated[float, msgspec.Meta(ge=0, le=86400)] = 5.0
    max_failure_ratio: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    failure_action: Literal["rollback", "pause", "continue"] = FailureAction.ROLLBACK


DEFAULT_ROLLBACK = UpdatePolicy(failure_action=FailureAction.PAUSE)


class ServicePort(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``-p 8080:80``: every node's ingress accepts connections on ``published`` and sends them
    to ``target`` of a healthy task, wherever it runs. Tasks publish ``target`` on an ephemeral
    host port of their node's address, so an old and a new task can run side by side."""

    published: Annotated[int, msgspec.Meta(ge=1, le=65535)]
    target: Annotated[int, msgspec.Meta(ge=1, le=65535)]
    protocol: Literal["tcp"] = "tcp"


class Placement(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    spread: str = ""  # node tag to spread over (e.g. "zone"); "" = spread over nodes
    max_per_node: Annotated[int, msgspec.Meta(ge=0, le=MAX_REPLICAS)] = 0  # 0 = no limit
    constraints: dict[str, str] = {}  # node tags a node must have (node selectors)


class TaskTemplate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What every task of the service runs; a change of any field is a rolling update."""

    image: str
    command: list[str] | None = None
    env: dict[str, str] = {}
    memory: Annotated[int, msgspec.Meta(ge=0)] = 0  # bytes
    cpu: Annotated[float, msgspec.Meta(ge=0)] = 0.0  # cores
    disk: Annotated[int, msgspec.Meta(ge=0)] = 0  # bytes
    restart: RestartSpec | None = None
    health: HealthCheck | None = None
    stop_grace: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 10.0  # seconds after SIGTERM
    # With a read-write mount the service updates stop-first (orion/services/controller.py).
    volumes: list[VolumeMount] = []


class ServiceSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the user declares (``orion service create``, ``orion apply -f web.toml``)."""

    name: str
    template: TaskTemplate
    replicas: Annotated[int, msgspec.Meta(ge=0, le=MAX_REPLICAS)] = 1
    ports: list[ServicePort] = []
    placement: Placement = Placement()
    update: UpdatePolicy = UpdatePolicy()
    rollback: UpdatePolicy = DEFAULT_ROLLBACK


class UpdateState(StrEnum):
    COMPLETED = "completed"  # every slot runs the current template (or nothing was ever updated)
    UPDATING = "updating"
    PAUSED = "paused"  # by the user, or by failure_action = pause
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_PAUSED = "rollback_paused"


class UpdateStatus(msgspec.Struct, frozen=True, kw_only=True):
    state: str = UpdateState.COMPLETED
    from_version: int = 0  # template versions
    to_version: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0
    message: str = ""  # why it paused or rolled back
    failed_tasks: list[str] = []  # tasks of this update that failed while monitored
    updated_slots: list[int] = []  # slots already running to_version's template, in order
    batch_done_at: float = 0.0  # when the last batch finished (``delay`` counts from here)


class ServiceVersion(msgspec.Struct, frozen=True, kw_only=True):
    """An earlier template and the version that introduced it."""

    version: int
    template: TaskTemplate
    ports: list[ServicePort] = []


class Service(msgspec.Struct, frozen=True, kw_only=True):
    """A service as the FSM holds it."""

    name: str
    spec: ServiceSpec
    version: int = 1  # up by one on every change of the spec
    template_version: int = 1  # the version whose template the tasks should run
    previous: list[ServiceVersion] = []  # earlier templates, oldest first (KEPT_VERSIONS)
    update: UpdateStatus = UpdateStatus()
    created_at: float = 0.0
    updated_at: float = 0.0


def slot_name(service: str, slot: int) -> str:
    """``web.2``: a service task's name (all tasks that filled a slot share it)."""
    return f"{service}.{slot}"
