"""A host that batches its sends: RaftShell flushes a Ready's frames before the leader's own
write (so the followers' writes overlap it) and a follower's answer right after its write."""

from __future__ import annotations

from typing import Any

from tests.raft.test_shell import Net, Node, cluster, commit


class BatchingNode(Node):
    """Holds frames until ``flush_frames``; logs sends, flushes and store writes in order."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.held: list[tuple[str, bytes]] = []
        self.events: list[str] = []
        save = self.store.save

        def logged_save(*save_args: Any) -> None:
            self.events.append("save")
            save(*save_args)

        self.store.save = logged_save  # type: ignore[method-assign]

    def apply(self, entry: Any) -> bool:
        self.events.append(f"apply {entry.data.decode(errors='replace')}")
        return super().apply(entry)

    def send_frame(self, dst: str, frame: bytes) -> None:
        self.events.append("send")
        self.held.append((dst, frame))

    def flush_frames(self) -> None:
        self.events.append("flush")
        self.net.frames.extend((self.id, dst, frame) for dst, frame in self.held)
        self.held = []


class BatchingNet(Net):
    def add(self, node_id: str, bootstrap: Any, incarnation: str) -> Node:
        node = BatchingNode(self, node_id, bootstrap, incarnation)
        self.nodes[node_id] = node
        return node


def test_frames_are_flushed_before_the_leader_writes_and_after_a_follower_writes(monkeypatch) -> None:
    monkeypatch.setattr("tests.raft.test_shell.Net", BatchingNet)
    net, _ = cluster(["n1", "n2", "n3"])
    assert isinstance(net, BatchingNet)
    leader = net.leader()
    assert isinstance(leader, BatchingNode)
    followers = [n for n in net.nodes.values() if n is not leader]
    for node in net.nodes.values():
        assert isinstance(node, BatchingNode)
        node.events.clear()
    commit(net, leader, [b"p1", b"p2"])
    assert all(n.applied[-2:] == [b"p1", b"p2"] for n in net.nodes.values())
    # The leader's first Ready with the entries: both AppendEntries handed over in one flush,
    # then its own write.
    first_save = leader.events.index("save")
    assert leader.events[:first_save] == ["send", "send", "flush"]
    for follower in followers:
        assert isinstance(follower, BatchingNode)
        first_save = follower.events.index("save")
        assert follower.events[first_save : first_save + 3] == ["save", "send", "flush"]
    assert all(not n.held for n in net.nodes.values() if isinstance(n, BatchingNode))


def deliver(net: Net) -> None:
    """Hand every frame in flight to its node, once (no draining)."""
    frames, net.frames = net.frames, []
    for _src, dst, frame in frames:
        net.nodes[dst].shell.receive(frame)


def test_a_leader_answers_committed_writes_before_it_writes_newer_entries(monkeypatch) -> None:
    monkeypatch.setattr("tests.raft.test_shell.Net", BatchingNet)
    net, _ = cluster(["n1", "n2", "n3"])
    leader = net.leader()
    assert isinstance(leader, BatchingNode)
    net.tick(3)
    leader.core.propose(b"p1")
    leader.shell.drain()
    deliver(net)  # AppendEntries(p1) to the followers
    for follower in (n for n in net.nodes.values() if n is not leader):
        follower.shell.drain()  # written, then acknowledged
    deliver(net)  # the acknowledgements: p1 is committed
    leader.events.clear()
    leader.core.propose(b"p2")
    leader.shell.drain()
    assert leader.events[:5] == ["send", "send", "flush", "apply p1", "save"]
    net.settle()
    net.tick(3)
    assert all(n.applied[-2:] == [b"p1", b"p2"] for n in net.nodes.values())
