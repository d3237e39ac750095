"""``GET /openapi.json``: the REST mirror described as OpenAPI 3.1, from one route table.

``ROUTES`` lists every route the REST server answers: method, path, parameters, body, answer
and whether it needs the bearer token. The schemas are generated from the very msgspec types
the server decodes and answers with (``RestSubmit``, ``ServiceSpec``, ``Task``, ``NodeInfo``...),
with field names in camelCase as the REST mirror speaks them, so a field added to a type shows
up here by itself. tests/api/test_openapi.py asks the server every documented route (it must
not answer "no route") and a set of near misses (they must), so table and server agree.

The document is public like ``/health``: it says what the API takes, nothing about the cluster.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

import msgspec

from orion.api.protocol import NodeInfo, RaftInfo, VolumeInfo
from orion.api.rest_bodies import RestSubmit
from orion.model import Task
from orion.services.spec import Service, ServiceSpec
from orion.volumes.spec import Volume, VolumeSpec

OPENAPI_PATH = "/openapi.json"
JSON = "application/json"
_SCHEMAS = "#/components/schemas/{name}"


# ---------------------------------------------------------------- bodies documented here only
# The server reads these bodies field by field (orion/api/rest_ops.py, rest_services.py); these
# types only describe them.


class DrainBody(msgspec.Struct, kw_only=True):
    deadline: str | float | None = None  # "10m" or seconds; none: no deadline


class EligibilityBody(msgspec.Struct, kw_only=True):
    eligible: bool


class ScaleBody(msgspec.Struct, kw_only=True):
    replicas: int


class RollbackBody(msgspec.Struct, kw_only=True):
    expected_version: int = 0  # 0: whatever version the service is at


class ServiceUpdateBody(ServiceSpec, kw_only=True):
    """PUT /services/{name}: the whole spec, and the version it was read at (0: any)."""

    expected_version: int = 0


class Health(msgspec.Struct, kw_only=True):
    status: str  # ok, no_leader or unavailable
    node: str = ""
    role: str = ""
    api_port: int = 0


class Error(msgspec.Struct, kw_only=True):
    error: str  # what went wrong, in words
    code: str  # invalid, not_found, unauthorized, conflict, unavailable, not_leader, timeout...
    field: str = ""  # the body or query field at fault, camelCase


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    where: str = "query"
    required: bool = False


@dataclass(frozen=True, kw_only=True)
class Route:
    method: str
    path: str  # OpenAPI template: /tasks/{ref}
    summary: str
    params: tuple[Param, ...] = ()
    body: Any = None  # a type, described as a JSON body
    result: Any = None  # a type answered as JSON, or None with ``media`` set
    media: str = JSON  # the answer's content type
    status: int = 200
    public: bool = False  # answered without a token


def _flag(name: str, description: str) -> Param:
    return Param(name, description, {"type": "boolean"})


STALE = _flag("stale", "answer from this node's own state instead of through the leader")
REQUEST_ID = Param(
    "request_id",
    "the caller's id of this create (up to 64 characters), the same on its retries: a late retry "
    "of a create whose service was removed since is refused instead of bringing it back",
)
TASK_REF = Param("ref", "task id, unique id prefix (4+ characters) or name", where="path", required=True)
NODE_ID = Param("node", "node id", where="path", required=True)
SERVICE = Param("name", "service name", where="path", required=True)
VOLUME = Param("name", "volume name", where="path", required=True)
_SERVICE_ACTIONS = (
    ("scale", "Set the number of replicas", ScaleBody),
    ("rollback", "Roll back to the previous template", RollbackBody),
    ("pause", "Pause a rolling update", None),
    ("resume", "Resume a paused rolling update", None),
)

ROUTES: tuple[Route, ...] = (
    Route(
        method="GET",
        path="/health",
        summary="Is a leader known (for load balancers)",
        result=Health,
        public=True,
    ),
    Route(method="GET", path=OPENAPI_PATH, summary="This document", result=dict, public=True),
    Route(method="GET", path="/ui", summary="The web console", media="text/html", public=True),
    Route(
        method="GET",
        path="/ui/{file}",
        summary="The web console's script and style sheet",
        params=(Param("file", "console.js or console.css", where="path", required=True),),
        media="text/javascript",
        public=True,
    ),
    Route(
        method="GET",
        path="/metrics",
        summary="Prometheus metrics (without a token when [security] metrics_public = true)",
        media="text/plain; version=0.0.4",
    ),
    Route(
        method="GET",
        path="/raft",
        summary="This node's Raft view: leader, term, indexes, members",
        result=RaftInfo,
    ),
    Route(
        method="GET",
        path="/nodes",
        summary="Cluster members with capacity and placement",
        params=(STALE,),
        result=list[NodeInfo],
    ),
    Route(
        method="POST",
        path="/nodes/{node}/drain",
        summary="Drain a node: move its tasks elsewhere, take no new ones",
        params=(NODE_ID,),
        body=DrainBody,
        result=NodeInfo,
    ),
    Route(
        method="POST",
        path="/nodes/{node}/eligibility",
        summary="Stop or resume new placements on a node",
        params=(NODE_ID,),
        body=EligibilityBody,
        result=NodeInfo,
    ),
    Route(
        method="GET",
        path="/tasks",
        summary="List tasks",
        params=(
            Param("state", "only these states (repeat or comma separate)"),
            Param("node", "only tasks on this node"),
            Param("service", "only tasks of this service"),
            STALE,
        ),
        result=list[Task],
    ),
    Route(method="POST", path="/tasks", summary="Submit a task", body="RestSubmit", result=Task, status=201),
    Route(
        method="GET",
        path="/tasks/{ref}",
        summary="One task, with its history",
        params=(TASK_REF, STALE),
        result=Task,
    ),
    Route(
        method="DELETE",
        path="/tasks/{ref}",
        summary="Stop a task, or with remove=true remove it",
        params=(
            TASK_REF,
            _flag("remove", "remove the task (stopping it first) instead of only stopping it"),
            _flag("force", "with remove=true: remove even if its node cannot confirm the stop"),
        ),
        result=Task,
    ),
    Route(
        method="GET",
        path="/tasks/{ref}/logs",
        summary="A task's container output, from the node that runs it (chunked)",
        params=(
            TASK_REF,
            _flag("follow", "keep streaming new output while the task runs"),
            Param("tail", "only the last N lines", {"type": "integer", "minimum": 0}),
            Param("since", "only output after this: a duration before now (10m) or Unix seconds"),
        ),
        media="text/plain; charset=utf-8",
    ),
    Route(
        method="GET",
        path="/events",
        summary="Committed changes as server-sent events; id: is the Raft index (Last-Event-ID resumes)",
        params=(
            Param("since", "events after this Raft index", {"type": "integer", "minimum": 0}),
            Param("type", "only these types: task, node, service (repeat or comma separate)"),
            _flag("follow", "keep the stream open (default); 0 ends it once caught up"),
            Param(
                "Last-Event-ID",
                "resume after this Raft index (browsers send it on reconnect)",
                where="header",
            ),
        ),
        media="text/event-stream",
    ),
    Route(method="GET", path="/services", summary="List services", params=(STALE,), result=list[Service]),
    Route(
        method="POST",
        path="/services",
        summary="Create a service",
        params=(REQUEST_ID,),
        body=ServiceSpec,
        result=Service,
        status=201,
    ),
    Route(
        method="GET", path="/services/{name}", summary="One service", params=(SERVICE, STALE), result=Service
    ),
    Route(
        method="PUT",
        path="/services/{name}",
        summary="Update a service's spec (a rolling update when the template changes)",
        params=(SERVICE,),
        body=ServiceUpdateBody,
        result=Service,
    ),
    Route(
        method="DELETE",
        path="/services/{name}",
        summary="Remove a service and its tasks",
        params=(SERVICE,),
        result=Service,
    ),
    Route(
        method="GET",
        path="/services/{name}/tasks",
        summary="A service's tasks",
        params=(SERVICE, STALE),
        result=list[Task],
    ),
    *(
        Route(
            method="POST",
            path=f"/services/{{name}}/{action}",
            summary=summary,
            params=(SERVICE,),
            body=body,
            result=Service,
        )
        for action, summary, body in _SERVICE_ACTIONS
    ),
    # Volumes (orion/api/rest_volumes.py)
    Route(
        method="GET",
        path="/volumes",
        summary="List volumes and their users",
        params=(STALE,),
        result=list[VolumeInfo],
    ),
    Route(
        method="POST", path="/volumes", summary="Create a volume", body=VolumeSpec, result=Volume, status=201
    ),
    Route(
        method="GET",
        path="/volumes/{name}",
        summary="One volume and its users",
        params=(VOLUME, STALE),
        result=VolumeInfo,
    ),
    Route(
        method="DELETE",
        path="/volumes/{name}",
        summary="Remove a volume and its data (409 while mounted)",
        params=(VOLUME,),
        result=Volume,
    ),
)

_ERRORS = {
    "400": "Bad request: the field at fault is named",
    "401": "No valid bearer token",
    "404": "No such task, node, service or route",
    "409": "Conflict: the id or version is taken or stale",
    "503": "No leader just now or a leader hand-over (Retry-After: 1): nothing was done",
    "504": "No answer within the node's deadline",
}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _camel_schema(value: Any) -> Any:
    """Property names as the REST mirror writes them; keys of user maps are not properties."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "properties" and isinstance(item, dict):
                out[key] = {camel(name): _camel_schema(prop) for name, prop in item.items()}
            elif key == "required" and isinstance(item, list):
                out[key] = [camel(name) for name in item]
            else:
                out[key] = _camel_schema(item)
        return out
    if isinstance(value, list):
        return [_camel_schema(item) for item in value]
    return value


