"""REST routes of day-2 operations: task filters, task references, node drain and eligibility.

    GET  /tasks?state=running,pending&node=node2&service=web   ListTasks (filters optional)
    GET  /tasks/{ref}           GetTask: ref is an id, a unique id prefix (4+) or a name
    POST /nodes/{id}/drain      DrainNode          body: {} or {"deadline": "10m" | 600}
    POST /nodes/{id}/eligibility SetNodeEligibility body: {"eligible": true|false}

A reference in a path is URL-decoded first (a name may hold characters a path must escape).
Errors name the field as the body or query spells it.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote

from orion.api.protocol import Request, RequestError, validate_request
from orion.api.requests import build_list_tasks
from orion.api.rest_bodies import json_object
from orion.units import parse_duration

_NODE_ACTION = re.compile(r"^/nodes/(?P<node>[^/]+)/(?P<action>drain|eligibility)$")


class NoNodeRoute(LookupError):
    """Not a node action route (the caller answers 404)."""


def list_tasks_request(query: str) -> Request:
    """GET /tasks with its filters; each may be repeated or comma separated."""
    fields = parse_qs(query)
    stale = fields.get("stale", [""])[-1].lower() == "true"
    return build_list_tasks(
        fields.get("state") or None,
        node=fields.get("node", [""])[-1],
        service=fields.get("service", [""])[-1],
        stale=stale,
    )


def task_ref(raw: str) -> str:
    return unquote(raw)


def is_node_action(path: str) -> bool:
    return _NODE_ACTION.match(path) is not None


def node_action_request(path: str, raw_body: bytes) -> Request:
    match = _NODE_ACTION.match(path)
    if match is None:
        raise NoNodeRoute(f"no route POST {path}")
    node = unquote(match.group("node"))
    body = json_object(raw_body)
    if match.group("action") == "drain":
        unknown = sorted(set(body) - {"deadline"})
        if unknown:
            raise RequestError(unknown[0], "unknown field")
        deadline = body.get("deadline")
        if deadline is not None:
            try:
                deadline = parse_duration(deadline, "deadline")
            except ValueError as exc:
                raise RequestError("deadline", str(exc).partition(": ")[2] or str(exc)) from None
        return validate_request({"op": "DrainNode", "node": node, "deadline": deadline})
    unknown = sorted(set(body) - {"eligible"})
    if unknown:
        raise RequestError(unknown[0], "unknown field")
    if "eligible" not in body:
        raise RequestError("eligible", "is required (true or false)")
    return validate_request({"op": "SetNodeEligibility", "node": node, "eligible": body["eligible"]})
