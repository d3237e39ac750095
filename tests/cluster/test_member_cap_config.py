"""``[raft] max_members`` (issue 20): how many nodes the Raft configuration holds at most."""

from __future__ import annotations

from pathlib import Path

import pytest

from orion.config import ConfigError, parse_config

BASE = '[node]\nid = "n1"\n'


def _max_members(raft: str) -> int:
    return parse_config(BASE + "[raft]\n" + raft, Path("/tmp")).max_members


def test_the_default_is_seven_or_max_voters_if_that_is_more() -> None:
    assert parse_config(BASE, Path("/tmp")).max_members == 7
    assert _max_members("max_voters = 9\n") == 9


def test_an_explicit_cap_is_read() -> None:
    assert _max_members("max_members = 50\n") == 50
    assert _max_members("max_voters = 3\nmax_members = 3\n") == 3


@pytest.mark.parametrize(
    ("raft", "message"),
    [
        ("max_members = 4\n", r"raft.max_members: must be at least raft.max_voters \(5\), got 4"),
        ("max_members = 0\n", "raft.max_members"),
        ('max_members = "7"\n', "raft.max_members"),
    ],
)
def test_a_cap_below_max_voters_or_not_a_count_is_refused(raft: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(BASE + "[raft]\n" + raft, Path("/tmp"))
