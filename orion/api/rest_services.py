"""REST routes of services: which request a method and path ask for.

    GET    /services                    ListServices
    POST   /services                    CreateService   body: the spec; ?request_id= for retries
    GET    /services/{name}             GetService
    PUT    /services/{name}             UpdateService   body: the spec (+ "expectedVersion")
    DELETE /services/{name}             RemoveService
    GET    /services/{name}/tasks       ServiceTasks
    POST   /services/{name}/scale       ScaleService    body: {"replicas": N}
    POST   /services/{name}/rollback    RollbackService body: {} or {"expectedVersion": N}
    POST   /services/{name}/pause       PauseService
    POST   /services/{name}/resume      ResumeService

Bodies take ServiceSpec's fields in camelCase or snake_case (``maxPerNode``, ``max_per_node``)
with the friendly values every front end takes ("256MiB", "5s", "8080:80"); keys of the user's
own maps (``env``, ``constraints``) are kept as given. Errors name the field in camelCase.
"""

from __future__ import annotations

import re
from typing import Any

from orion.api.protocol import Request, RequestError, validate_request
from orion.api.requests import build_create_service, build_update_service
from orion.api.rest_bodies import json_object

_SERVICE_PATH = re.compile(r"^/services/(?P<name>[^/]+)(?P<action>/[a-z]+)?$")
_ACTIONS = {
    "/scale": "ScaleService",
    "/rollback": "RollbackService",
    "/pause": "PauseService",
    "/resume": "ResumeService",
}
_USER_MAPS = frozenset({"env", "constraints", "volumes"})  # their keys are the user's, never renamed


class NoRoute(LookupError):
    """No service route for this method and path (the caller answers 404)."""


def is_service_path(path: str) -> bool:
    return path == "/services" or path.startswith("/services/")


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def camel_field(field: str) -> str:
    """ "spec.template.stop_grace" -> "spec.template.stopGrace" (errors speak the body's words)."""
    parts = []
    for part in field.split("."):
        head, *rest = part.split("_")
        parts.append(head + "".join(word.title() for word in rest))
    return ".".join(parts)


def snake_keys(value: Any, user_map: bool = False) -> Any:
    if isinstance(value, dict):
        return {
            (key if user_map or not isinstance(key, str) else snake(key)): snake_keys(
                item, user_map=not user_map and isinstance(key, str) and snake(key) in _USER_MAPS
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [snake_keys(item) for item in value]
    return value


def _body(raw: bytes) -> dict[str, Any]:
    return snake_keys(json_object(raw))


def service_request(method: str, path: str, query: dict[str, str], raw_body: bytes) -> Request:
    """The request for a service route; NoRoute if there is none, RequestError if it is bad."""
    stale = query.get("stale", "").lower() == "true"
    if path == "/services":
        if method == "GET":
            return validate_request({"op": "ListServices", "stale": stale})
        if method == "POST":
            # ``request_id``: the REST caller's id of this create, the same on its retries, so a
            # late duplicate of a removed service cannot bring it back (orion/fsm/tombstones.py).
            return build_create_service(_body(raw_body), query.get("request_id", ""))
        raise NoRoute(f"no route {method} {path}")
    match = _SERVICE_PATH.match(path)
    if match is None:
        raise NoRoute(f"no route {method} {path}")
    name, action = match.group("name"), match.group("action")
    if action is None:
        if method == "GET":
            return validate_request({"op": "GetService", "name": name, "stale": stale})
        if method == "DELETE":
            return validate_request({"op": "RemoveService", "name": name})
        if method == "PUT":
            body = _body(raw_body)
            expected = body.pop("expected_version", 0)
            body.setdefault("name", name)
            if body["name"] != name:
                raise RequestError("name", f"the body names {body['name']!r}, the path {name!r}")
            return build_update_service(body, expected)
        raise NoRoute(f"no route {method} {path}")
    if action == "/tasks" and method == "GET":
        return validate_request({"op": "ServiceTasks", "name": name, "stale": stale})
    if action in _ACTIONS and method == "POST":
        fields = {"op": _ACTIONS[action], "name": name}
        body = _body(raw_body)
        if action == "/scale":
            if "replicas" not in body:
                raise RequestError("replicas", "is required")
            fields["replicas"] = body["replicas"]
        elif action == "/rollback" and "expected_version" in body:
            fields["expected_version"] = body["expected_version"]
        return validate_request(fields)
    raise NoRoute(f"no route {method} {path}")
