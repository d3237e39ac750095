"""RaftConfig validation at its boundaries, and what NotLeaderError tells the caller."""

from __future__ import annotations

import pytest

from orion.raft.core import NotLeaderError, RaftConfig

AT_LEAST_ONE = ["election_ticks", "heartbeat_ticks", "max_append_entries", "max_inflight"]
NOT_NEGATIVE = ["max_size_per_msg", "max_inflight_bytes", "trailing_entries", "trailing_bytes"]


@pytest.mark.parametrize("field", AT_LEAST_ONE)
def test_counts_accept_one_and_refuse_zero_naming_the_field(field: str) -> None:
    assert getattr(RaftConfig(**{field: 1}), field) == 1
    with pytest.raises(ValueError, match=f"RaftConfig.{field} must be at least 1, got 0"):
        RaftConfig(**{field: 0})


@pytest.mark.parametrize("field", NOT_NEGATIVE)
def test_sizes_accept_zero_and_refuse_negative_naming_the_field(field: str) -> None:
    assert getattr(RaftConfig(**{field: 0}), field) == 0
    with pytest.raises(ValueError, match=f"RaftConfig.{field} must not be negative, got -1"):
        RaftConfig(**{field: -1})


def test_not_leader_error_names_the_leader_or_says_unknown() -> None:
    known = NotLeaderError("n2")
    assert known.leader_id == "n2"
    assert str(known) == "not the leader (leader: n2)"
    assert str(NotLeaderError()) == "not the leader (leader: unknown)"
