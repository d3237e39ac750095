"""The simulator's safety checker: no false alarms on legal Raft histories, and a broken
election rule is still caught."""

from __future__ import annotations

import random

import msgspec
import pytest

from orion.raft import core as raft_core
from orion.raft.core import LEADER, RaftConfig, RaftCore
from orion.raft.messages import RequestVote
from orion.raft.types import Entry, EntryKind, HardState, Membership, StoredState, encode_membership
from orion.sim.invariants import InvariantChecker, InvariantViolation
from orion.sim.raft_random import random_run


@pytest.mark.parametrize("seed", [504741, 516048])
def test_leader_of_older_term_need_not_hold_entries_committed_later(seed: int) -> None:
    """These seeds elect a slow candidate of term T (late votes) after a leader of T+1 already
    committed more entries: legal Raft, once reported as a leader-completeness violation."""
    cluster = random_run(seed, fault_ticks=300)
    assert cluster.checker.max_committed > 0


_real_vote_request = raft_core.RaftCore._on_vote_request


def _vote_without_log_check(self: raft_core.RaftCore, msg: RequestVote) -> None:
    """The election restriction removed: every candidate's log looks up to date to the voter."""
    _real_vote_request(self, msgspec.structs.replace(msg, last_log_term=1 << 62))


def test_checker_catches_votes_granted_without_the_up_to_date_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(raft_core.RaftCore, "_on_vote_request", _vote_without_log_check)
    caught: list[str] = []
    for seed in range(40):
        try:
            random_run(seed)
        except InvariantViolation as exc:
            caught.append(str(exc))
    assert any("leader completeness" in what for what in caught), caught


CONFIG_ENTRY = Entry(1, 1, EntryKind.CONFIG, encode_membership(Membership(voters={"a": "sim:a"})))


def _leader_of_term_3_with_two_entries() -> RaftCore:
    """A single-voter core holding entries 1 and 2, elected in term 3."""
    stored = StoredState(HardState(term=2, commit=2), None, [CONFIG_ENTRY, Entry(2, 2, data=b"x=1")])
    core = RaftCore("a", stored, RaftConfig(), random.Random(1))
    for _ in range(100):
        if core.role == LEADER:
            break
        core.tick()
    assert core.role == LEADER and core.term == 3
    return core


def _checker_knowing_index_3_committed_in(term: int) -> InvariantChecker:
    checker = InvariantChecker(seed=0)
    entries = [CONFIG_ENTRY, Entry(2, 2, data=b"x=1"), Entry(3, 2, data=b"x=2")]
    witness = RaftCore(
        "b", StoredState(HardState(term=term, commit=3), None, entries), RaftConfig(), random.Random(2)
    )
    checker.on_state("b", witness)  # b, in `term`, knows index 3 is committed
    for entry in entries:
        checker.on_apply("b", entry, entry.index, 0)
    return checker


def test_leader_completeness_only_requires_entries_committed_in_earlier_terms() -> None:
    leader = _leader_of_term_3_with_two_entries()
    _checker_knowing_index_3_committed_in(term=4).on_state("a", leader)  # committed later: fine
    with pytest.raises(InvariantViolation, match="lacks entry 3 committed in term 2"):
        _checker_knowing_index_3_committed_in(term=2).on_state("a", leader)
