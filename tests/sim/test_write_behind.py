"""A leader that writes behind its sends (production's writer thread, the simulator's delayed
writes): its own copy of an entry counts toward the commit only once written, so

- a majority of followers may commit an entry the leader has not written yet, and the entry
  survives the leader crashing before its write (a quorum holds it durably);
- the leader and one follower of three may not: if the leader crashed before its write, only
  one node would hold the entry and a leader elected without it would overwrite it. A core that
  counted the handed copy is caught here and by the randomized runs;
- followers, candidates and a deposed leader still write before they promise: every
  acknowledgement and granted vote is checked against the sender's store as it leaves.
"""

from __future__ import annotations

import pytest

from orion.raft import core as raft_core
from orion.raft.core import LEADER, RaftConfig, RaftCore, Ready
from orion.raft.messages import Message
from orion.raft.shell import RaftShell
from orion.raft.types import Entry, HardState
from orion.sim.invariants import InvariantViolation
from orion.sim.raft_cluster import SimCluster
from orion.sim.raft_random import random_run

CONFIG = RaftConfig(election_ticks=10, heartbeat_ticks=2)
SLOW = 3  # ticks a leader's write may take


def _cluster(seed: int) -> tuple[SimCluster, str, list[str]]:
    c = SimCluster(3, seed=seed, config=CONFIG, write_delay=SLOW)
    leader = c.wait_leader()
    c.one(b"a=1", 3)
    c.run_until(lambda: not c.nodes[leader].writes, 2 * SLOW)
    return c, leader, [i for i in c.ids if i != leader]


def _propose_until_the_write_is_slow(c: SimCluster, leader: str, data: bytes) -> int:
    """Propose at the leader until its write of the entry is still in flight once every frame
    and acknowledgement has been delivered (a write may draw 0 ticks)."""
    for _ in range(20):
        index = c.core(leader).propose(data)
        c.settle()
        if c.nodes[leader].writes:
            return index
        c.tick()
    raise AssertionError(f"seed={c.seed}: every write of the leader completed at once")


def _holds(c: SimCluster, node_id: str, index: int) -> bool:
    return any(e.index == index for e in c.nodes[node_id].store.entries)


def test_followers_commit_an_entry_the_leader_has_not_written_and_it_survives_the_leader() -> None:
    c, leader, followers = _cluster(seed=31)
    index = _propose_until_the_write_is_slow(c, leader, b"a=2")
    core = c.core(leader)
    assert core.commit_index >= index > core.stable_index, "both followers' writes commit it"
    assert c.nodes[leader].fsm.applied_index >= index, "applied before the leader's own write"
    c.crash(leader)
    assert not _holds(c, leader, index)
    assert all(_holds(c, f, index) for f in followers)
    assert c.run_until(lambda: any(c.nodes[f].core.role == LEADER for f in followers), 100)
    c.start(leader)
    c.one(b"a=3", 3)
    assert c.n_committed(index)[0] == 3
    assert c.checker.committed[index].data == b"a=2"


def _crash_after_one_follower_acknowledged(c: SimCluster, leader: str, followers: list[str]) -> int:
    """Cut off one follower, propose: the other acknowledges while the leader's write is in
    flight. Crash the leader, then let it and the cut-off follower (neither holds the entry)
    elect a leader while the follower that holds it is away."""
    holder, other = followers
    c.disconnect(other)
    index = _propose_until_the_write_is_slow(c, leader, b"a=2")
    assert _holds(c, holder, index) and not _holds(c, leader, index)
    c.crash(leader)
    c.disconnect(holder)
    c.connect(other)
    c.start(leader)
    c.wait_leader(200)
    c.connect(holder)
    c.one(b"a=3", 3)
    return index


def test_a_leader_and_one_follower_do_not_commit_what_only_the_follower_wrote() -> None:
    c, leader, followers = _cluster(seed=32)
    index = _crash_after_one_follower_acknowledged(c, leader, followers)
    committed = c.checker.committed[index]
    assert committed.data != b"a=2", "the entry only one node held was overwritten, never applied"


def test_a_leader_counting_its_unwritten_copy_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mutant commits with the leader's handed copy and one follower's; the leader crashes
    before writing, and the next leader (elected without the lone holder) lacks the entry."""
    real = RaftCore.advance

    def counts_handed(self: RaftCore, ready: Ready, *, written: bool = True) -> None:
        real(self, ready, written=True)

    monkeypatch.setattr(raft_core.RaftCore, "advance", counts_handed)
    c, leader, followers = _cluster(seed=32)
    with pytest.raises(InvariantViolation, match=r"leader completeness|state machine safety"):
        _crash_after_one_follower_acknowledged(c, leader, followers)


def test_random_runs_catch_a_leader_counting_its_unwritten_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    real = RaftCore.advance

    def counts_handed(self: RaftCore, ready: Ready, *, written: bool = True) -> None:
        real(self, ready, written=True)

    monkeypatch.setattr(raft_core.RaftCore, "advance", counts_handed)
    caught = []
    for seed in range(200):  # about one seed in twenty catches it; no one seed is pinned
        try:
            random_run(seed, write_behind=True)
        except InvariantViolation as exc:
            caught.append(str(exc))
        except ValueError as exc:
            # With a small RaftConfig.memory_entries the core reads entries it took as durable
            # back from the store, which refuses those the writer still holds: this mutant is
            # then stopped before the checker sees it (the run ends; other seeds go on).
            assert "not all stored" in str(exc), exc
    assert any("leader completeness" in what or "state machine safety" in what for what in caught), caught


@pytest.mark.parametrize("start", range(0, 300, 100))
def test_random_runs_with_leaders_writing_behind_keep_every_invariant(start: int) -> None:
    """Crashes now also lose a leader's writes in flight; every step is checked."""
    for seed in range(start, start + 100):
        random_run(seed, write_behind=True)


def test_a_follower_acknowledging_before_it_writes_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator checks every acknowledgement and vote against the sender's store: a shell
    that sent a non-leader's messages before its write is caught at once."""
    real_persist, real_send = RaftShell._persist, RaftShell._send_all
    held: dict[int, tuple[HardState | None, list[Entry]]] = {}

    def persist_later(self: RaftShell, hard_state: HardState | None, entries: list[Entry]) -> None:
        if self.core.role == LEADER:
            real_persist(self, hard_state, entries)
        else:
            held[id(self)] = (hard_state, entries)

    def send_then_persist(self: RaftShell, messages: list[Message], urgent: bool = True) -> None:
        real_send(self, messages, urgent)
        if id(self) in held:
            real_persist(self, *held.pop(id(self)))

    monkeypatch.setattr(RaftShell, "_persist", persist_later)
    monkeypatch.setattr(RaftShell, "_send_all", send_then_persist)
    with pytest.raises(
        InvariantViolation, match=r"acknowledged index \d+ with only \d+ written|before writing"
    ):
        random_run(0)