def _types() -> dict[str, Any]:
    return {"RestSubmit": RestSubmit}


def _body_type(body: Any) -> Any:
    return _types()[body] if isinstance(body, str) else body


def _answer(route: Route, schema: dict[str, Any] | None) -> dict[str, Any]:
    content: dict[str, Any] = {route.media: {"schema": schema} if schema is not None else {}}
    return {"description": "OK" if route.status == 200 else "Created", "content": content}


def _operation(route: Route, schemas: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.method.lower()
        + "".join(part.strip("{}").title() for part in route.path.replace(".", "/").split("/") if part),
        "summary": route.summary,
    }
    if route.params:
        operation["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required,
                "description": p.description,
                "schema": p.schema,
            }
            for p in route.params
        ]
    if route.body is not None:
        body = _body_type(route.body)
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": schemas[body]}}}
    answer = schemas[route.result] if route.result is not None and route.result is not dict else None
    if route.result is dict:
        answer = {"type": "object"}
    responses: dict[str, Any] = {str(route.status): _answer(route, answer)}
    error_ref = {"$ref": _SCHEMAS.format(name="Error")}
    for code, description in _ERRORS.items():
        if route.public and code in ("401", "409"):
            continue
        responses[code] = {"description": description, "content": {JSON: {"schema": error_ref}}}
    operation["responses"] = responses
    if route.public:
        operation["security"] = []  # overrides the document's default: no token needed
    return operation


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI document (built once: it depends on the code only)."""
    typed = [r.result for r in ROUTES if r.result is not None and r.result is not dict]
    bodies = [_body_type(r.body) for r in ROUTES if r.body is not None]
    wanted = list(dict.fromkeys([*typed, *bodies, Error]))
    refs, components = msgspec.json.schema_components(wanted, ref_template=_SCHEMAS)
    schemas = dict(zip(wanted, refs, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Orion REST API",
            "version": "1",
            "description": "The REST mirror of Orion's client API, on every node's HTTP port. "
            "Bodies and answers are JSON with camelCase keys; keys of user maps (env, selectors) are "
            "kept as given. Reads go through the leader unless stale=true.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": _camel_schema(components),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The cluster's client token (ORION_TOKEN for the CLI)",
                }
            },
        },
    }


@functools.cache
def document_bytes() -> bytes:
    return json.dumps(document(), separators=(",", ":")).encode()
