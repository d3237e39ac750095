"""The worker feed on real node processes (issue 20): a peer that is no member of the cluster
(a PeerTransport holding the cluster key, as a worker's node has) watches one node's tasks
from a member of a live 3-node cluster over the FEED channel."""

from __future__ import annotations

import queue
import time

import pytest

from orion.cluster.feed_protocol import FeedAnswer, FeedMessage, FeedWatch, decode_feed, encode_feed
from orion.security.keys import load_cluster_key
from orion.testing.localcluster import LocalCluster, wait_for
from orion.transport.peer import Channel, PeerTransport

pytestmark = [pytest.mark.cluster, pytest.mark.docker]
IMAGE = "orion-busybox:latest"


class Watcher:
    """A worker's end of the feed: sends watches, collects what comes back on FEED."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.received: queue.Queue[FeedMessage] = queue.Queue()
        self.transport = PeerTransport(
            "127.0.0.1",
            0,
            self._on_frame,
            name="feed-watcher",
            curve=load_cluster_key(cluster.cluster_key_path),
        )
        self.transport.start()

    def _on_frame(self, channel: Channel, payload: bytes) -> None:
        if channel == Channel.FEED:
            self.received.put(decode_feed(payload))

    def watch(self, member: str, node_id: str, since: int, wait_ms: int) -> None:
        frame = FeedWatch(node_id=node_id, origin=self.transport.address, since=since, wait_ms=wait_ms)
        self.transport.send(member, Channel.FEED, encode_feed(frame))

    def answer(self, timeout: float) -> FeedAnswer:
        message = self.received.get(timeout=timeout)
        assert isinstance(message, FeedAnswer), message
        return message

    def close(self) -> None:
        self.transport.stop()


def test_a_watch_on_a_member_gets_a_nodes_tasks_and_is_answered_when_they_change(make_cluster):
    cluster = make_cluster(3, per_node={2: {"tags": {"feed": "here"}}})
    leader = wait_for(cluster.leader_index, 30, what="one agreed leader")
    member = cluster.node(next(i for i in (3, 2, 1) if i != leader))  # a follower serves too
    watched = cluster.node(2).node_id
    watcher = Watcher(cluster)
    try:
        # A bad frame is dropped; the member answers the next watch as if it never came.
        watcher.transport.send(member.raft_address, Channel.FEED, b"\xc1not msgpack")

        # wait_ms 0: answered at once. The member may still be applying the first entries
        # (it answers from its replica), so ask until it names the leader.
        def first() -> FeedAnswer | None:
            watcher.watch(member.raft_address, watched, since=0, wait_ms=0)
            answer = watcher.answer(timeout=10)
            return answer if answer.leader_id and answer.member else None

        answer = wait_for(first, 30, what="a first answer naming the leader")
        assert answer.changed and answer.tasks == [] and answer.cluster_id
        assert answer.leader_id == cluster.node(leader).node_id
        assert answer.leader_address == cluster.node(leader).raft_address
        assert sorted(answer.servers) == sorted(n.raft_address for n in cluster.nodes)

        # Parked until an entry touches the node: the task placed on it answers the watch.
        watcher.watch(member.raft_address, watched, since=answer.index, wait_ms=120_000)
        with cluster.client() as client:
            task = client.submit(IMAGE, command=["sleep", "3600"], node_selectors={"feed": "here"})
        states: list[str] = []
        deadline = time.monotonic() + 90
        while "Running" not in states:
            assert time.monotonic() < deadline, f"the task never showed Running in the feed: {states}"
            answer = watcher.answer(timeout=max(0.1, deadline - time.monotonic()))
            assert answer.changed, answer  # a parked watch answered before its deadline: a change
            mine = [t for t in answer.tasks if t.id == task.id]
            assert all(t.node_id == watched for t in answer.tasks)
            states += [t.state for t in mine]
            watcher.watch(member.raft_address, watched, since=answer.index, wait_ms=120_000)
        assert states[0] in ("Scheduled", "Running"), states  # placed there: the first answer lists it
    finally:
        watcher.close()
