"""Health checks on a real cluster: the node running a service's task checks it (http on its
published host port, exec in its container) and its health reaches the FSM as transitions."""

from __future__ import annotations

import pytest

from orion.client import Client
from orion.model import Health, Task
from orion.testing.localcluster import wait_for
from tests.integration.conftest import IMAGE, containers_of

pytestmark = [pytest.mark.cluster, pytest.mark.docker]
WEB = "orion-web:v1"  # busybox httpd on 80 serving / and /health (tools/docker_setup.py)
# Healthy while /tmp/state holds "ok" (read and [ are shell builtins).
STATE_CHECK = ["sh", "-c", 'read state < /tmp/state && [ "$state" = ok ]']
IDLE = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


def only_task(client: Client, service: str) -> Task | None:
    live = [t for t in client.service_tasks(service) if t.state == "Running"]
    return live[0] if len(live) == 1 else None


def test_an_http_check_makes_a_service_task_healthy(make_cluster, docker_engine) -> None:
    cluster = make_cluster(1)
    with cluster.client() as client:
        client.create_service(
            "web",
            WEB,
            replicas=1,
            health={"kind": "http", "port": 80, "path": "/health", "interval": 0.5, "timeout": 1.0},
        )
        healthy = wait_for(
            lambda: (t := only_task(client, "web")) is not None and t.health == Health.HEALTHY and t,
            90,
            what="the task to turn healthy",
        )
    reasons = [event.reason for event in healthy.history]
    assert "healthy: http check of :80/health passed: status 200" in reasons, reasons


def test_an_exec_check_turns_a_task_healthy_then_unhealthy(make_cluster, docker_engine) -> None:
    cluster = make_cluster(1)
    with cluster.client() as client:
        client.create_service(
            "idle",
            IMAGE,
            replicas=1,
            command=IDLE,
            health={"kind": "exec", "command": STATE_CHECK, "interval": 0.5, "timeout": 2.0, "retries": 2},
        )
        starting = wait_for(lambda: only_task(client, "idle"), 90, what="the task to run")
        assert starting.health in (Health.STARTING, Health.UNHEALTHY), starting.health

        def set_state(value: str) -> None:
            (container,) = containers_of(docker_engine, starting.id)
            result = container.exec_run(["sh", "-c", f"echo {value} > /tmp/state"])
            assert result.exit_code == 0, result.output

        set_state("ok")
        wait_for(
            lambda: client.task(starting.id).health == Health.HEALTHY, 60, what="the task to turn healthy"
        )
        set_state("bad")
        unhealthy = wait_for(
            lambda: (
                any(e.reason.startswith("unhealthy: exec check") for e in client.task(starting.id).history)
                and client.task(starting.id)
            ),
            60,
            what="the task to turn unhealthy",
        )
    reasons = [e.reason for e in unhealthy.history if e.reason.startswith("unhealthy")]
    assert reasons[0].endswith("failed 2 time(s) in a row: exit code 1"), reasons
