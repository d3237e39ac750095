"""Issue 17 items 2, 3, 5 on real `orion node` processes and real containers: a task's logs read
through a node that does not run it (ZeroMQ and REST, in bounded chunks, and followed); the
event stream followed across a kill -9 of the leader it was reading from, with no gap and no
duplicate; GET /metrics parsed by prometheus_client's own parser."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orion import client_streams
from orion.fsm.events import Event
from orion.model import TaskState
from orion.testing.localcluster import LocalCluster, wait_for
from tests.integration.conftest import IMAGE, SLEEP

pytestmark = [pytest.mark.cluster, pytest.mark.docker]

LINES = 3000
PRINTER = ["sh", "-c", f"for i in $(seq 1 {LINES}); do echo line $i; done; sleep 3600"]
TICKER = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"]


def other_node(cluster: LocalCluster, node_id: str) -> Any:
    return next(n for n in cluster.nodes if n.node_id != node_id)


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_logs_from_another_node_in_chunks_followed_and_over_rest_and_metrics(make_cluster, docker_engine):
    cluster = make_cluster(3)
    with cluster.client() as client:
        printer = client.wait(client.submit(IMAGE, name="printer", command=PRINTER).id, TaskState.RUNNING, 60)
        ticker = client.wait(client.submit(IMAGE, name="ticker", command=TICKER).id, TaskState.RUNNING, 60)
    asked = other_node(cluster, printer.node_id)
    with cluster.client(asked.index) as client:
        # 3000 lines (~30 KB) in 4 KiB chunks, through a node that forwards to the one running it.
        def all_lines() -> list[str] | None:
            chunks = list(client_streams.logs(client, "printer", max_bytes=4096))
            lines = "".join(chunks).splitlines()
            return lines if len(lines) == LINES and len(chunks) > 5 else None

        lines = wait_for(all_lines, 60, what="the printer's output through another node")
        assert lines == [f"line {i}" for i in range(1, LINES + 1)]  # in order, none twice, none missed
        assert "".join(client.logs(printer.id, tail=2)) == f"line {LINES - 1}\nline {LINES}\n"

        ticks_from = other_node(cluster, ticker.node_id)
        assert ticks_from.node_id != ticker.node_id
    with cluster.client(ticks_from.index) as client:
        followed: list[str] = []
        for text in client.logs("ticker", follow=True, tail=0):
            followed += text.splitlines()
            if len(followed) >= 10:
                break
        numbers = [int(t.split()[1]) for t in followed]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # consecutive: no gap

    # REST: chunked transfer encoding from a node that does not run the task.
    connection = http.client.HTTPConnection("127.0.0.1", asked.http_port, timeout=30)  # REST binds loopback
    connection.request("GET", f"/tasks/{printer.id[:8]}/logs?tail=3", headers=cluster.auth_headers())
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Transfer-Encoding") == "chunked"
    assert response.getheader("X-Orion-Node") == printer.node_id
    assert response.read().decode().splitlines() == [f"line {i}" for i in range(LINES - 2, LINES + 1)]
    connection.close()

    # Metrics of a node, parsed by prometheus_client; the token is needed.
    url = f"http://127.0.0.1:{asked.http_port}/metrics"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 401
    request = urllib.request.Request(url, headers=cluster.auth_headers())
    found = metric_samples(urllib.request.urlopen(request, timeout=10).read().decode())
    assert found[("orion_raft_term", ())] >= 1
    assert found[("orion_raft_applied_index", ())] >= 1
    assert found[("orion_tasks", (("state", "Running"),))] == 2
    assert found[("orion_gossip_members", (("status", "alive"),))] == 3
    assert ("orion_gossip_local_health", ()) in found
    assert found[("orion_scheduler_placements_total", ())] >= 2
    assert found[("orion_api_requests_total", (("code", "ok"), ("request", "TaskLogs")))] >= 1
    assert found[("orion_raft_leader_changes_total", ())] >= 1


def test_events_resume_across_a_leader_kill_without_gap_or_duplicate(make_cluster, docker_engine):
    cluster = make_cluster(3)
    leader = wait_for(cluster.leader_index, 30, what="a leader")
    with cluster.client(timeout=3.0, retries=3) as client:
        client.prefer(cluster.node(leader).api_endpoint)
        stream = client.events(types=["task"])  # follows, from what the leader keeps
        seen: list[Event] = []

        def read_until_created(ids: set[str]) -> None:
            while not ids <= {e.id for e in seen if e.action == "created"}:
                seen.append(next(stream))

        before = {client.submit(IMAGE, command=SLEEP).id for _ in range(2)}
        read_until_created(before)
        assert client.last_answered == cluster.node(leader).api_endpoint  # reading from the leader
        cluster.kill(leader)
        survivors = [n.index for n in cluster.nodes if n.index != leader]
        with cluster.client(*survivors) as writer:
            after = {writer.submit(IMAGE, command=SLEEP).id for _ in range(2)}
            read_until_created(after)  # the stream moved to a survivor by itself
            assert client.last_answered != cluster.node(leader).api_endpoint
            reference = list(writer.events(since=seen[0].index - 1, types=["task"], follow=False))
    keys = [(e.index, e.id, e.action, e.state) for e in seen]
    assert len(keys) == len(set(keys)), "an event came twice"
    assert seen == reference[: len(seen)], "the followed stream differs from a survivor's record"
    assert [e.index for e in seen] == sorted(e.index for e in seen)
