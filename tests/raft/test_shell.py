"""RaftShell: the identity checks, chunked snapshot streaming and the send/persist order, on
three cores joined by an in-memory link that carries real encoded frames."""

from __future__ import annotations

import random
import uuid
from typing import Any

import msgspec

from orion.raft.core import LEADER, RaftConfig, RaftCore
from orion.raft.memory_store import MemoryStore
from orion.raft.messages import AppendResponse, RequestVote
from orion.raft.shell import FOR_EARLIER_LIFE, FROM_OTHER_LIFE, OTHER_CLUSTER, RaftShell
from orion.raft.types import Entry, EntryKind, Membership, Snapshot, SnapshotMeta

CONFIG = RaftConfig(election_ticks=10, heartbeat_ticks=2)


class Node:
    """A host for one shell: a list FSM, snapshots taken synchronously."""

    def __init__(self, net: Net, node_id: str, bootstrap: Membership | None, incarnation: str) -> None:
        self.net = net
        self.id = node_id
        self.store = MemoryStore()
        self.store.save_identity(incarnation)
        self.applied: list[bytes] = []
        self.dropped: list[tuple[str, str]] = []
        self.phases: list[str] = []
        core = RaftCore(node_id, self.store.load(), net.config, random.Random(node_id), bootstrap=bootstrap)
        self.shell = RaftShell(
            core, self.store, self, incarnation=incarnation, snapshot_threshold=net.threshold
        )
        self.shell.fault_hook = self.phases.append

    @property
    def core(self) -> RaftCore:
        return self.shell.core

    # ShellHost
    def send_frame(self, dst: str, frame: bytes) -> None:
        self.net.frames.append((self.id, dst, frame))

    def apply(self, entry: Entry) -> bool:
        if entry.kind == EntryKind.NORMAL:
            self.applied.append(entry.data)
            return True
        return False

    def restore(self, snapshot: Snapshot) -> None:
        self.applied, _padding = msgspec.msgpack.decode(snapshot.data, type=tuple[list[bytes], bytes])

    def snapshot_source(self) -> Any:
        return list(self.applied)

    def start_snapshot(self, meta: SnapshotMeta, source: Any) -> None:
        snapshot = Snapshot(meta, msgspec.msgpack.encode((source, self.net.padding)))
        self.store.write_snapshot(snapshot)
        self.shell.snapshot_taken(snapshot)

    def on_read_state(self, context: bytes, index: int) -> None:
        pass

    def on_failed_read(self, context: bytes) -> None:
        pass

    def on_dropped(self, peer: str, reason: str, detail: str) -> None:
        self.dropped.append((peer, reason))


class Net:
    def __init__(self, threshold: int = 1_000_000, padding: bytes = b"", config: RaftConfig = CONFIG) -> None:
        self.threshold = threshold
        self.config = config
        self.padding = padding  # bytes appended to every snapshot (a big state)
        self.nodes: dict[str, Node] = {}
        self.frames: list[tuple[str, str, bytes]] = []
        self.largest_frame = 0

    def add(self, node_id: str, bootstrap: Membership | None, incarnation: str) -> Node:
        node = Node(self, node_id, bootstrap, incarnation)
        self.nodes[node_id] = node
        return node

    def settle(self) -> None:
        for _ in range(100_000):
            busy = False
            for node in self.nodes.values():
                if node.core.has_ready():
                    node.shell.drain()
                    busy = True
            if self.frames:
                busy = True
                batch, self.frames = self.frames, []
                for _src, dst, frame in batch:
                    self.largest_frame = max(self.largest_frame, len(frame))
                    target = self.nodes.get(dst)
                    if target is not None:
                        target.shell.receive(frame)
            if not busy:
                return
        raise AssertionError("the cluster did not settle")

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            for node in self.nodes.values():
                node.shell.tick()
            self.settle()

    def leader(self) -> Node:
        for _ in range(200):
            leaders = [n for n in self.nodes.values() if n.core.role == LEADER]
            if leaders:
                return leaders[0]
            self.tick()
        raise AssertionError("no leader")


def cluster(ids: list[str], cluster_id: str = "c1", **net_args: Any) -> tuple[Net, dict[str, str]]:
    incarnations = {i: uuid.uuid4().hex for i in ids}
    membership = Membership(
        voters={i: f"mem:{i}" for i in ids}, cluster_id=cluster_id, incarnations=dict(incarnations)
    )
    net = Net(**net_args)
    for i in ids:
        net.add(i, membership, incarnations[i])
    return net, incarnations


