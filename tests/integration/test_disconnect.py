"""Bounded duplicates after a partition, with real node processes, real partitions (the nodes' test-only
``block_peers`` hook drops Raft and gossip traffic) and a real Docker engine.

A node cut off from the leader, on the minority side, stops its containers after ``[scheduler]
stop_after_disconnect`` (here 6 s): the copy the cluster starts elsewhere no longer runs twice
for as long as the partition lasts. When contact returns it removes what moved and starts again
what is still its own, saying why in the task's history. When the whole cluster has no leader
but its nodes still see each other, nobody can place the tasks elsewhere: they keep running.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import docker

from orion.testing.localcluster import LocalCluster, LocalNode, wait_for
from tests.integration.conftest import IMAGE, SLEEP

STOP_AFTER = "6s"


def settings(**scheduler: str) -> dict[str, dict[str, Any]]:
    return {
        "testing": {"fault_injection": True},
        "scheduler": {"stop_after_disconnect": STOP_AFTER, **scheduler},
    }


def addresses(nodes: Iterable[LocalNode], gossip: bool = True) -> list[str]:
    out = []
    for node in nodes:
        out.append(node.raft_address)
        if gossip:
            out.append(node.gossip_address)
    return out


def block(cluster: LocalCluster, index: int, blocked: list[str]) -> None:
    def attempt() -> bool:
        with cluster.client(index, timeout=2.0, retries=1) as client:
            client.block_peers(blocked)
        return True

    wait_for(attempt, 30, interval=0.2, what=f"block_peers on node {index}")


def isolate(cluster: LocalCluster, index: int) -> None:
    others = [n for n in cluster.nodes if n.index != index]
    block(cluster, index, addresses(others))
    for node in others:
        block(cluster, node.index, addresses([cluster.node(index)]))


def heal(cluster: LocalCluster) -> None:
    for node in cluster.nodes:
        block(cluster, node.index, [])


def start_task(cluster: LocalCluster) -> tuple[str, LocalNode]:
    task_id = f"dup-{uuid.uuid4().hex[:8]}"
    with cluster.client(timeout=5.0, retries=3) as client:
        client.submit(IMAGE, id=task_id, name=task_id, command=SLEEP)
        task = client.wait(task_id, "Running", timeout=60)
    return task_id, next(n for n in cluster.nodes if n.node_id == task.node_id)


def copies(engine: docker.DockerClient, task_id: str, node: LocalNode | None = None) -> list[Any]:
    labels = [f"orion.task.id={task_id}"] + ([f"orion.node.id={node.node_id}"] if node else [])
    return engine.containers.list(all=True, filters={"label": labels})


def running_copies(engine: docker.DockerClient, task_id: str, node: LocalNode | None = None) -> list[Any]:
    return [c for c in copies(engine, task_id, node) if c.status == "running"]


def test_a_cut_off_node_stops_its_copy_while_the_task_runs_elsewhere(make_cluster, docker_engine) -> None:
    cluster = make_cluster(3, settings=settings())
    task_id, cut_off = start_task(cluster)
    survivors = [n.index for n in cluster.nodes if n is not cut_off]
    isolate(cluster, cut_off.index)
    try:
        # The majority places the task elsewhere (reschedule_after 3 s); the cut-off node stops
        # its own copy by itself (stop_after_disconnect 6 s): before, it ran on, out of reach.
        wait_for(
            lambda: not running_copies(docker_engine, task_id, cut_off), 60, what="the cut-off copy to stop"
        )
        with cluster.client(*survivors) as client:
            moved = wait_for(
                lambda: (t := client.task(task_id)).state == "Running" and t.node_id != cut_off.node_id and t,
                60,
                what="the task running on the majority side",
            )
        assert [c.status for c in copies(docker_engine, task_id, cut_off)] == ["exited"]  # kept, stopped
        assert "stopping this node's tasks" in cut_off.log_path.read_text()
    finally:
        heal(cluster)
    # Contact is back: the stopped copy is removed (the task moved), the new one runs on.
    wait_for(lambda: not copies(docker_engine, task_id, cut_off), 60, what="the old copy to be removed")
    assert [c.labels["orion.node.id"] for c in running_copies(docker_engine, task_id)] == [moved.node_id]
    with cluster.client() as client:
        assert client.task(task_id).node_id == moved.node_id


def test_a_task_still_assigned_starts_again_when_contact_returns_saying_why(
    make_cluster, docker_engine
) -> None:
    # The leader moves nothing for ten minutes: the task stays assigned to the cut-off node.
    cluster = make_cluster(3, settings=settings(reschedule_after="10m"))
    task_id, cut_off = start_task(cluster)
    first = running_copies(docker_engine, task_id, cut_off)[0].id
    isolate(cluster, cut_off.index)
    try:
        wait_for(
            lambda: not running_copies(docker_engine, task_id, cut_off), 60, what="the cut-off copy to stop"
        )
    finally:
        heal(cluster)

    def restarted() -> Any:
        with cluster.client(timeout=3.0) as client:
            task = client.task(task_id)
        said = [
            e.reason for e in task.history if e.reason.startswith("stopped: no contact with the leader for ")
        ]
        return task.state == "Running" and said and running_copies(docker_engine, task_id, cut_off) and task

    task = wait_for(restarted, 90, what="the task running again with the reason in its history")
    assert task.node_id == cut_off.node_id and task.restarts == 0  # not a crash of the task
    [copy] = running_copies(docker_engine, task_id)
    assert copy.id != first  # a fresh container, on the same node


def test_a_cluster_without_a_leader_whose_nodes_see_each_other_keeps_its_tasks(
    make_cluster, docker_engine
) -> None:
    cluster = make_cluster(3, settings=settings())
    task_id, node = start_task(cluster)
    # Raft traffic cut everywhere, gossip untouched: no leader anywhere, every node in sight.
    for each in cluster.nodes:
        block(cluster, each.index, addresses([n for n in cluster.nodes if n is not each], gossip=False))
    try:
        wait_for(
            lambda: "3 of 3 members reachable: the cluster has no leader" in node.log_path.read_text(),
            60,
            what="the node to find the leader silent past stop_after_disconnect",
        )
        assert running_copies(docker_engine, task_id, node)
    finally:
        heal(cluster)
    with cluster.client() as client:
        assert wait_for(lambda: client.task(task_id).state == "Running", 60)
    assert len(running_copies(docker_engine, task_id)) == 1
