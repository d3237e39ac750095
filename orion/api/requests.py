"""A task submit, built and checked the same way whichever front end takes it.

The Python client (and the CLI through it) and the REST mirror take a submit in friendly
shapes: sizes as "256MiB", ports as ``{"80": 8080}``, a restart policy by name, no id, no
name. ``build_submit`` turns those into one validated ``SubmitTask`` (RequestError naming
the field otherwise), choosing the id once so that every retry carries it. The API actor
turns a SubmitTask into the Task it proposes with ``task_of``; a raw request without a name
gets the same default name (``orion.model.task_name``) as one built here.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, cast

from orion.api.protocol import (
    RequestError,
    SubmitTask,
    normalize_port_bindings,
    restart_fields,
    validate_request,
)
from orion.model import RestartSpec, Task, TaskState, task_name
from orion.units import parse_size


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
        }
    except ValueError as exc:  # parse_size and parse_duration say "field: reason"
        field, _, reason = str(exc).partition(": ")
        raise (RequestError(field, reason) if reason else RequestError("", field)) from None
    return cast(SubmitTask, validate_request(fields))


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
    )
