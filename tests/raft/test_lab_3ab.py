"""MIT 6.5840 Raft lab, parts 3A (election) and 3B (agreement), ported to the simulator.

Time is in ticks: the election timeout is 10-20 ticks, so MIT's RaftElectionTimeout (1 s)
is ELECTION ticks. Index numbers differ from the lab by a fixed offset: our log starts with
the bootstrap configuration entry and each leader's no-op, so tests check relative indexes.
"""

from __future__ import annotations

import random

from orion.sim.raft_cluster import SimCluster

ELECTION = 20  # ticks: MIT's RaftElectionTimeout


def test_initial_election() -> None:
    c = SimCluster(3, seed=1)
    c.check_one_leader()
    term1 = c.check_terms()
    assert term1 >= 1
    # No failures: the leader and the term stay put.
    c.tick(2 * ELECTION)
    term2 = c.check_terms()
    assert term1 == term2, "term changed even though there were no failures"
    c.check_one_leader()


def test_re_election() -> None:
    c = SimCluster(3, seed=2)
    leader1 = c.check_one_leader()
    c.disconnect(leader1)
    c.check_one_leader()
    # The old leader rejoins: it must not disturb the new one.
    c.connect(leader1)
    leader2 = c.check_one_leader()
    # Without a quorum no leader may be elected.
    i = c.ids.index(leader2)
    other = c.ids[(i + 1) % 3]
    c.disconnect(leader2)
    c.disconnect(other)
    c.tick(2 * ELECTION)
    c.check_no_leader()
    c.connect(other)
    c.check_one_leader()
    c.connect(leader2)
    c.check_one_leader()


def test_many_elections() -> None:
    c = SimCluster(7, seed=3)
    c.check_one_leader()
    rng = random.Random(3)
    for _ in range(10):
        victims = rng.sample(c.ids, 3)
        for v in victims:
            c.disconnect(v)
        # Either the current leader is still alive, or the remaining four elect one.
        c.check_one_leader()
        for v in victims:
            c.connect(v)
    c.check_one_leader()


def test_basic_agree() -> None:
    c = SimCluster(3, seed=4)
    c.check_one_leader()
    previous = 0
    for n in range(1, 4):
        cmd = f"basic={n}".encode()
        index = c.one(cmd, 3, retry=False)
        if previous:
            assert index == previous + 1, f"got index {index}, expected {previous + 1}"
        previous = index


def test_rpc_bytes() -> None:
    c = SimCluster(3, seed=5)  # the simulator always sends encoded frames
    c.check_one_leader()
    c.one(b"99", 3)
    bytes0 = c.net.bytes_sent
    sent = 0
    rng = random.Random(5)
    for _ in range(10):
        cmd = rng.randbytes(5000)
        c.one(cmd, 3, retry=False)
        sent += len(cmd)
    got = c.net.bytes_sent - bytes0
    expected = sent * 2  # each command goes to each of the two followers once
    assert got <= expected + 50_000, f"too many RPC bytes: {got}, expected about {expected}"


def test_follower_failure() -> None:
    c = SimCluster(3, seed=6)
    c.one(b"101", 3)
    leader1 = c.check_one_leader()
    c.disconnect(c.ids[(c.ids.index(leader1) + 1) % 3])
    # The leader and the remaining follower agree without the disconnected one.
    c.one(b"102", 2)
    c.tick(ELECTION)
    c.one(b"103", 2)
    # Disconnect the remaining follower too: no agreement possible.
    leader2 = c.check_one_leader()
    for node_id in c.ids:
        if node_id != leader2:
            c.disconnect(node_id)
    index, _, ok = c.propose(b"104")
    assert ok, "leader rejected a proposal"
    c.tick(2 * ELECTION)
    count, _ = c.n_committed(index)
    assert count == 0, f"{count} committed but no majority"


def test_leader_failure() -> None:
    c = SimCluster(3, seed=7)
    c.one(b"101", 3)
    leader1 = c.check_one_leader()
    c.disconnect(leader1)
    c.one(b"102", 2)
    c.tick(ELECTION)
    c.one(b"103", 2)
    leader2 = c.check_one_leader()
    c.disconnect(leader2)
    # Submit to every server: none of the fragments can commit.
    index = 0
    for node_id in c.ids:
        core = c.core(node_id)
        if core.role == "leader":
            index = core.propose(b"104")
    c.tick(2 * ELECTION)
    if index:
        count, _ = c.n_committed(index)
        assert count == 0, f"{count} committed but no majority"


