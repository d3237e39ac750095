"""The services' REST routes, through the real API actor and state machine: every route, and
400 / 404 / 409 with the field named in the body's own (camelCase) words."""

from __future__ import annotations

import json

from tests.api.service_stack import Stack, stack_fixture  # noqa: F401 (the stack fixture)
from tests.api.test_http import call

WEB = {
    "name": "web",
    "replicas": 2,
    "ports": ["8080:80"],
    "template": {
        "image": "nginx:1",
        "memory": "64MiB",
        "stopGrace": "20s",
        "env": {"MODE_X": "a", "camelKey": "kept as written"},
        "health": {"kind": "http", "port": 80, "startPeriod": "10s"},
    },
    "placement": {"maxPerNode": 1, "constraints": {"diskType": "ssd"}},
    "update": {"failureAction": "pause", "delay": "5s"},
}


def body(value: object) -> bytes:
    return json.dumps(value).encode()


def test_every_route(stack: Stack) -> None:
    http = stack.http
    status, created = call(http, "POST", "/services", body(WEB))
    assert status == 201
    assert (created["name"], created["version"], created["templateVersion"]) == ("web", 1, 1)
    template = created["spec"]["template"]
    assert (template["memory"], template["stopGrace"]) == (64 << 20, 20.0)
    assert template["env"] == {"MODE_X": "a", "camelKey": "kept as written"}
    assert template["health"]["startPeriod"] == 10.0
    assert created["spec"]["placement"] == {"spread": "", "maxPerNode": 1, "constraints": {"diskType": "ssd"}}
    assert created["spec"]["update"]["failureAction"] == "pause"

    assert call(http, "GET", "/services") == (200, [created])
    assert call(http, "GET", "/services/web") == (200, created)
    assert call(http, "GET", "/services/web/tasks") == (200, [])

    changed = {**WEB, "template": {**WEB["template"], "image": "nginx:2"}}  # type: ignore[dict-item]
    status, updated = call(http, "PUT", "/services/web", body({**changed, "expectedVersion": 1}))
    assert status == 200
    assert (updated["version"], updated["templateVersion"], updated["update"]["state"]) == (2, 2, "updating")
    status, scaled = call(http, "POST", "/services/web/scale", body({"replicas": 5}))
    assert (status, scaled["spec"]["replicas"], scaled["version"]) == (200, 5, 3)
    assert call(http, "POST", "/services/web/pause")[1]["update"]["state"] == "paused"
    assert call(http, "POST", "/services/web/resume")[1]["update"]["state"] == "updating"
    status, rolled = call(http, "POST", "/services/web/rollback", body({}))
    assert (status, rolled["spec"]["template"]["image"], rolled["update"]["state"]) == (
        200,
        "nginx:1",
        "rolling_back",
    )
    status, removed = call(http, "DELETE", "/services/web")
    assert (status, removed["name"]) == (200, "web")
    assert call(http, "GET", "/services") == (200, [])


def test_bad_requests_name_the_field(stack: Stack) -> None:
    http = stack.http
    cases = [
        ({**WEB, "replicas": -1}, "replicas", "replicas: must be >= 0"),
        ({**WEB, "name": "Web"}, "name", "name: 'Web' is not a valid service name"),
        (
            {**WEB, "template": {"image": "x", "stopGrace": "soon"}},
            "template.stopGrace",
            "cannot parse duration",
        ),
        (
            {**WEB, "template": {"image": "x", "health": {"kind": "tcp"}}},
            "template.health.port",
            "tcp checks need",
        ),
        ({**WEB, "update": {"order": "sideways"}}, "update.order", "'sideways' is not one of"),
        ({**WEB, "colour": "red"}, "colour", "unknown field"),
        ({**WEB, "ports": ["8080:80", "8080:81"]}, "ports", "given twice"),
    ]
    for value, field, message in cases:
        status, answer = call(http, "POST", "/services", body(value))
        assert status == 400, answer
        assert answer["field"] == field and message in answer["error"], answer
    status, answer = call(http, "POST", "/services", b"{not json")
    assert status == 400 and "malformed JSON" in answer["error"]
    call(http, "POST", "/services", body(WEB))
    status, answer = call(http, "POST", "/services/web/scale", body({}))
    assert (status, answer["field"]) == (400, "replicas")
    status, answer = call(http, "POST", "/services/web/scale", body({"replicas": -2}))
    assert (status, answer["error"]) == (400, "replicas: must be >= 0")
    status, answer = call(http, "PUT", "/services/web", body({**WEB, "name": "api"}))
    assert (status, answer["field"]) == (400, "name")
    status, answer = call(http, "POST", "/services/web/rollback")
    assert status == 400 and "no previous version" in answer["error"]


def test_missing_services_and_routes_are_404(stack: Stack) -> None:
    http = stack.http
    for method, path in [
        ("GET", "/services/nope"),
        ("GET", "/services/nope/tasks"),
        ("DELETE", "/services/nope"),
        ("POST", "/services/nope/pause"),
    ]:
        status, answer = call(http, method, path, b"{}" if method == "POST" else None)
        assert (status, answer["error"], answer["code"]) == (404, "no service named nope", "not_found")
    status, answer = call(http, "PUT", "/services/nope", body({**WEB, "name": "nope"}))
    assert status == 404
    status, answer = call(http, "POST", "/services/web/explode", b"{}")
    assert (status, answer["error"]) == (404, "no route POST /services/web/explode")
    assert call(http, "PUT", "/tasks", b"{}")[0] == 404


def test_conflicts_are_409(stack: Stack) -> None:
    http = stack.http
    call(http, "POST", "/services", body(WEB))
    status, answer = call(http, "POST", "/services", body({**WEB, "replicas": 3}))
    assert (status, answer["code"]) == (409, "conflict")
    assert "service web already exists" in answer["error"]
    status, answer = call(http, "POST", "/services", body({**WEB, "name": "api"}))
    assert status == 409 and "published port 8080/tcp is taken by service web" in answer["error"]
    stale = {**WEB, "replicas": 4, "expectedVersion": 7}
    status, answer = call(http, "PUT", "/services/web", body(stale))
    assert status == 409 and "at version 1, not 7" in answer["error"]
    status, answer = call(http, "POST", "/tasks", body({"image": "x", "portBindings": {"80/tcp": "8080"}}))
    assert status == 409 and "published by service web" in answer["error"]


def test_a_late_rest_retry_of_a_removed_service_does_not_bring_it_back(stack: Stack) -> None:
    """POST /services?request_id=...: the id a REST caller sends again on its retries."""
    http = stack.http
    status, created = call(http, "POST", "/services?request_id=rest-create-1", body(WEB))
    assert status == 201
    assert call(http, "DELETE", "/services/web")[0] == 200
    status, answer = call(http, "POST", "/services?request_id=rest-create-1", body(WEB))
    assert status == 409 and "late retry of the create that made it" in answer["error"]
    assert call(http, "GET", "/services/web")[0] == 404
    status, again = call(http, "POST", "/services?request_id=rest-create-2", body(WEB))
    assert status == 201 and again["version"] > created["version"]
    status, answer = call(http, "POST", "/services?request_id=" + "x" * 65, body({**WEB, "name": "api"}))
    assert status == 400 and "request_id" in answer["error"]
