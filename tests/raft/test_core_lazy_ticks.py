"""Owing a core its ticks is unobservable: a host may pay them before the core's next input, or
once ``ticks_until_due`` of them are owed, instead of ticking on every beat (the Raft actor
does, so an idle follower wakes at its election deadline only). Random schedules run on two
harnesses of one seed, one ticked on every beat and one lazily: they must send the same
messages and reach the same states, step by step."""

from __future__ import annotations

import random
from typing import Any

import pytest
from core_harness import CoreHarness

from orion.raft.core import FOLLOWER, LEADER, NotLeaderError, RaftConfig, RaftCore
from orion.raft.types import Membership, StoredState

IDS = ["n1", "n2", "n3"]

# Everything that hands the core something new: owed ticks are paid first.
INPUTS = frozenset(
    {
        "step",
        "propose",
        "propose_batch",
        "read_index",
        "transfer_leadership",
        "add_non_voter",
        "promote",
        "remove",
        "update_address",
        "bootstrap",
        "compact",
        "snapshot_progress",
        "snapshot_failed",
    }
)


class LazyCore:
    """A RaftCore whose ticks are owed until due, or until its next input."""

    def __init__(self, core: RaftCore) -> None:
        self._core = core
        self.owed = 0
        self.deferred = 0  # ticks that were owed for a while: the laziness under test

    def tick(self) -> None:
        self.owed += 1
        due = self._core.ticks_until_due()
        if due is not None and self.owed >= due:
            self.pay()
        else:
            self.deferred += 1

    def pay(self) -> None:
        for _ in range(self.owed):
            self._core.tick()
        self.owed = 0

    def __getattr__(self, name: str) -> Any:
        if name in INPUTS:
            self.pay()
        return getattr(self._core, name)


class LazyHarness(CoreHarness):
    def start(self, node_id: str, stored: StoredState, *, bootstrap: Membership | None = None) -> RaftCore:
        core = super().start(node_id, stored, bootstrap=bootstrap)
        lazy: Any = LazyCore(core)
        self.cores[node_id] = lazy
        return lazy


def _leader(h: CoreHarness) -> RaftCore | None:
    return next((c for c in h.cores.values() if c.role == LEADER), None)


def _state(h: CoreHarness) -> list[tuple[Any, ...]]:
    return [
        (c.role, c.term, c.vote, c.leader_id, c.commit_index, c.last_index, c.applied_index)
        for c in h.cores.values()
    ]


def _step(h: CoreHarness, rng: random.Random) -> None:
    """One random step of the schedule; ``rng`` and the cluster's state decide it alike on
    both harnesses."""
    roll = rng.random()
    if roll < 0.45:
        h.tick()
    elif roll < 0.65:
        h.tick(only=rng.choice(IDS))
    elif roll < 0.75:
        leader = _leader(h)
        if leader is not None:
            try:
                leader.propose(rng.randbytes(8))
            except NotLeaderError:
                pass  # a transfer is under way
            h.pump()
    elif roll < 0.8:
        leader = _leader(h)
        if leader is not None:
            try:
                leader.read_index(rng.randbytes(4))
            except NotLeaderError:
                pass
            h.pump()
    elif roll < 0.86:
        h.blocked = {rng.choice(IDS)} if rng.random() < 0.7 else set()
    elif roll < 0.92:
        lost = rng.random() * 0.5
        coin = random.Random(rng.getrandbits(32))
        h.drop = lambda _msg: coin.random() < lost
    elif roll < 0.94:
        h.drop = lambda _msg: False
    else:
        leader = _leader(h)
        if leader is not None:
            try:
                leader.transfer_leadership()
            except (NotLeaderError, ValueError):
                pass
            h.pump()


@pytest.mark.parametrize("check_quorum", [True, False])
@pytest.mark.parametrize("seed", range(12))
def test_a_lazily_ticked_cluster_does_what_an_eagerly_ticked_one_does(seed: int, check_quorum: bool) -> None:
    config = RaftConfig(election_ticks=10, heartbeat_ticks=2, check_quorum=check_quorum)
    eager = CoreHarness(IDS, config, seed=seed)
    lazy = LazyHarness(IDS, config, seed=seed)
    rng_eager, rng_lazy = random.Random(seed), random.Random(seed)
    for step in range(1500):
        _step(eager, rng_eager)
        _step(lazy, rng_lazy)
        assert _state(lazy) == _state(eager), f"seed {seed}: states differ after step {step}"
        assert lazy.sent == eager.sent, f"seed {seed}: messages differ after step {step}"
    deferred = sum(c.deferred for c in lazy.cores.values())  # type: ignore[attr-defined]
    assert deferred > 1000, f"only {deferred} ticks were ever owed: the schedule did not test laziness"
    commit = max(c.commit_index for c in eager.cores.values())
    assert commit > 20, f"only {commit} entries committed: the schedule did not test replication"


def test_ticks_until_due_names_the_next_tick_that_does_something() -> None:
    config = RaftConfig(election_ticks=10, heartbeat_ticks=2)
    h = CoreHarness(IDS, config, seed=3)
    leader = h.elect("n1")
    h.pump()
    follower = h.core("n2")
    due = follower.ticks_until_due()
    assert due is not None and 1 <= due <= 2 * config.election_ticks
    term = follower.term
    for _ in range(due - 1):
        follower.tick()
    assert follower.role == FOLLOWER and not follower.has_ready()
    follower.tick()
    assert follower.role != FOLLOWER or follower.term != term or follower.has_ready()
    assert leader.ticks_until_due() in (1, 2)
    before = leader.ticks_until_due()
    assert before is not None
    for _ in range(before - 1):
        leader.tick()
    assert not leader.has_ready()
    leader.tick()
    assert leader.has_ready()  # the heartbeat


def test_a_node_outside_the_configuration_is_never_due() -> None:
    h = CoreHarness(IDS, RaftConfig(election_ticks=10, heartbeat_ticks=2), seed=1)
    newcomer = h.add_empty("n9")
    assert newcomer.ticks_until_due() is None