def test_fail_agree() -> None:
    c = SimCluster(3, seed=8)
    c.one(b"101", 3)
    leader = c.check_one_leader()
    follower = c.ids[(c.ids.index(leader) + 1) % 3]
    c.disconnect(follower)
    for cmd in (b"102", b"103", b"104", b"105"):
        c.one(cmd, 2)
    c.connect(follower)
    # The rejoined follower catches up and takes part again.
    c.one(b"106", 3)
    c.tick(ELECTION)
    c.one(b"107", 3)


def test_fail_no_agree() -> None:
    c = SimCluster(5, seed=9)
    index0 = c.one(b"10", 5)
    leader = c.check_one_leader()
    i = c.ids.index(leader)
    for k in (1, 2, 3):
        c.disconnect(c.ids[(i + k) % 5])
    index = c.core(leader).propose(b"20")
    assert index == index0 + 1
    c.tick(2 * ELECTION)
    count, _ = c.n_committed(index)
    assert count == 0, f"{count} committed but no majority"
    for k in (1, 2, 3):
        c.connect(c.ids[(i + k) % 5])
    # The disconnected majority may elect a new leader, or the old one continues.
    leader2 = c.check_one_leader()
    index2 = c.core(leader2).propose(b"30")
    assert index0 + 1 <= index2 <= index + 2, f"unexpected index {index2}"
    c.one(b"1000", 5)


def test_concurrent_starts() -> None:
    c = SimCluster(3, seed=10)
    leader = c.check_one_leader()
    core = c.core(leader)
    term = core.term
    cmds = [f"c={i}".encode() for i in range(5)]
    indexes = core.propose_batch(cmds)
    assert indexes == list(range(indexes[0], indexes[0] + 5))
    assert c.run_until(lambda: all(c.n_committed(i)[0] == 3 for i in indexes), 2 * ELECTION)
    assert core.term == term
    assert sorted(c.n_committed(i)[1] for i in indexes) == sorted(cmds)


def test_rejoin() -> None:
    c = SimCluster(3, seed=11)
    c.one(b"101", 3)
    leader1 = c.check_one_leader()
    c.disconnect(leader1)
    # The partitioned leader accepts commands it can never commit.
    core1 = c.core(leader1)
    for cmd in (b"102", b"103", b"104"):
        core1.propose(cmd)
    c.one(b"103", 2)
    leader2 = c.check_one_leader()
    c.disconnect(leader2)
    c.connect(leader1)
    c.one(b"104", 2)
    c.connect(leader2)
    c.one(b"105", 3)


def test_backup() -> None:
    c = SimCluster(5, seed=12)
    rng = random.Random(12)
    c.one(b"start", 5)
    leader1 = c.check_one_leader()
    i = c.ids.index(leader1)
    group = [c.ids[(i + k) % 5] for k in (2, 3, 4)]
    for node_id in group:
        c.disconnect(node_id)
    # Lots of commands that will not commit.
    c.core(leader1).propose_batch([rng.randbytes(8) for _ in range(50)])
    c.tick(ELECTION // 2)
    c.disconnect(leader1)
    c.disconnect(c.ids[(i + 1) % 5])
    for node_id in group:
        c.connect(node_id)
    # Lots of successful commands to the new group.
    for _ in range(50):
        c.one(rng.randbytes(8), 3)
    leader2 = c.check_one_leader()
    other = next(n for n in group if n != leader2)
    c.disconnect(other)
    # Lots more commands that will not commit.
    c.core(leader2).propose_batch([rng.randbytes(8) for _ in range(50)])
    c.tick(ELECTION // 2)
    for node_id in c.ids:
        c.disconnect(node_id)
    for node_id in (leader1, c.ids[(i + 1) % 5], other):
        c.connect(node_id)
    for _ in range(50):
        c.one(rng.randbytes(8), 3)
    for node_id in c.ids:
        c.connect(node_id)
    c.one(b"end", 5)


def test_count() -> None:
    c = SimCluster(3, seed=13)
    c.check_one_leader()
    total1 = c.net.requests
    assert 1 <= total1 <= 30, f"too many or too few RPCs ({total1}) to elect an initial leader"
    leader = c.check_one_leader()
    core = c.core(leader)
    term = core.term
    before = c.net.requests
    cmds = [f"count={k}".encode() for k in range(10)]
    indexes = core.propose_batch(cmds)
    assert c.run_until(lambda: all(c.n_committed(i)[0] == 3 for i in indexes), 2 * ELECTION)
    assert core.term == term
    used = c.net.requests - before
    assert used <= (10 + 1 + 3) * 3, f"too many RPCs ({used}) for 10 entries"
    # Idle: only heartbeats.
    before = c.net.requests
    c.tick(ELECTION)
    idle = c.net.requests - before
    assert idle <= 3 * 20, f"too many RPCs ({idle}) while idle"
