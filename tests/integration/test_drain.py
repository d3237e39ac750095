"""``orion node drain`` on real `orion node` processes and real containers: a service's replicas
and a one-off task leave the drained node for the others, the service keeps its three replicas
available in every state read meanwhile (replacement first, then drain), the drained node's
containers stop, and ``orion nodes`` shows it drained and ineligible until it is enabled again."""

from __future__ import annotations

from typing import Any

import pytest

from orion.model import Task, TaskState
from orion.services.slots import is_available
from orion.testing.localcluster import wait_for
from tests.integration.conftest import IMAGE, SLEEP
from tests.integration.services_support import (
    V1,
    converged,
    create,
    orion,
    published_port,
    running_containers,
    wait_converged,
)

pytestmark = [pytest.mark.cluster, pytest.mark.docker]


def test_drain_moves_real_containers_keeping_every_replica_available(make_cluster, docker_engine):
    cluster = make_cluster(3)
    port = published_port(cluster)
    create(cluster, "web", V1, port, 3)
    replicas = wait_converged(cluster, "web", 3, V1)
    with cluster.client() as client:
        batch = client.submit(IMAGE, name="batch", command=SLEEP)
        batch = client.wait(batch.id, TaskState.RUNNING, timeout=60)
    drained = batch.node_id
    before = {t.id for t in replicas if t.node_id == drained} | {batch.id}
    assert len(running_containers(cluster, before)) == len(before), "nothing runs on the node to drain"

    said = orion(cluster, "node", "drain", drained, "--deadline", "5m").stdout
    assert said.startswith(f"{drained}: draining"), said
    available: list[int] = []  # available replicas in every state read while the service moves

    def moved(client: Any) -> list[Task] | None:
        available.append(sum(1 for t in client.service_tasks("web") if is_available(t)))
        tasks = converged(client, "web", 3, V1)
        return tasks if tasks is not None and all(t.node_id != drained for t in tasks) else None

    with cluster.client() as client:
        wait_for(lambda: moved(client), 120, interval=0.1, what="the replicas to leave the drained node")
        # Replacement first, then drain: never fewer than 3 available in any state read.
        assert min(available) == 3, available
        # The one-off task was placed elsewhere: the same task id, now Running on another node.
        wait_for(
            lambda: (t := client.task("batch")).state == TaskState.RUNNING and t.node_id != drained,
            60,
            what="the one-off task to run on another node",
        )
        on_drained = {"label": f"orion.node.id={drained}"}
        wait_for(
            lambda: not docker_engine.containers.list(filters=on_drained),
            60,
            what="the drained node's containers to stop",
        )
        node = next(n for n in client.nodes() if n.id == drained)
        assert not node.eligible and node.drain is not None and node.drain.remaining == 0
    shown = orion(cluster, "nodes").stdout
    row = next(line for line in shown.splitlines() if line.startswith(drained))
    assert "ineligible" in row and "drained" in row, shown

    orion(cluster, "node", "eligibility", drained, "--enable")
    with cluster.client() as client:
        node = next(n for n in client.nodes() if n.id == drained)
        assert node.eligible and node.drain is None

    # Short ids, names and filters (issue 17, item 1) on the same real cluster: a unique id
    # prefix and a task's name both find it, and `task ls` filters by service and state.
    assert f"ID:         {batch.id}" in orion(cluster, "task", "inspect", batch.id[:6]).stdout
    assert f"ID:         {batch.id}" in orion(cluster, "task", "inspect", "batch").stdout
    listed = orion(cluster, "task", "ls", "--service", "web", "--state", "running").stdout
    rows = [line.split() for line in listed.splitlines()[1:] if line.strip()]
    assert len(rows) == 3 and all(row[1].startswith("web.") and row[3] == "Running" for row in rows), listed
    missing = orion(cluster, "task", "inspect", "zzzz-no-such-task", check=False)
    assert missing.returncode == 4 and "no task" in missing.stderr, missing.stderr
