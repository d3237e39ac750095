"""Safety on a shared host: real node processes and one real Docker engine.

- Two clusters whose nodes have the same ids share the engine: containers carry the cluster id
  (``orion.cluster.id``) and neither cluster lists, stops or removes the other's.
- ``python -m tools.demo --stop`` (``make demo-stop``) stops every node of its cluster, whoever
  started it (found by the data dirs' locks), and removes that cluster's containers only.
- A second node process on a data dir in use refuses with one line and exit code 1.
- A cluster bootstrapped before cluster ids (its configuration names none) still runs its
  tasks, labelled ``orion.cluster.id=legacy``.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import docker

from orion.raft.duckdb_store import DuckDBStore
from orion.raft.types import Entry, EntryKind, HardState, Membership, encode_membership
from orion.testing.localcluster import LocalCluster, wait_for
from tests.integration.conftest import IMAGE, SLEEP

ROOT = Path(__file__).resolve().parents[2]


def cluster_id_of(cluster: LocalCluster) -> str:
    """The cluster id, as its first node reports it in its own node record."""

    def known() -> str:
        with cluster.client(1, timeout=3.0, retries=1) as client:
            node = next(n for n in client.nodes() if n.id == cluster.node(1).node_id)
        return node.meta.cluster_id if node.meta is not None else ""

    return wait_for(known, 60, what=f"the cluster id of {cluster.prefix}")


def containers(engine: docker.DockerClient, cluster_id: str, task_id: str | None = None) -> list[Any]:
    labels = [f"orion.cluster.id={cluster_id}"] + ([f"orion.task.id={task_id}"] if task_id else [])
    return engine.containers.list(all=True, filters={"label": labels})


def running(engine: docker.DockerClient, cluster_id: str, task_id: str) -> bool:
    return any(c.status == "running" for c in containers(engine, cluster_id, task_id))


def run_task(cluster: LocalCluster, task_id: str) -> None:
    with cluster.client(timeout=5.0, retries=3) as client:
        client.submit(IMAGE, id=task_id, name=task_id, command=SLEEP)
        client.wait(task_id, "Running", timeout=60)


def test_two_clusters_with_the_same_node_ids_never_touch_each_others_containers(
    make_cluster, docker_engine
) -> None:
    prefix = "tw" + secrets.token_hex(3)
    one, two = make_cluster(1, prefix=prefix), make_cluster(1, prefix=prefix)
    assert one.node(1).node_id == two.node(1).node_id
    first, second = cluster_id_of(one), cluster_id_of(two)
    assert first != second
    for cluster in (one, two):
        run_task(cluster, "web")  # the same task id on the same node id in both clusters
    run_task(two, "only-two")
    assert running(docker_engine, first, "web") and running(docker_engine, second, "web")
    assert [c.labels["orion.node.id"] for c in containers(docker_engine, first)] == [one.node(1).node_id]

    # Cluster one starts a task, then stops its "web": each step is a reconcile round of its
    # node listing the engine's containers. With node ids alone as the key, that round took
    # "only-two" for a container no longer assigned here and removed it, and "web" for its own.
    run_task(one, "later")
    with one.client() as client:
        client.stop("web")
    wait_for(lambda: not running(docker_engine, first, "web"), 60, what="cluster one's web to stop")
    with two.client() as client:
        assert {t.id: (t.state, t.restarts) for t in client.tasks()} == {
            "web": ("Running", 0),
            "only-two": ("Running", 0),
        }
    assert running(docker_engine, second, "web") and running(docker_engine, second, "only-two")

    with one.client() as client:
        client.remove("web")
    wait_for(lambda: not containers(docker_engine, first, "web"), 60, what="cluster one's web to be removed")
    assert running(docker_engine, second, "web")


def test_demo_stop_stops_every_node_of_its_cluster_whoever_started_it_and_only_its_containers(
    make_cluster, docker_engine
) -> None:
    prefix = "ds" + secrets.token_hex(3)
    demo = make_cluster(2, prefix=prefix)  # started by the test, not by tools/demo.py
    other = make_cluster(1, prefix=prefix)  # another cluster on the engine, node id in common
    demo_id, other_id = cluster_id_of(demo), cluster_id_of(other)
    run_task(demo, "web")
    run_task(other, "web")
    demo.stop_node(2)
    demo.start_node(2)  # restarted by hand: its pid is in no list the demo kept
    # Answering its API means it holds its data dir (taken first thing at start).
    wait_for(lambda: demo.raft_status(2).leader_id, 60, what="the restarted node to follow a leader")

    configs = [arg for node in demo.nodes for arg in ("--config", str(node.config_path))]
    done = subprocess.run(
        [sys.executable, "-m", "tools.demo", "--stop", *configs],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for node in demo.nodes:
        assert node.process is not None and node.process.wait(30) == 0, f"{node.node_id} still runs"
        assert f"stopping {node.node_id} (pid {node.pid})" in done.stdout
    assert containers(docker_engine, demo_id) == []
    assert other.node(1).running and running(docker_engine, other_id, "web")
    with other.client() as client:
        assert client.task("web").state == "Running"


def test_a_second_node_on_a_data_dir_in_use_refuses_with_one_line(make_cluster) -> None:
    cluster = make_cluster(1)
    node = cluster.node(1)
    done = subprocess.run(
        [sys.executable, "-m", "orion", "node", "--config", str(node.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].endswith(f"refusing to start: data dir {node.data_dir} in use by pid {node.pid}")
    assert done.stdout == ""
    assert node.running
    with cluster.client(timeout=3.0) as client:
        assert client.raft().leader_id == node.node_id


def test_a_cluster_without_a_cluster_id_runs_its_tasks_labelled_legacy(make_cluster, docker_engine) -> None:
    cluster = make_cluster(1, start=False)
    node = cluster.node(1)
    # The data dir as an Orion from before cluster ids left it: its configuration names none.
    os.makedirs(node.data_dir, mode=0o700)
    store = DuckDBStore(node.data_dir / "raft.duckdb")
    store.load()
    legacy = Membership(voters={node.node_id: node.raft_address})
    store.save(HardState(term=1, commit=1), [Entry(1, 1, EntryKind.CONFIG, encode_membership(legacy))])
    store.save_identity(uuid.uuid4().hex)
    store.close()
    cluster.start()
    run_task(cluster, "web")
    assert running(docker_engine, "legacy", "web")
    assert "labelled orion.cluster.id=legacy" in node.log_path.read_text()
