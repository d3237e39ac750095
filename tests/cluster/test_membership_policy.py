from orion.cluster.membership import AddNonVoter, MemberStatus, Promote, Remove, next_change
from orion.raft.types import Membership


def decide(membership, members, match=None, commit=100, now=100.0, max_voters=5, remove_after=30.0):
    match = match or {}
    return next_change(
        leader_id="n1",
        membership=membership,
        members=members,
        match_index=lambda n: match.get(n, 0),
        commit_index=commit,
        now=now,
        max_voters=max_voters,
        remove_after=remove_after,
    )


def alive(port: int, since: float = 0.0) -> MemberStatus:
    return MemberStatus("alive", since, f"127.0.0.1:{port}")


def test_gossip_joined_node_is_added_as_non_voter():
    membership = Membership(voters={"n1": "127.0.0.1:1"})
    change = decide(membership, {"n2": alive(2)})
    assert change == AddNonVoter("n2", "127.0.0.1:2")


def test_caught_up_non_voter_is_promoted_but_lagging_one_is_not():
    membership = Membership(voters={"n1": "a:1"}, non_voters={"n2": "a:2", "n3": "a:3"})
    members = {"n2": alive(2), "n3": alive(3)}
    assert decide(membership, members, match={"n2": 10, "n3": 99}) == Promote("n3")
    assert decide(membership, members, match={"n2": 10, "n3": 11}) is None


def test_voters_are_capped_at_max_voters():
    voters = {f"n{i}": f"a:{i}" for i in range(1, 6)}
    membership = Membership(voters=voters, non_voters={"n6": "a:6"})
    members = {n: alive(i) for i, n in enumerate(["n2", "n3", "n4", "n5", "n6"], start=2)}
    assert decide(membership, members, match={"n6": 100}) is None


def test_dead_voter_removed_after_grace_and_non_voter_promoted_next():
    membership = Membership(voters={"n1": "a:1", "n2": "a:2", "n3": "a:3"}, non_voters={"n4": "a:4"})
    members = {"n2": alive(2), "n3": MemberStatus("dead", 50.0, "a:3"), "n4": alive(4)}
    assert decide(membership, members, now=60.0, max_voters=3, match={"n4": 100}) is None
    change = decide(membership, members, now=90.0, max_voters=3, match={"n4": 100})
    assert isinstance(change, Remove) and change.node_id == "n3"
    after = Membership(voters={"n1": "a:1", "n2": "a:2"}, non_voters={"n4": "a:4"})
    assert decide(after, members, now=90.0, max_voters=3, match={"n4": 100}) == Promote("n4")


def test_removal_that_would_lose_quorum_is_not_made():
    membership = Membership(voters={"n1": "a:1", "n2": "a:2", "n3": "a:3"})
    members = {"n2": MemberStatus("dead", 0.0, "a:2"), "n3": MemberStatus("dead", 0.0, "a:3")}
    # Removing n2 leaves {n1, n3} with only n1 live: that configuration could not commit.
    assert decide(membership, members, now=1000.0) is None


def test_suspect_member_is_not_removed():
    membership = Membership(voters={"n1": "a:1", "n2": "a:2", "n3": "a:3"})
    members = {"n2": alive(2), "n3": MemberStatus("suspect", 0.0, "a:3")}
    assert decide(membership, members, now=1000.0) is None
