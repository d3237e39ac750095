"""MIT 6.5840 Raft lab, part 3C (persistence), ported to the simulator.

A crash drops the core, the FSM and everything the shell had not persisted; a restart builds
a new core from the node's MemoryStore. Invariants are checked on every step.
"""

from __future__ import annotations

import random

from orion.raft.core import LEADER, NotLeaderError
from orion.sim.raft_cluster import SimCluster

ELECTION = 20


def crash(c: SimCluster, node_id: str) -> None:
    c.crash(node_id)
    c.disconnect(node_id)


def restart(c: SimCluster, node_id: str) -> None:
    if c.nodes[node_id].alive:
        c.crash(node_id)
    c.start(node_id)
    c.connect(node_id)


def test_persist1() -> None:
    c = SimCluster(3, seed=21)
    c.one(b"11", 3)
    for node_id in c.ids:
        crash(c, node_id)
    for node_id in c.ids:
        restart(c, node_id)
    c.one(b"12", 3)
    leader1 = c.check_one_leader()
    restart(c, leader1)
    c.one(b"13", 3)
    leader2 = c.check_one_leader()
    crash(c, leader2)
    index = c.one(b"14", 2)
    restart(c, leader2)
    # The restarted node catches up on everything, including 14.
    assert c.run_until(lambda: c.n_committed(index)[0] == 3, 4 * ELECTION)
    leader3 = c.check_one_leader()
    i3 = c.ids[(c.ids.index(leader3) + 1) % 3]
    crash(c, i3)
    c.one(b"15", 2)
    restart(c, i3)
    c.one(b"16", 3)


def test_persist2() -> None:
    c = SimCluster(5, seed=22)
    ids = c.ids
    index = 1
    for _ in range(5):
        c.one(f"{10 + index}".encode(), 5)
        index += 1
        leader1 = c.check_one_leader()
        i = ids.index(leader1)
        crash(c, ids[(i + 1) % 5])
        crash(c, ids[(i + 2) % 5])
        c.one(f"{10 + index}".encode(), 3)
        index += 1
        crash(c, ids[i])
        crash(c, ids[(i + 3) % 5])
        crash(c, ids[(i + 4) % 5])
        restart(c, ids[(i + 1) % 5])
        restart(c, ids[(i + 2) % 5])
        c.tick(ELECTION)
        restart(c, ids[(i + 3) % 5])
        c.one(f"{10 + index}".encode(), 3)
        index += 1
        restart(c, ids[(i + 4) % 5])
        restart(c, ids[i])
    c.one(b"1000", 5)


def test_persist3() -> None:
    c = SimCluster(3, seed=23)
    ids = c.ids
    c.one(b"101", 3)
    leader = c.check_one_leader()
    i = ids.index(leader)
    c.disconnect(ids[(i + 2) % 3])
    c.one(b"102", 2)
    crash(c, ids[i])
    crash(c, ids[(i + 1) % 3])
    c.connect(ids[(i + 2) % 3])
    restart(c, ids[i])
    c.one(b"103", 2)
    restart(c, ids[(i + 1) % 3])
    c.one(b"104", 3)


def _start_anywhere(c: SimCluster, cmd: bytes) -> str | None:
    """MIT's loop of Start() over every live server; returns the one that took it."""
    taker = None
    for node in c.nodes.values():
        core = node.core
        if core is not None and core.role == LEADER:
            try:
                core.propose(cmd)
                taker = node.id
            except NotLeaderError:
                pass
    return taker


def _figure8(c: SimCluster, rng: random.Random, iterations: int, unreliable: bool) -> None:
    ids = c.ids
    c.one(b"start", 1)
    up = len(ids)
    for it in range(iterations):
        if unreliable and it == iterations // 5:
            c.net.long_delay = 0.1  # MIT turns on long reordering after a while
        leader = _start_anywhere(c, rng.randbytes(6))
        c.tick(rng.randint(0, 10) if rng.random() < 0.1 else rng.randint(0, 1))
        if leader is not None and (not unreliable or rng.random() < 0.5):
            if unreliable:
                c.disconnect(leader)
            else:
                crash(c, leader)
            up -= 1
        if up < 3:
            s = rng.choice(ids)
            if unreliable and not c.connected(s):
                c.connect(s)
                up += 1
            elif not unreliable and not c.nodes[s].alive:
                restart(c, s)
                up += 1
    c.net.drop = 0.0
    c.net.long_delay = 0.0
    for node_id in ids:
        if not c.nodes[node_id].alive:
            restart(c, node_id)
        c.connect(node_id)
    c.one(b"end", len(ids))


def test_figure8() -> None:
    c = SimCluster(5, seed=24)
    _figure8(c, random.Random(24), 300, unreliable=False)


def test_unreliable_agree() -> None:
    c = SimCluster(5, seed=25, drop=0.1, max_delay=1, duplicate=0.02)
    for it in range(1, 50):
        for j in range(4):
            _start_anywhere(c, f"{100 * it + j}".encode())
        c.one(f"{it}".encode(), 1)
    c.net.drop = 0.0
    c.net.duplicate = 0.0
    c.one(b"100", 5)


def test_figure8_unreliable() -> None:
    c = SimCluster(5, seed=26, drop=0.1, max_delay=1)
    _figure8(c, random.Random(26), 300, unreliable=True)


def _churn(c: SimCluster, rng: random.Random, iterations: int) -> None:
    ids = c.ids
    proposed: list[tuple[int, bytes]] = []
    for it in range(iterations):
        # Clients: keep proposing at whoever leads.
        for node in c.nodes.values():
            core = node.core
            if core is not None and core.role == LEADER:
                cmd = f"churn={it}:{node.id}".encode()
                try:
                    proposed.append((core.propose(cmd), cmd))
                except NotLeaderError:
                    pass
        r = rng.random()
        victim = rng.choice(ids)
        if r < 0.2:
            c.disconnect(victim)
        elif r < 0.5:
            c.connect(victim)
        elif r < 0.6:
            if c.nodes[victim].alive:
                crash(c, victim)
        elif r < 0.8 and not c.nodes[victim].alive:
            restart(c, victim)
        c.tick(rng.randint(1, 4))
    c.net.drop = 0.0
    c.net.long_delay = 0.0
    for node_id in ids:
        if not c.nodes[node_id].alive:
            restart(c, node_id)
        c.connect(node_id)
    last = c.one(b"churn-end", len(ids))
    # Everything applied agrees (the checker verified it on every step) and some of the
    # churn's commands made it.
    applied = {c.checker.committed[i].data for i in range(1, last + 1) if i in c.checker.committed}
    assert any(cmd in applied for _, cmd in proposed), "no churn command committed"


def test_reliable_churn() -> None:
    c = SimCluster(5, seed=27)
    _churn(c, random.Random(27), 300)


def test_unreliable_churn() -> None:
    c = SimCluster(5, seed=28, drop=0.1, max_delay=2, duplicate=0.02)
    _churn(c, random.Random(28), 300)
