"""The simulator's safety checker: no false alarms on legal Raft histories, and a broken
election rule is still caught."""

from __future__ import annotations

import msgspec
import pytest

from orion.raft import core as raft_core
from orion.raft.messages import RequestVote
from orion.sim.invariants import InvariantViolation
from orion.sim.raft_cluster import random_run


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
