"""RaftCore behaviours pinned after the mutation run (see RELIABILITY.md, "20,000 seeds and the
mutation score"): each test states a rule a surviving mutant broke without any test noticing."""

from __future__ import annotations

import random

from orion.raft.core import FOLLOWER, RaftConfig, RaftCore
from orion.raft.memory_store import MemoryStore


def _fresh(node_id: str = "n1") -> RaftCore:
    return RaftCore(node_id, MemoryStore().load(), RaftConfig(), random.Random(7))


def test_an_empty_node_waiting_to_be_added_has_no_work_and_answers_status_questions() -> None:
    """A node that has heard from nobody has nothing to persist, send or apply: a shell that
    loops on has_ready() must go idle, and a status page may read it at once."""
    core = _fresh()
    assert not core.has_ready()
    assert (core.role, core.leader_id, core.transferee, core.term, core.vote) == (FOLLOWER, "", "", 0, "")
    assert (core.commit_index, core.applied_index, core.last_index, core.snapshot_index) == (0, 0, 0, 0)
    assert core.last_contact_ticks("n2") is None  # only a leader tracks contact
    core.tick()
    assert not core.has_ready(), "a non-member's tick must not campaign or produce work"