def commit(net: Net, leader: Node, items: list[bytes]) -> None:
    leader.core.propose_batch(items)
    net.settle()
    net.tick(3)


def test_a_wiped_follower_is_not_taken_for_its_old_self_and_rejoins_as_a_new_member() -> None:
    net, _ = cluster(["n1", "n2", "n3"])
    leader = net.leader()
    commit(net, leader, [b"a", b"b", b"c"])
    victim = next(i for i in ("n3", "n2") if i != leader.id)
    assert net.nodes[victim].applied == [b"a", b"b", b"c"]

    new_life = uuid.uuid4().hex
    del net.nodes[victim]
    wiped = net.add(victim, None, new_life)  # same id, empty store, new incarnation
    net.tick(5)
    # The leader still addresses the old life: the wiped node drops those frames and so
    # never acknowledges entries it does not hold.
    assert (leader.id, FOR_EARLIER_LIFE) in wiped.dropped
    assert wiped.core.last_index == 0

    leader.core.remove(victim)
    net.tick(3)
    leader.core.add_non_voter(victim, f"mem:{victim}", new_life)
    net.tick(20)
    leader.core.promote(victim)
    net.tick(5)
    assert wiped.applied == [b"a", b"b", b"c"]
    assert wiped.core.membership.incarnations[victim] == new_life
    assert victim in leader.core.membership.voters


def test_frames_from_an_old_incarnation_are_dropped() -> None:
    net, incarnations = cluster(["n1", "n2", "n3"])
    leader = net.leader()
    follower = next(n for n in net.nodes.values() if n is not leader)
    stale = RaftCore(follower.id, MemoryStore().load(), CONFIG, random.Random(1))
    impostor = RaftShell(
        stale, MemoryStore(), follower, incarnation=uuid.uuid4().hex, snapshot_threshold=10**6
    )
    impostor._send(AppendResponse(follower.id, leader.id, leader.core.term, True, 10**6))
    net.settle()
    assert (follower.id, FROM_OTHER_LIFE) in leader.dropped
    assert leader.core.match_index(follower.id) < 10**6  # its claim was never counted
    assert incarnations[follower.id] != impostor.incarnation


def test_a_node_of_another_cluster_is_never_followed() -> None:
    net, _ = cluster(["n1", "n2", "n3"], cluster_id="c1")
    leader = net.leader()
    commit(net, leader, [b"x"])
    term = leader.core.term
    # A node that founded a cluster of its own (a wiped bootstrap node that did not wait) has
    # the id of a member of c1 and campaigns at a higher term.
    rogue_membership = Membership(voters={"n4": "mem:n4"}, cluster_id="c2", incarnations={"n4": "ff"})
    rogue = net.add("n4", rogue_membership, "ff")
    for _ in range(30):
        rogue.core.tick()
    for dst in ("n1", "n2", "n3"):
        rogue.shell._send(RequestVote("n4", dst, term + 5, 1, 1))
    net.tick(5)
    assert all(("n4", OTHER_CLUSTER) in net.nodes[i].dropped for i in ("n1", "n2", "n3"))
    assert all(net.nodes[i].core.term == term for i in ("n1", "n2", "n3"))
    assert leader.core.role == LEADER


def test_a_big_snapshot_reaches_a_new_follower_in_bounded_frames() -> None:
    # No trailing entries: a newcomer needs the snapshot, ~10 MB, over the 8 MiB frame limit.
    config = RaftConfig(election_ticks=10, heartbeat_ticks=2, trailing_entries=0)
    net, _ = cluster(["n1"], threshold=16, padding=bytes(range(256)) * 40_000, config=config)
    leader = net.leader()
    for i in range(40):
        commit(net, leader, [f"e{i}".encode()])
    assert leader.core.snapshot_index > 1
    assert leader.core.log_first_index > 1
    joiner = net.add("n2", None, "abcd")
    leader.core.add_non_voter("n2", "mem:n2", "abcd")
    net.tick(60)
    assert joiner.core.applied_index == leader.core.applied_index
    assert joiner.applied == leader.applied
    assert net.largest_frame < 2 << 20


def test_a_leader_sends_before_it_persists_and_a_follower_after() -> None:
    net, _ = cluster(["n1", "n2", "n3"])
    leader = net.leader()
    leader.phases.clear()
    commit(net, leader, [b"p"])
    assert "sent_before_persist" in leader.phases
    follower = next(n for n in net.nodes.values() if n is not leader)
    assert "persisted" in follower.phases
    assert "sent_before_persist" not in follower.phases
