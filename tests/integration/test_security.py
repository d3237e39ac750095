"""Security on real processes: clusters are secured by default (LocalCluster writes keys and
a token), outsiders are refused and change nothing, and the insecure switch is loud.

The fixture (conftest) also fails any test whose node logs contain a key or a token.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from orion.client import Client, Unauthorized
from orion.security.keys import load_cluster_key, write_cluster_key
from orion.testing.localcluster import LocalCluster, wait_for

pytestmark = pytest.mark.cluster
UNPLACEABLE = {"node_selectors": {"role": "nowhere"}}


def log_of(cluster: LocalCluster, index: int) -> str:
    path = cluster.node(index).log_path
    return path.read_text(errors="replace") if path.exists() else ""


def test_a_node_with_another_clusters_key_does_not_join(make_cluster, tmp_path: Path) -> None:
    cluster = make_cluster(3)
    other_key, _ = write_cluster_key(tmp_path / "another-cluster")
    cluster.per_node[4] = {"security": {"cluster_key": str(other_key)}}
    intruder = cluster.add_node()
    cluster.start_node(intruder.index)
    # Both sides say why: the seed refuses the handshake, the intruder sees its key refused.
    wait_for(
        lambda: "refused our connection during the CURVE handshake" in log_of(cluster, intruder.index),
        30,
        what="the intruder to log that the seed refused its key",
    )
    wait_for(
        lambda: "does not hold this cluster's key" in log_of(cluster, 1),
        30,
        what="the seed to log the refused handshake",
    )
    with cluster.client(1, 2, 3) as client:
        members = {n.id for n in client.nodes()}
        raft = client.raft()
        assert intruder.node_id not in members
        assert intruder.node_id not in set(raft.voters) | set(raft.non_voters)
        assert len(raft.voters) == 3 and raft.leader_id
        task = client.submit("orion-busybox:latest", **UNPLACEABLE)  # still healthy
        assert client.task(task.id).id == task.id
    with cluster.client(intruder.index, timeout=2.0, retries=1) as lonely:
        alone = lonely.raft()
        assert not alone.leader_id and alone.voters == []  # it never heard from the cluster


def test_unauthenticated_clients_are_refused_and_change_nothing(make_cluster) -> None:
    cluster = make_cluster(1)
    node = cluster.node(1)
    with cluster.client() as client:
        before = client.submit("orion-busybox:latest", **UNPLACEABLE)
    for token in ("", "not-the-token"):
        with Client([node.api_endpoint], timeout=3.0, retries=1, token=token) as outsider:
            with pytest.raises(Unauthorized):
                outsider.submit("orion-busybox:latest", id="intruder", **UNPLACEABLE)
            with pytest.raises(Unauthorized):
                outsider.stop(before.id)
            with pytest.raises(Unauthorized):
                outsider.tasks()
    base = f"http://127.0.0.1:{node.http_port}"
    for request in (
        urllib.request.Request(f"{base}/tasks"),
        urllib.request.Request(f"{base}/raft", headers={"Authorization": "Bearer wrong"}),
        urllib.request.Request(
            f"{base}/tasks", data=json.dumps({"image": "x", "id": "intruder2"}).encode(), method="POST"
        ),
        urllib.request.Request(f"{base}/tasks/{before.id}", method="DELETE"),
    ):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
    with cluster.client() as client:
        tasks = client.tasks()
        assert [t.id for t in tasks] == [before.id]
        assert tasks[0].state == "Pending"
    assert "refused a request without a valid client token" in log_of(cluster, 1)

    # `orion raft` and `orion nodes` show no secrets.
    env = {**os.environ, **cluster.client_env()}
    for command in (["raft"], ["nodes"], ["--json", "raft"], ["--json", "nodes"]):
        shown = subprocess.run(
            [sys.executable, "-m", "orion", *command], env=env, capture_output=True, text=True, timeout=60
        )
        assert shown.returncode == 0, shown.stderr
        key = load_cluster_key(cluster.cluster_key_path)
        for secret in (cluster.token, key.secret.decode(), key.public.decode()):
            assert secret not in shown.stdout


def test_insecure_clusters_work_without_a_token_and_warn_at_every_start(make_cluster) -> None:
    cluster = make_cluster(1, insecure=True)
    with Client(cluster.endpoints, timeout=3.0, token="") as client:
        client.submit("orion-busybox:latest", **UNPLACEABLE)
    assert log_of(cluster, 1).count("SECURITY IS OFF") == 1
    cluster.stop_node(1)
    cluster.start(timeout=60)
    assert log_of(cluster, 1).count("SECURITY IS OFF") == 2
    assert not (cluster.base_dir / "secrets").exists()
