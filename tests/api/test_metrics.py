"""``GET /metrics`` (orion/metrics.py): the Prometheus text format as prometheus_client's own
parser reads it, one registry per node, API requests counted by code, and the token rule."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orion.actors.front import front_handler
from orion.api.http import HttpApi
from orion.fsm.events import Event
from orion.metrics import NodeMetrics
from orion.security.keys import TokenSet
from tests.api.memory_node import MemoryNode

TOKEN = "metrics-test-token-0123456789abcdef"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def serve(node: MemoryNode, metrics: NodeMetrics, public: bool) -> HttpApi:
    handler = front_handler(node, metrics=metrics)
    server = HttpApi(
        "127.0.0.1",
        0,
        handler,
        timeout=5.0,
        tokens=TokenSet([TOKEN]),
        metrics=metrics,
        metrics_public=public,
    )
    server.start()
    return server


@pytest.fixture
def secured(node: MemoryNode) -> Iterator[tuple[HttpApi, NodeMetrics]]:
    metrics = NodeMetrics("n1")
    server = serve(node, metrics, public=False)
    try:
        yield server, metrics
    finally:
        server.stop()


def get(server: HttpApi, path: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_parse_and_count_requests_by_code(secured: tuple[HttpApi, NodeMetrics]) -> None:
    server, metrics = secured
    assert get(server, "/nodes", TOKEN)[0] == 200
    assert get(server, "/tasks/nosuchtask", TOKEN)[0] == 404
    metrics.events(
        [
            Event(index=3, at=1.0, type="task", action="created", id="t1", state="Pending"),
            Event(
                index=4,
                at=2.0,
                type="task",
                action="changed",
                id="t1",
                state="Scheduled",
                previous="Pending",
                changed={"state": "Scheduled"},
            ),
        ]
    )
    metrics.docker_error("engine")
    metrics.timed(None)(type("Outcome", (), {"ok": True})())
    status, text = get(server, "/metrics", TOKEN)
    assert status == 200
    found = samples(text)
    assert found[("orion_api_requests_total", (("code", "ok"), ("request", "ListNodes")))] == 1
    assert found[("orion_api_requests_total", (("code", "not_found"), ("request", "GetTask")))] == 1
    assert found[("orion_api_request_seconds_count", (("request", "ListNodes"),))] == 1
    assert found[("orion_scheduler_placements_total", ())] == 1
    assert found[("orion_task_transitions_total", (("state", "Scheduled"),))] == 1
    assert found[("orion_docker_errors_total", (("kind", "engine"),))] == 1
    assert found[("orion_raft_proposal_seconds_count", (("outcome", "ok"),))] == 1


def test_metrics_need_the_token_unless_public(node: MemoryNode, secured: tuple[HttpApi, NodeMetrics]) -> None:
    server, _ = secured
    assert get(server, "/metrics")[0] == 401
    public = serve(node, NodeMetrics("n2"), public=True)
    try:
        status, text = get(public, "/metrics")
        assert status == 200 and "orion_raft_leader_changes_total" in text
        assert get(public, "/nodes")[0] == 401  # only /metrics is public
    finally:
        public.stop()


def test_each_node_has_its_own_registry() -> None:
    first, second = NodeMetrics("a"), NodeMetrics("b")
    first.leader_seen("a")
    first.leader_seen("a")  # the same leader again is no change
    first.leader_seen("b")
    second.leader_seen("a")
    assert samples(first.text().decode())[("orion_raft_leader_changes_total", ())] == 2
    assert samples(second.text().decode())[("orion_raft_leader_changes_total", ())] == 1
