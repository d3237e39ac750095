"""When a node cut off from the leader stops its tasks (orion/cluster/leader_contact.py)."""

from __future__ import annotations

import pytest

from orion.cluster.leader_contact import LeaderContact, disconnect_verdict

STOP_AFTER = 30.0


def contact(
    last_heard: float = 0.0, members: tuple[int, int] = (3, 3), voters: tuple[int, int] | None = None
) -> LeaderContact:
    """``members`` and ``voters`` as (reachable, total); voters default to the members."""
    voters = voters or members
    return LeaderContact(
        last_heard=last_heard,
        leader_id="",
        members=members[1],
        members_reachable=members[0],
        voters=voters[1],
        voters_reachable=voters[0],
    )


def test_a_node_that_hears_its_leader_keeps_its_tasks_and_says_nothing() -> None:
    verdict = disconnect_verdict(contact(last_heard=100.0, members=(1, 3)), now=120.0, stop_after=STOP_AFTER)
    assert (verdict.stop, verdict.silent_for, verdict.reason) == (False, 20.0, "")
    # Exactly the limit is still within it; a clock that reads behind last_heard is no silence.
    assert not disconnect_verdict(contact(100.0, (1, 3)), now=130.0, stop_after=STOP_AFTER).stop
    assert disconnect_verdict(contact(100.0, (1, 3)), now=90.0, stop_after=STOP_AFTER).silent_for == 0.0


def test_a_node_cut_off_on_the_minority_side_stops_its_tasks() -> None:
    verdict = disconnect_verdict(contact(last_heard=0.0, members=(1, 3)), now=45.2, stop_after=STOP_AFTER)
    assert verdict.stop
    assert verdict.reason == "no contact with the leader for 45s (1 of 3 members reachable)"


def test_zero_turns_it_off() -> None:
    verdict = disconnect_verdict(contact(last_heard=0.0, members=(1, 3)), now=86400.0, stop_after=0.0)
    assert (verdict.stop, verdict.reason) == (False, "")


def test_a_cluster_without_a_leader_whose_nodes_see_each_other_keeps_running() -> None:
    # Quorum lost in Raft (e.g. the Raft ports blocked, an election that cannot finish) while
    # gossip still reaches everyone: nobody can reschedule these tasks, so stopping them would
    # only turn a control-plane outage into a full one.
    verdict = disconnect_verdict(contact(last_heard=0.0, members=(3, 3)), now=300.0, stop_after=STOP_AFTER)
    assert not verdict.stop
    assert verdict.reason.startswith("no contact with the leader for 300s, but 3 of 3 members reachable")


@pytest.mark.parametrize(
    ("members", "voters", "stop"),
    [
        # Half the voters reachable: no leader elsewhere can hold a quorum (4 voters split 2/2,
        # 2 voters split 1/1), whatever the member count says.
        ((2, 4), (2, 4), False),
        ((1, 2), (1, 2), False),
        # A non-voter that still reaches 3 of the 5 voters, though few of 20 members.
        ((4, 20), (3, 5), False),
        # A large fleet that lost 3 of its 5 voters: 7 of 10 nodes still see each other.
        ((7, 10), (2, 5), False),
        # The lone survivor of a 3-node cluster cannot tell "the others died" from "I am cut
        # off": it stops, as does the minority side of a 5-node split.
        ((1, 3), (1, 3), True),
        ((2, 5), (2, 5), True),
        # Half the members but not half the voters (the voters sit on the other side).
        ((3, 6), (2, 5), True),
    ],
)
def test_which_side_of_a_split_stops(members: tuple[int, int], voters: tuple[int, int], stop: bool) -> None:
    verdict = disconnect_verdict(contact(0.0, members, voters), now=60.0, stop_after=STOP_AFTER)
    assert verdict.stop is stop
    assert verdict.reason  # said either way: the leader has been silent too long
