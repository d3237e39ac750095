"""The volumes' REST routes and mounts in POST /tasks and service bodies, through the real API
actor and state machine: every route, and 400 / 404 / 409 with the field named."""

from __future__ import annotations

import json

from tests.api.service_stack import Stack, stack_fixture  # noqa: F401 (the stack fixture)
from tests.api.test_http import call


def body(value: object) -> bytes:
    return json.dumps(value).encode()


def test_every_route(stack: Stack) -> None:
    http = stack.http
    spec = {"name": "data", "options": {"type": "tmpfs"}, "node": "n1", "access": "multi"}
    status, created = call(http, "POST", "/volumes", body(spec))
    assert status == 201
    assert (created["name"], created["state"], created["nodeId"]) == ("data", "pending", "n1")
    assert created["spec"] == {**spec, "driver": "local"}
    status, plain = call(http, "POST", "/volumes", body({"name": "logs"}))
    assert (status, plain["spec"]["access"], plain["spec"]["driver"]) == (201, "single-writer", "local")

    status, listed = call(http, "GET", "/volumes")
    assert status == 200 and [(v["volume"]["name"], v["users"]) for v in listed] == [
        ("data", []),
        ("logs", []),
    ]
    assert call(http, "GET", "/volumes/data") == (200, {"volume": created, "users": []})
    assert call(http, "GET", "/volumes/data?stale=true")[0] == 200

    status, removed = call(http, "DELETE", "/volumes/logs")
    assert (status, removed["name"]) == (200, "logs")
    assert [v["volume"]["name"] for v in call(http, "GET", "/volumes")[1]] == ["data"]


def test_tasks_and_services_take_mounts_and_rm_in_use_is_a_conflict(stack: Stack) -> None:
    http = stack.http
    for name, access in (("myData", "single-writer"), ("conf", "multi")):
        assert call(http, "POST", "/volumes", body({"name": name, "access": access}))[0] == 201
    status, task = call(
        http, "POST", "/tasks", body({"image": "busybox", "name": "app", "volumes": {"myData": "/data"}})
    )
    assert status == 201 and task["volumes"] == [{"volume": "myData", "target": "/data", "readOnly": False}]
    status, other = call(http, "POST", "/tasks", body({"image": "busybox", "volumes": ["conf:/etc/app:ro"]}))
    assert status == 201 and other["volumes"] == [{"volume": "conf", "target": "/etc/app", "readOnly": True}]
    assert call(http, "GET", "/volumes/myData")[1]["users"] == ["app"]

    status, error = call(http, "DELETE", "/volumes/myData")
    assert (status, error["code"]) == (409, "conflict")
    assert "volume myData is in use by 1 task(s): app" in error["error"]

    # A map of mounts keeps the volume names as written (camelCase is not renamed).
    service = {"name": "db", "template": {"image": "busybox", "volumes": {"myData": "/var/lib/db"}}}
    # The single-writer volume is in use: the service is taken (its task will wait), not refused.
    status, created = call(http, "POST", "/services", body(service))
    assert status == 201 and created["spec"]["template"]["volumes"] == [
        {"volume": "myData", "target": "/var/lib/db", "readOnly": False}
    ]
    listed = {"volume": "conf", "target": "/conf", "readOnly": True}
    update = {**service, "template": {"image": "busybox", "volumes": [listed]}, "expectedVersion": 1}
    status, updated = call(http, "PUT", "/services/db", body(update))
    assert status == 200 and updated["spec"]["template"]["volumes"] == [listed]


def test_bad_requests_name_the_field(stack: Stack) -> None:
    http = stack.http
    cases = [
        ({"name": "x", "driver": "ceph"}, "driver", "driver: unknown volume driver 'ceph' (known: local)"),
        ({"name": "x", "access": "shared"}, "access", "'shared' is not an access mode"),
        ({"name": "-x"}, "name", "'-x' is not a valid volume name"),
        ({"driver": "local"}, "name", "name: is required"),
        ({"name": "x", "size": "1GiB"}, "size", "size: unknown field"),
        ({"name": "x", "options": {"type": 1}}, "options", "options: expected an object of strings"),
        ({"name": "x", "options": {"colour": "red"}}, "options.colour", "options.colour:"),
    ]
    for spec, field, words in cases:
        status, error = call(http, "POST", "/volumes", body(spec))
        assert (status, error["code"], error.get("field")) == (400, "invalid", field), spec
        assert words in error["error"], (spec, error)
    assert call(http, "POST", "/volumes", b"[1]")[0] == 400
    assert call(http, "POST", "/volumes", b"{nope")[1]["error"].startswith("malformed JSON")

    assert call(http, "POST", "/volumes", body({"name": "taken"}))[0] == 201
    status, error = call(http, "POST", "/volumes", body({"name": "taken"}))
    assert (status, error["code"], error["error"]) == (409, "conflict", "volume taken already exists")

    status, error = call(http, "GET", "/volumes/nosuch")
    assert (status, error["code"], error["error"]) == (404, "not_found", "no volume named nosuch")
    assert call(http, "DELETE", "/volumes/nosuch")[0] == 404
    status, error = call(http, "PUT", "/volumes/taken", body({}))
    assert (status, error["error"]) == (404, "no route PUT /volumes/taken")
    assert call(http, "POST", "/volumes/taken", body({}))[1]["error"] == "no route POST /volumes/taken"
    assert call(http, "GET", "/volumes/taken/users")[1]["error"] == "no route GET /volumes/taken/users"

    status, error = call(http, "POST", "/tasks", body({"image": "busybox", "volumes": ["data"]}))
    assert (status, error.get("field")) == (400, "volumes")
    assert "'data' is not NAME:/path[:ro]" in error["error"]
    status, error = call(http, "POST", "/tasks", body({"image": "busybox", "volumes": {"nosuch": "/d"}}))
    assert status == 400 and "volume nosuch does not exist" in error["error"]
    service = {"name": "web", "template": {"image": "busybox", "volumes": {"taken": "relative"}}}
    status, error = call(http, "POST", "/services", body(service))
    assert (status, error.get("field")) == (400, "template.volumes[0].target")
    assert stack.client.tasks() == [] and stack.client.services() == []
