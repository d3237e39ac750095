"""The node, its actors, auto-join, and the client API on real processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest
import zmq

from orion.client import NoQuorum, NotFound, OrionError
from orion.testing.localcluster import wait_for

pytestmark = pytest.mark.cluster
UNPLACEABLE = {"node_selectors": {"role": "nowhere"}}  # stays Pending: no Docker involved


def test_bootstrap_and_join_three_voters_one_leader(make_cluster):
    cluster = make_cluster(3)
    leader = cluster.leader_index()
    assert leader is not None
    with cluster.client() as client:
        raft = client.raft()
        assert sorted(raft.voters) == sorted(n.node_id for n in cluster.nodes)
        assert raft.non_voters == []
        nodes = wait_for(
            lambda: (ns := client.nodes()) and all(n.status == "alive" for n in ns) and len(ns) == 3 and ns,
            20,
            what="3 alive members",
        )
        assert {n.suffrage for n in nodes} == {"voter"}
        assert sum(1 for n in nodes if n.role == "leader") == 1
        assert all(n.meta is not None and n.meta.memory_total > 0 for n in nodes)


def test_six_nodes_with_max_voters_five(make_cluster):
    cluster = make_cluster(6, settings={"raft": {"max_voters": 5}})
    with cluster.client() as client:
        raft = wait_for(
            lambda: (r := client.raft()) and len(r.voters) == 5 and len(r.non_voters) == 1 and r, 30
        )
        assert len(set(raft.voters) | set(raft.non_voters)) == 6
        task = client.submit("orion-busybox:latest", **UNPLACEABLE)
    # The non-voter replicates the state too: it can serve the task from its own replica.
    non_voter = next(n for n in cluster.nodes if n.node_id in raft.non_voters)
    with cluster.client(non_voter.index) as client:
        assert wait_for(lambda: client.task(task.id, stale=True), 10).id == task.id


def test_kill_leader_elects_new_leader_and_keeps_acknowledged_writes(make_cluster):
    cluster = make_cluster(3)
    acked = []
    with cluster.client() as client:
        for _ in range(20):
            acked.append(client.submit("orion-busybox:latest", **UNPLACEABLE).id)
    old = cluster.leader_index()
    cluster.kill(old)
    survivors = [n.index for n in cluster.nodes if n.index != old]
    with cluster.client(*survivors, timeout=3.0, retries=5) as client:
        new_leader = wait_for(
            lambda: (
                (r := client.raft()).leader_id and r.leader_id != cluster.node(old).node_id and r.leader_id
            ),
            30,
            what="a new leader",
        )
        assert new_leader != cluster.node(old).node_id
        acked.append(wait_for(lambda: client.submit("orion-busybox:latest", **UNPLACEABLE).id, 30))
        ids = {t.id for t in client.tasks()}
    assert set(acked) <= ids
    assert len(ids) == len(acked)


def test_write_without_quorum_fails_clearly_then_succeeds_after_return(make_cluster):
    cluster = make_cluster(3)
    leader = cluster.leader_index()
    others = [n.index for n in cluster.nodes if n.index != leader]
    for index in others:
        cluster.kill(index)
    refused: list[str] = []
    with cluster.client(leader, timeout=10.0, retries=1) as client:

        def refused_write() -> bool:
            task_id = uuid.uuid4().hex
            try:
                client.submit("orion-busybox:latest", id=task_id, **UNPLACEABLE)
            except NoQuorum as exc:
                assert "quorum" in str(exc)
                refused.append(task_id)
                return True
            except OrionError:
                return False  # a write caught in the moment the quorum left: outcome unknown
            return False

        wait_for(refused_write, 30, interval=0.2, what="a write refused for lack of quorum")
        for index in others:
            cluster.start_node(index)
        task = wait_for(lambda: client.submit("orion-busybox:latest", **UNPLACEABLE), 60, what="a write")
        assert client.task(task.id).id == task.id
        ids = {t.id for t in client.tasks()}
    assert not set(refused) & ids, "a write refused for lack of quorum appeared later"


def test_full_stop_and_restart_keeps_state(make_cluster):
    cluster = make_cluster(3)
    with cluster.client() as client:
        submitted = {client.submit("orion-busybox:latest", name=f"t{i}", **UNPLACEABLE).id for i in range(10)}
        stopped = client.stop(sorted(submitted)[0])
        assert stopped.state == "Stopped"
    for node in cluster.nodes:
        cluster.stop_node(node.index)
    cluster.start(timeout=60)
    with cluster.client(timeout=3.0, retries=5) as client:
        tasks = wait_for(lambda: client.tasks(), 30, what="tasks after restart")
        assert {t.id for t in tasks} == submitted
        assert client.task(sorted(submitted)[0]).state == "Stopped"
        # and the cluster still takes writes
        assert client.submit("orion-busybox:latest", **UNPLACEABLE).state == "Pending"


def test_kill_all_nodes_and_restart_recovers_from_duckdb(make_cluster):
    cluster = make_cluster(3)
    with cluster.client() as client:
        submitted = {client.submit("orion-busybox:latest", **UNPLACEABLE).id for _ in range(5)}
    for node in cluster.nodes:
        cluster.kill(node.index)
    cluster.start(timeout=60)
    with cluster.client(timeout=3.0, retries=5) as client:
        assert submitted <= {t.id for t in wait_for(lambda: client.tasks(), 30)}


def test_retried_submit_is_not_duplicated(make_cluster):
    cluster = make_cluster(3)
    task_id = uuid.uuid4().hex
    results = []
    for node in cluster.nodes:  # the same submit through every node, as a retrying client would
        with cluster.client(node.index) as client:
            results.append(client.submit("orion-busybox:latest", id=task_id, name="once", **UNPLACEABLE))
    assert {r.id for r in results} == {task_id}
    with cluster.client() as client:
        assert [t.id for t in client.tasks()].count(task_id) == 1


def test_not_found_and_invalid_requests(make_cluster):
    cluster = make_cluster(1)
    with cluster.client() as client:
        with pytest.raises(NotFound):
            client.task("does-not-exist")
        with pytest.raises(NotFound):
            client.stop("does-not-exist")
        with pytest.raises(OrionError) as excinfo:
            client.submit("orion-busybox:latest", memory=-1)
        assert "memory" in str(excinfo.value)


def test_garbage_on_every_port_leaves_nodes_up(make_cluster):
    cluster = make_cluster(3)
    context = zmq.Context.instance()
    garbage = [b"", b"\x00", b"\xff" * 64, os.urandom(4096), b"\x93\x01\x02\x03", b"GET / HTTP/1.0\r\n\r\n"]
    for node in cluster.nodes:
        for port in (node.raft_port, node.gossip_port, node.api_port):
            for kind in (zmq.DEALER, zmq.REQ):
                sock = context.socket(kind)
                sock.setsockopt(zmq.LINGER, 0)
                sock.connect(f"tcp://{node.address}:{port}")
                for frame in garbage:
                    try:
                        sock.send(frame, zmq.NOBLOCK)
                    except zmq.ZMQError:
                        pass
                sock.close()
        for host, port in (
            (node.address, node.raft_port),
            (node.address, node.gossip_port),
            (node.address, node.api_port),
            ("127.0.0.1", node.http_port),  # the REST mirror listens on [security] http_bind
        ):
            with socket.create_connection((host, port), timeout=2) as raw:
                raw.sendall(os.urandom(2048))
        request = urllib.request.Request(
            f"http://127.0.0.1:{node.http_port}/tasks",
            data=b"{not json",
            method="POST",
            headers=cluster.auth_headers(),
        )
        with pytest.raises(urllib.error.HTTPError) as excinfo:
            urllib.request.urlopen(request, timeout=5)
        assert excinfo.value.code == 400
    with cluster.client() as client:
        task = client.submit("orion-busybox:latest", **UNPLACEABLE)
        for node in cluster.nodes:
            assert node.running
            with cluster.client(node.index) as one:
                assert one.task(task.id).id == task.id


def test_rest_round_trip_with_the_prd_payload(make_cluster):
    cluster = make_cluster(3)
    follower = next(n for n in cluster.nodes if n.index != cluster.leader_index())
    base = f"http://127.0.0.1:{follower.http_port}"
    auth = cluster.auth_headers()

    def get(path: str) -> urllib.request.Request:
        return urllib.request.Request(f"{base}{path}", headers=auth)

    payload = {"image": "orion-busybox:latest", "memory": 1000, "portBindings": {"80/tcp": "8080"}}
    payload["nodeSelectors"] = {"role": "nowhere"}
    request = urllib.request.Request(
        f"{base}/tasks",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **auth},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status in (200, 201)
        created = json.loads(response.read())
    assert created["portBindings"] == {"80/tcp": "8080"}
    task_id = created["id"]
    with urllib.request.urlopen(get(f"/tasks/{task_id}"), timeout=10) as response:
        assert json.loads(response.read())["state"] == "Pending"
    with urllib.request.urlopen(get("/tasks"), timeout=10) as response:
        assert task_id in [t["id"] for t in json.loads(response.read())]
    with urllib.request.urlopen(get("/nodes"), timeout=10) as response:
        assert len(json.loads(response.read())) == 3
    with urllib.request.urlopen(get("/raft"), timeout=10) as response:
        assert json.loads(response.read())["leaderId"]
    bad = urllib.request.Request(
        f"{base}/tasks", data=json.dumps({"image": "x", "memory": -5}).encode(), method="POST", headers=auth
    )
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(bad, timeout=10)
    assert excinfo.value.code == 400
    assert "memory" in json.loads(excinfo.value.read())["error"]
    delete = urllib.request.Request(f"{base}/tasks/{task_id}", method="DELETE", headers=auth)
    with urllib.request.urlopen(delete, timeout=10) as response:
        assert json.loads(response.read())["state"] == "Stopped"
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(get("/tasks/nope"), timeout=10)
    assert excinfo.value.code == 404


def test_cli_round_trip(make_cluster):
    cluster = make_cluster(3)
    env = {**os.environ, **cluster.client_env()}

    def orion(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orion", *args], env=env, capture_output=True, text=True, timeout=60
        )

    submitted = orion(
        "--json",
        "task",
        "submit",
        "orion-busybox:latest",
        "--name",
        "cli",
        "--memory",
        "64MiB",
        "--selector",
        "role=nowhere",
    )
    assert submitted.returncode == 0, submitted.stderr
    task_id = json.loads(submitted.stdout)["id"]
    listing = orion("task", "ls")
    assert listing.returncode == 0 and task_id[:8] in listing.stdout
    inspect = orion("task", "inspect", task_id)
    assert inspect.returncode == 0 and "nodes fit" in inspect.stdout  # says why it is pending
    nodes = orion("--json", "nodes")
    assert nodes.returncode == 0 and len(json.loads(nodes.stdout)) == 3
    raft = orion("--json", "raft")
    assert raft.returncode == 0 and json.loads(raft.stdout)["leaderId"]
    stopped = orion("task", "stop", task_id)
    assert stopped.returncode == 0
    missing = orion("task", "inspect", "no-such-task")
    assert missing.returncode == 4


def test_graceful_leader_shutdown_hands_over_and_leaves(make_cluster):
    cluster = make_cluster(3)
    leader = cluster.leader_index()
    started = time.monotonic()
    assert cluster.stop_node(leader) == 0
    others = [n.index for n in cluster.nodes if n.index != leader]
    with cluster.client(*others, timeout=3.0, retries=5) as client:
        wait_for(lambda: client.raft().leader_id not in ("", None, cluster.node(leader).node_id), 20)
        gone = cluster.node(leader).node_id
        wait_for(
            lambda: any(n.id == gone and n.status == "left" for n in client.nodes()),
            20,
            what="the stopped node to be seen as left",
        )
    assert time.monotonic() - started < 60


def test_snapshots_compact_the_log_and_catch_up_a_new_node(make_cluster):
    cluster = make_cluster(3, settings={"raft": {"snapshot_threshold": 16}})
    with cluster.client() as client:
        submitted = {client.submit("orion-busybox:latest", **UNPLACEABLE).id for _ in range(60)}
    for node in cluster.nodes:
        cluster.kill(node.index)
    cluster.start(timeout=60)  # recovers from snapshot tables plus the log suffix
    newcomer = cluster.add_node()
    cluster.start_node(newcomer.index)
    with cluster.client(newcomer.index, timeout=3.0, retries=5) as client:
        # The log was compacted long ago: the newcomer can only catch up by InstallSnapshot.
        tasks = wait_for(
            lambda: (ts := client.tasks(stale=True)) and len(ts) >= 60 and ts,
            60,
            what="the new node to catch up",
        )
        assert submitted <= {t.id for t in tasks}
        wait_for(lambda: newcomer.node_id in client.raft().voters, 30, what="the newcomer promoted")


def test_dead_voter_is_removed_after_grace_and_a_non_voter_promoted(make_cluster):
    cluster = make_cluster(4, settings={"raft": {"max_voters": 3, "remove_dead_after": "2s"}})
    with cluster.client() as client:
        raft = wait_for(
            lambda: (r := client.raft()) and len(r.voters) == 3 and len(r.non_voters) == 1 and r, 30
        )
    leader = cluster.leader_index()
    victim = next(n for n in cluster.nodes if n.node_id in raft.voters and n.index != leader)
    standby = raft.non_voters[0]
    cluster.kill(victim.index)
    with cluster.client(leader) as client:
        after = wait_for(
            lambda: (
                (r := client.raft())
                and victim.node_id not in r.voters + r.non_voters
                and standby in r.voters
                and r
            ),
            60,
            what="the dead voter removed and the non-voter promoted",
        )
        assert len(after.voters) == 3
        assert client.submit("orion-busybox:latest", **UNPLACEABLE).state == "Pending"
