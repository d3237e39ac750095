"""GET /openapi.json against the REST server: every documented route is served, and methods and
paths next to them that the document leaves out answer "no route"."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from orion.api.http import HttpApi
from orion.api.openapi import ROUTES, document
from tests.api.memory_node import MemoryNode

METHODS = ("GET", "POST", "PUT", "DELETE")
SAMPLE = {"ref": "nosuch", "node": "node1", "name": "web", "file": "console.js"}
# Paths beside the documented ones: a route added to the server but not to ROUTES shows here.
NEAR_MISSES = (
    "/",
    "/api",
    "/task",
    "/tasks/nosuch/history",
    "/tasks/nosuch/logs/more",
    "/nodes/node1",
    "/nodes/node1/cordon",
    "/services/web/stop",
    "/services/web/tasks/1",
    "/volumes/data/users",
    "/volume",
    "/raft/peers",
    "/health/deep",
    "/openapi.yaml",
    "/docs",
)


@pytest.fixture
def http(node: MemoryNode) -> Iterator[HttpApi]:
    server = HttpApi("127.0.0.1", 0, node, timeout=5.0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def concrete(template: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], template)


def ask(http: HttpApi, method: str, path: str) -> tuple[int, str, bytes]:
    """(status, content type, body); POST and PUT send an empty JSON object."""
    body = b"{}" if method in ("POST", "PUT") else None
    request = urllib.request.Request(f"http://127.0.0.1:{http.port}{path}", data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def no_route(status: int, content_type: str, body: bytes) -> bool:
    if status != 404 or not content_type.startswith("application/json"):
        return False
    return json.loads(body)["error"].startswith("no route")


def documented() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in document()["paths"].items() for method in ops}


def test_the_document_is_served_without_a_token_and_names_the_bearer_scheme(http: HttpApi) -> None:
    status, content_type, body = ask(http, "GET", "/openapi.json")
    assert status == 200 and content_type == "application/json"
    served = json.loads(body)
    assert served == json.loads(json.dumps(document()))
    assert served["openapi"].startswith("3.")
    assert served["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": served["components"]["securitySchemes"]["bearer"]["description"],
    }
    assert served["security"] == [{"bearer": []}]
    assert served["paths"]["/health"]["get"]["security"] == []  # public routes say so


def test_the_document_holds_every_route_of_the_table_with_resolvable_schemas() -> None:
    doc = document()
    assert documented() == {(r.method, r.path) for r in ROUTES}
    refs = set(re.findall(r'"#/components/schemas/(\w+)"', json.dumps(doc)))
    assert refs and refs <= set(doc["components"]["schemas"])
    submit = doc["paths"]["/tasks"]["post"]
    assert submit["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RestSubmit"
    }
    assert "201" in submit["responses"] and "400" in submit["responses"]
    # Field names as the REST mirror writes them (camelCase), user maps left alone.
    task = doc["components"]["schemas"]["Task"]["properties"]
    assert {"nodeId", "portBindings", "createdAt", "history"} <= set(task)
    assert "node_id" not in task
    for path, ops in doc["paths"].items():
        for name in re.findall(r"\{(\w+)\}", path):
            for op in ops.values():
                assert any(p["name"] == name and p["in"] == "path" for p in op["parameters"]), (path, name)


def test_every_documented_route_is_served(http: HttpApi) -> None:
    for method, template in sorted(documented()):
        path = concrete(template)
        if template == "/events":
            path += "?follow=0"  # caught up at once, the stream ends
        answer = ask(http, method, path)
        assert not no_route(*answer), f"{method} {template} is documented but the server has no route"
        assert answer[0] != 501, f"{method} {template}: method not implemented"


def test_methods_and_paths_the_document_leaves_out_have_no_route(http: HttpApi) -> None:
    templates = {path for _, path in documented()}
    candidates = {(m, t) for t in templates for m in METHODS} - documented()
    candidates |= {(m, path) for path in NEAR_MISSES for m in METHODS}
    assert len(candidates) > 50
    for method, template in sorted(candidates):
        answer = ask(http, method, concrete(template))
        if template.startswith("/ui/") and method == "GET":
            assert answer[0] == 404, template  # a console file that is not shipped
            continue
        assert no_route(*answer), f"{method} {template} is served but not in /openapi.json: {answer[:2]}"
    assert ask(http, "PATCH", "/tasks")[0] == 501  # the server speaks these four methods only
