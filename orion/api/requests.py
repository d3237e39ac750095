"""Task submits and service specs, built and checked the same way whichever front end takes them.

The Python client (and the CLI through it) and the REST mirror take a submit in friendly
shapes: sizes as "256MiB", ports as ``{"80": 8080}``, a restart policy by name, no id, no
name. ``build_submit`` turns those into one validated ``SubmitTask`` (RequestError naming
the field otherwise), choosing the id once so that every retry carries it. The API actor
turns a SubmitTask into the Task it proposes with ``task_of``; a raw request without a name
gets the same default name (``orion.model.task_name``) as one built here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, cast

import msgspec

from orion.api.protocol import (
    CreateService,
    CreateVolume,
    ListTasks,
    RequestError,
    SubmitTask,
    UpdateService,
    normalize_port_bindings,
    restart_fields,
    validate_request,
)
from orion.model import HealthCheck, RestartSpec, Task, TaskState, VolumeMount, task_name
from orion.services.spec import Placement, ServicePort, ServiceSpec, TaskTemplate, UpdatePolicy
from orion.services.validate import SpecError, spec_from_builtins, validate_spec
from orion.units import parse_duration, parse_size
from orion.volumes.spec import (
    ACCESS_MODES,
    VolumeSpec,
    VolumeSpecError,
    mounts_from_mapping,
    parse_mount,
    validate_volume_spec,
)


def build_submit(
    image: str,
    *,
    id: str | None = None,
    name: str | None = None,
    memory: int | str = 0,
    cpu: float = 0.0,
    disk: int | str = 0,
    ports: Mapping[Any, str | int | None] | None = None,
    node_selectors: Mapping[str, str] | None = None,
    command: list[str] | str | None = None,
    env: Mapping[str, str] | None = None,
    restart: str | Mapping[str, Any] | RestartSpec | None = None,
    volumes: Mapping[str, str] | Iterable[str] | None = None,
) -> SubmitTask:
    """A validated SubmitTask; RequestError names the (snake_case) field and the reason.

    ``id``: chosen here when not given (a uuid), once: retries send the same request.
    ``command`` must be a list of arguments; a string goes to validation as it is, to be
    refused there (no shell parsing), as every front end refuses it.
    """
    task_id = id or uuid.uuid4().hex
    try:
        fields: dict[str, Any] = {
            "op": "SubmitTask",
            "id": task_id,
            "name": task_name(name, task_id),
            "image": image,
            "memory": parse_size(memory, "memory"),
            "cpu": cpu,
            "disk": parse_size(disk, "disk"),
            "port_bindings": normalize_port_bindings(ports),
            "node_selectors": dict(node_selectors or {}),
            "command": command if command is None or isinstance(command, str) else list(command),
            "env": dict(env or {}),
            # "always", or {"policy": "on-failure", "attempts": 5, "interval": "10m", ...}
            "restart": restart_fields(restart),
            "volumes": mount_fields(volumes),
        }
    except ValueError as exc:  # parse_size and parse_duration say "field: reason"
        field, _, reason = str(exc).partition(": ")
        raise (RequestError(field, reason) if reason else RequestError("", field)) from None
    return cast(SubmitTask, validate_request(fields))


_STATE_NAMES = {state.value.lower(): state.value for state in TaskState}


def build_list_tasks(
    state: str | Iterable[str] | None = None,
    *,
    node: str | None = None,
    service: str | None = None,
    stale: bool = False,
) -> ListTasks:
    """A validated ListTasks: ``state`` is one TaskState or several (a list, or "running,pending"),
    in any case; ``node`` a node id; ``service`` a service name. RequestError names the field."""
    given = [state] if isinstance(state, str) else list(state or [])
    states: list[str] = []
    for item in given:
        for word in str(item).split(","):
            if not word.strip():
                continue
            canonical = _STATE_NAMES.get(word.strip().lower())
            if canonical is None:
                raise RequestError(
                    "state",
                    f"unknown state {word.strip()!r}; expected one of {', '.join(_STATE_NAMES.values())}",
                )
            if canonical not in states:
                states.append(canonical)
    fields = {
        "op": "ListTasks",
        "states": states,
        "node": node or "",
        "service": service or "",
        "stale": stale,
    }
    return cast(ListTasks, validate_request(fields))


def task_of(request: SubmitTask, now: float) -> Task:
    """The Pending task a submit asks for, as the node proposes it (``now``: its wall clock)."""
    return Task(
        id=request.id,
        name=task_name(request.name, request.id),
        image=request.image,
        state=TaskState.PENDING,
        memory=request.memory,
        cpu=request.cpu,
        disk=request.disk,
        node_selectors=dict(request.node_selectors),
        port_bindings=dict(request.port_bindings),
        command=list(request.command) if request.command is not None else None,
        env=dict(request.env),
        restart=request.restart,
        created_at=now,
        updated_at=now,
        volumes=list(request.volumes),
    )


# ------------------------------------------------------------------------- volumes


def mount_fields(volumes: Mapping[str, str] | Iterable[Any] | None, field: str = "volumes") -> list[Any]:
    """Mounts in friendly shapes as plain fields: ``{"data": "/var/lib/app"}`` (``"/x:ro"`` read
    only), or a list of ``"data:/var/lib/app[:ro]"`` (the CLI's ``-v``) or of mount fields."""
    if volumes is None:
        return []
    if isinstance(volumes, Mapping):
        mounts = mounts_from_mapping(dict(volumes), field)
    else:
        mounts = []
        for item in volumes:
            if isinstance(item, str):
                mounts.append(parse_mount(item, field))
            elif isinstance(item, VolumeMount):
                mounts.append(item)
            else:
                mounts.append(msgspec.convert(item, VolumeMount))
    return [msgspec.to_builtins(mount) for mount in mounts]


def build_create_volume(
    name: str,
    *,
    driver: str = "local",
    options: Mapping[str, str] | None = None,
    node: str = "",
    access: str = "single-writer",
) -> CreateVolume:
    """A validated CreateVolume; RequestError names the field ("driver: unknown volume driver ...")."""
    spec = {"name": name, "driver": driver, "options": dict(options or {}), "node": node, "access": access}
    if access not in ACCESS_MODES:
        raise RequestError("access", f"{access!r} is not an access mode (known: {', '.join(ACCESS_MODES)})")
    try:
        validate_volume_spec(msgspec.convert(spec, VolumeSpec))
    except VolumeSpecError as exc:
        raise RequestError(exc.field, exc.reason) from None
    return cast(CreateVolume, validate_request({"op": "CreateVolume", "spec": spec}))


# ------------------------------------------------------------------------- services
# A service spec in friendly shapes, as the client, the CLI, REST and ``apply -f`` take it:
# the fields of ServiceSpec, with sizes as "256MiB", durations as "5s", ports as "8080:80"
# (or {"published": 8080, "target": 80}), a restart policy by name. ``service_spec`` turns
# them into one validated ServiceSpec, so every front end refuses the same things the same way.

_SIZES = ("memory", "disk")
_DURATIONS = {
    "template": ("stop_grace",),
    "health": ("interval", "timeout", "start_period"),
    "policy": ("delay", "monitor"),
}


def parse_service_port(value: Any, field: str = "ports") -> dict[str, Any]:
    """ "8080:80" / "8080:80/tcp" / {"published": 8080, "target": 80} -> ServicePort fields."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, ServicePort):
        return msgspec.structs.asdict(value)
    if not isinstance(value, str):
        raise RequestError(field, f"expected PUBLISHED:TARGET[/tcp] like '8080:80', got {value!r}")
    text, _, protocol = value.strip().partition("/")
    published, sep, target = text.partition(":")
    if not sep or not published.isdigit() or not target.isdigit():
        raise RequestError(field, f"expected PUBLISHED:TARGET[/tcp] like '8080:80', got {value!r}")
    fields: dict[str, Any] = {"published": int(published), "target": int(target)}
    if protocol:
        fields["protocol"] = protocol
    return fields


def _durations(fields: dict[str, Any], names: tuple[str, ...], path: str) -> None:
    for name in names:
        if isinstance(fields.get(name), str):
            fields[name] = parse_duration(fields[name], f"{path}.{name}")


def friendly_spec_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """ServiceSpec's fields with friendly values turned into plain ones (sizes, durations,
    ports, restart); ValueError "field.path: reason" when one cannot be read."""
    result = dict(fields)
    template = result.get("template")
    if isinstance(template, TaskTemplate):
        template = msgspec.structs.asdict(template)
    if isinstance(template, Mapping):
        template = dict(template)
        for name in _SIZES:
            if name in template and isinstance(template[name], str):
                template[name] = parse_size(template[name], f"template.{name}")
        _durations(template, _DURATIONS["template"], "template")
        if template.get("restart") is not None:
            template["restart"] = restart_fields(template["restart"])
        health = template.get("health")
        if isinstance(health, HealthCheck):
            health = msgspec.structs.asdict(health)
        if isinstance(health, Mapping):
            health = dict(health)
            _durations(health, _DURATIONS["health"], "template.health")
            template["health"] = health
        if isinstance(template.get("volumes"), Mapping | list):
            template["volumes"] = mount_fields(template["volumes"], "template.volumes")
        result["template"] = template
    if isinstance(result.get("ports"), list):
        result["ports"] = [parse_service_port(port, "ports") for port in result["ports"]]
    for policy_name in ("update", "rollback"):
        policy = result.get(policy_name)
        if isinstance(policy, UpdatePolicy):
            policy = msgspec.structs.asdict(policy)
        if isinstance(policy, Mapping):
            policy = dict(policy)
            _durations(policy, _DURATIONS["policy"], policy_name)
            result[policy_name] = policy
    if isinstance(result.get("placement"), Placement):
        result["placement"] = msgspec.structs.asdict(result["placement"])
    return result


def service_spec(fields: Mapping[str, Any]) -> ServiceSpec:
    """A validated ServiceSpec from friendly fields; RequestError naming the field path."""
    try:
        plain = friendly_spec_fields(fields)
    except ValueError as exc:
        if isinstance(exc, RequestError):
            raise
        field, _, reason = str(exc).partition(": ")
        raise (RequestError(field, reason) if reason else RequestError("", field)) from None
    try:
        return spec_from_builtins(plain)
    except SpecError as exc:
        raise RequestError(exc.field, exc.reason) from None


def spec_fields(spec: ServiceSpec) -> dict[str, Any]:
    """A spec as nested plain fields (the shape ``service_spec`` takes back)."""
    return cast(dict[str, Any], msgspec.to_builtins(spec))


def build_create_service(spec: ServiceSpec | Mapping[str, Any], request_id: str = "") -> CreateService:
    """A validated CreateService request; RequestError names the field by its path in the
    spec ("template.memory"), as the user wrote it. ``request_id``: the client's id of this
    create, the same on its retries ("": none)."""
    checked = _checked_spec(spec)
    fields = {"op": "CreateService", "spec": msgspec.to_builtins(checked), "request_id": request_id}
    return cast(CreateService, validate_request(fields))


def build_update_service(spec: ServiceSpec | Mapping[str, Any], expected_version: int = 0) -> UpdateService:
    checked = _checked_spec(spec)
    fields = {
        "op": "UpdateService",
        "spec": msgspec.to_builtins(checked),
        "expected_version": expected_version,
    }
    return cast(UpdateService, validate_request(fields))


def _checked_spec(spec: ServiceSpec | Mapping[str, Any]) -> ServiceSpec:
    if not isinstance(spec, ServiceSpec):
        return service_spec(spec)
    try:
        return validate_spec(spec)
    except SpecError as exc:
        raise RequestError(exc.field, exc.reason) from None


# Keyword arguments of ``create_service`` / ``update_service`` (client, CLI) -> where each goes
# in the spec. ``update`` and ``rollback`` take a mapping merged over the current policy.
SERVICE_KEYWORDS: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "image": ("template", "image"),
    "command": ("template", "command"),
    "env": ("template", "env"),
    "memory": ("template", "memory"),
    "cpu": ("template", "cpu"),
    "disk": ("template", "disk"),
    "restart": ("template", "restart"),
    "health": ("template", "health"),
    "stop_grace": ("template", "stop_grace"),
    "volumes": ("template", "volumes"),
    "replicas": ("replicas",),
    "ports": ("ports",),
    "constraints": ("placement", "constraints"),
    "spread": ("placement", "spread"),
    "max_per_node": ("placement", "max_per_node"),
    "update": ("update",),
    "rollback": ("rollback",),
}


def service_fields(base: ServiceSpec | None, **changes: Any) -> ServiceSpec:
    """``base`` (or an empty spec) with ``changes`` by keyword (SERVICE_KEYWORDS), validated.
    A change of None leaves the field as it is; ``health=False`` removes the health check.
    RequestError names the field (by its path in the spec) when the result is not valid."""
    unknown = sorted(set(changes) - set(SERVICE_KEYWORDS))
    if unknown:
        raise RequestError(unknown[0], f"unknown service field (known: {', '.join(SERVICE_KEYWORDS)})")
    fields: dict[str, Any] = spec_fields(base) if base is not None else {"template": {}}
    for keyword, value in changes.items():
        if value is None:
            continue
        *parents, leaf = SERVICE_KEYWORDS[keyword]
        target = fields
        for parent in parents:
            target = target.setdefault(parent, {})
        if keyword == "health" and value is False:
            value = None
        elif keyword in ("update", "rollback") and isinstance(value, Mapping):
            value = {**target.get(leaf, {}), **value}
        elif isinstance(value, msgspec.Struct):
            value = msgspec.to_builtins(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        target[leaf] = value
    return service_spec(fields)
