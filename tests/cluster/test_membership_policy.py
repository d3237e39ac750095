import pytest

from orion.cluster.membership import AddNonVoter, MemberStatus, Promote, Remove, UpdateAddress, next_change
from orion.raft.types import Membership


def decide(
    membership, members, match=None, commit=100, now=100.0, max_voters=5, remove_after=30.0, max_members=None
):
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
        max_members=max_members,
    )


def alive(port: int, since: float = 0.0) -> MemberStatus:
    return MemberStatus("alive", since, f"a:{port}")


def test_gossip_joined_node_is_added_as_non_voter():
    membership = Membership(voters={"n1": "127.0.0.1:1"})
    change = decide(membership, {"n2": alive(2)})
    assert change == AddNonVoter("n2", "a:2")


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


# ----- identity: replaced members, strangers, re-addressed members ----------------------------

CLUSTER = "c1" * 16
OTHER = "c2" * 16


def member(port: int, incarnation: str = "", status: str = "alive", cluster: str = CLUSTER) -> MemberStatus:
    return MemberStatus(status, 0.0, f"127.0.0.1:{port}", incarnation, cluster)


def config(
    voters: str, non_voters: str = "", incarnations: bool = True, cluster: str = CLUSTER
) -> Membership:
    """Members named by their number: "123" -> n1, n2, n3 at 127.0.0.1:<number>, incarnation i<number>."""
    address = {f"n{c}": f"127.0.0.1:{c}" for c in voters + non_voters}
    return Membership(
        voters={f"n{c}": address[f"n{c}"] for c in voters},
        non_voters={f"n{c}": address[f"n{c}"] for c in non_voters},
        cluster_id=cluster,
        incarnations={n: f"i{n[1:]}" for n in address} if incarnations else {},
    )


IDENTITY_CASES = {
    "wiped voter in a 3-voter cluster is replaced": (
        config("123"),
        {"n2": member(2, "i2"), "n3": member(3, "new3")},
        Remove("n3", "replaced: data dir recreated (incarnation i3 -> new3)"),
    ),
    "wiped follower of a 2-voter cluster is replaced: the leader alone commits the removal": (
        config("12"),
        {"n2": member(2, "new2")},
        Remove("n2", "replaced: data dir recreated (incarnation i2 -> new2)"),
    ),
    "wiped voter whose removal would break quorum is not removed": (
        config("123"),
        {"n2": member(2, "new2"), "n3": member(3, "i3", status="dead")},
        None,
    ),
    "a voter advertising another cluster is not counted in a removal's quorum": (
        # Removing dead n3 leaves {n1, n2}; "n2" answers from another cluster: no majority.
        config("123"),
        {"n2": member(2, "i2", cluster=OTHER), "n3": member(3, "i3", status="dead")},
        None,
    ),
    "5 voters, one wiped and one dead: the wiped one is replaced first": (
        config("12345"),
        {
            "n2": member(2, "new2"),
            "n3": member(3, "i3", status="dead"),
            "n4": member(4, "i4"),
            "n5": member(5, "i5"),
        },
        Remove("n2", "replaced: data dir recreated (incarnation i2 -> new2)"),
    ),
    "wiped non-voter is replaced whatever the quorum": (
        config("12", "3"),
        {"n2": member(2, "i2", status="dead"), "n3": member(3, "new3")},
        Remove("n3", "replaced: data dir recreated (incarnation i3 -> new3)"),
    ),
    "wiped member comes back as a non-voter carrying its new incarnation": (
        config("12"),
        {"n2": member(2, "i2"), "n3": member(3, "new3")},
        AddNonVoter("n3", "127.0.0.1:3", "new3"),
    ),
    "a suspect new life is not acted on until gossip sees it alive": (
        config("123"),
        {"n2": member(2, "i2"), "n3": member(3, "new3", status="suspect")},
        None,
    ),
    "node from another cluster is never added": (
        config("12"),
        {"n2": member(2, "i2"), "n7": member(7, "i7", cluster=OTHER)},
        None,
    ),
    "node from another cluster with a member's id neither replaces nor re-addresses it": (
        config("123"),
        {"n2": member(2, "i2"), "n3": MemberStatus("alive", 0.0, "10.0.0.3:3", "x3", OTHER)},
        None,
    ),
    "a joining node that has no cluster id yet is added": (
        config("12"),
        {"n2": member(2, "i2"), "n4": member(4, "i4", cluster="")},
        AddNonVoter("n4", "127.0.0.1:4", "i4"),
    ),
    "address change is re-learned": (
        config("123"),
        {"n2": member(2, "i2"), "n3": MemberStatus("alive", 0.0, "10.0.0.3:7100", "i3", CLUSTER)},
        UpdateAddress("n3", "10.0.0.3:7100"),
    ),
    "address change of a member with no recorded incarnation is re-learned": (
        config("123", incarnations=False),
        {"n2": member(2), "n3": MemberStatus("alive", 0.0, "10.0.0.3:7100", "i3", CLUSTER)},
        UpdateAddress("n3", "10.0.0.3:7100"),
    ),
    "address change comes before removing a dead voter, whose removal needs the moved one": (
        config("123"),
        {"n2": MemberStatus("alive", 0.0, "10.0.0.2:2", "i2", CLUSTER), "n3": member(3, "i3", status="dead")},
        UpdateAddress("n2", "10.0.0.2:2"),
    ),
    "wiped and moved: replaced, not re-addressed": (
        config("123"),
        {"n2": member(2, "i2"), "n3": MemberStatus("alive", 0.0, "10.0.0.3:3", "new3", CLUSTER)},
        Remove("n3", "replaced: data dir recreated (incarnation i3 -> new3)"),
    ),
    "legacy configuration without incarnations is left alone": (
        config("123", incarnations=False, cluster=""),
        {"n2": member(2, "i2"), "n3": member(3, "anything")},
        None,
    ),
    "a member advertising no incarnation is taken at its word": (
        config("123"),
        {"n2": member(2, "i2"), "n3": member(3, "")},
        None,
    ),
    "a caught-up non-voter answering from another cluster is not promoted": (
        config("12", "3"),
        {"n2": member(2, "i2"), "n3": member(3, "i3", cluster=OTHER)},
        None,
    ),
    "caught-up non-voter with its recorded incarnation is promoted": (
        config("12", "3"),
        {"n2": member(2, "i2"), "n3": member(3, "i3")},
        Promote("n3"),
    ),
}


@pytest.mark.parametrize("case", IDENTITY_CASES, ids=list(IDENTITY_CASES))
def test_identity_rules(case: str) -> None:
    membership, members, expected = IDENTITY_CASES[case]
    assert decide(membership, members, match={"n3": 100}, now=100.0) == expected


def test_wiped_voter_goes_out_comes_back_as_non_voter_and_is_promoted() -> None:
    members = {"n2": member(2, "i2"), "n3": member(3, "new3")}
    step = config("123")
    assert decide(step, members) == Remove("n3", "replaced: data dir recreated (incarnation i3 -> new3)")
    step = Membership(
        voters={"n1": "127.0.0.1:1", "n2": "127.0.0.1:2"},
        cluster_id=CLUSTER,
        incarnations={"n1": "i1", "n2": "i2"},
    )
    assert decide(step, members) == AddNonVoter("n3", "127.0.0.1:3", "new3")
    step = Membership(
        voters=dict(step.voters),
        non_voters={"n3": "127.0.0.1:3"},
        cluster_id=CLUSTER,
        incarnations={**step.incarnations, "n3": "new3"},
    )
    assert decide(step, members, match={"n3": 10}) is None  # still catching up (by snapshot)
    assert decide(step, members, match={"n3": 100}) == Promote("n3")


def test_blocked_replacement_happens_once_the_dead_voter_is_back() -> None:
    membership = config("123")
    members = {"n2": member(2, "new2"), "n3": member(3, "i3", status="dead")}
    assert decide(membership, members, now=1000.0) is None
    members["n3"] = member(3, "i3")
    assert decide(membership, members, now=1000.0) == Remove(
        "n2", "replaced: data dir recreated (incarnation i2 -> new2)"
    )


def test_dead_voters_are_not_pruned_below_the_floor_unless_a_member_takes_the_seat():
    """Nemesis seed 9: with partitions and a short grace, the leader pruned two dead voters
    and was left the only holder of the data; wiping it then lost the cluster."""
    three = Membership(voters={"n1": "a:1", "n2": "a:2", "n3": "a:3"})
    members = {"n2": alive(2), "n3": MemberStatus("dead", 0.0, "a:3")}
    assert decide(three, members, now=500.0) is None  # 3 voters: the dead one keeps its seat
    five = Membership(voters={"n1": "a:1", "n2": "a:2", "n3": "a:3", "n4": "a:4", "n5": "a:5"})
    members5 = {**members, "n4": alive(4), "n5": alive(5)}
    assert decide(five, members5, now=500.0) == Remove("n3", "gossip reports it dead for 500s")
    with_spare = Membership(voters=dict(three.voters), non_voters={"n6": "a:6"})
    members6 = {**members, "n6": alive(6)}
    change = decide(with_spare, members6, now=500.0, max_voters=3, match={"n6": 100})
    assert change == Remove("n3", "gossip reports it dead for 500s")


# ------------------------------------------------------------------ max_members: the workers


def _full(n: int, voters: int = 3) -> Membership:
    """n1..n<voters> voters, the rest of n1..n<n> non-voters."""
    ids = [f"n{i}" for i in range(1, n + 1)]
    return Membership(
        voters={i: f"a:{i[1:]}" for i in ids[:voters]}, non_voters={i: f"a:{i[1:]}" for i in ids[voters:]}
    )


def test_nodes_beyond_max_members_are_not_added_and_stay_workers() -> None:
    membership = _full(7)
    members = {f"n{i}": alive(i) for i in range(2, 12)}
    match = {f"n{i}": 100 for i in range(2, 8)}
    assert decide(membership, members, match=match, max_voters=3, max_members=7) is None
    # Below the cap the lowest id joins first, as without one.
    six = _full(6)
    assert decide(six, members, match=match, max_voters=3, max_members=7) == AddNonVoter("n10", "a:10")


def test_without_a_cap_every_live_node_joins_as_before() -> None:
    members = {f"n{i}": alive(i) for i in range(2, 12)}
    assert decide(_full(7), members, max_voters=3) == AddNonVoter("n10", "a:10")


def test_a_dead_members_seat_goes_to_a_live_worker_after_the_grace() -> None:
    membership = _full(7)
    members = {f"n{i}": alive(i) for i in range(2, 10)}
    members["n5"] = MemberStatus("dead", 50.0, "a:5")  # a non-voter
    kwargs = {"max_voters": 3, "max_members": 7, "match": {f"n{i}": 100 for i in range(2, 8)}}
    assert decide(membership, members, now=60.0, **kwargs) is None  # its seat is held through the grace
    assert decide(membership, members, now=90.0, **kwargs) == Remove("n5", "gossip reports it dead for 40s")
    after = Membership(voters=dict(membership.voters), non_voters={**membership.non_voters})
    del after.non_voters["n5"]
    assert decide(after, members, now=90.0, **kwargs) == AddNonVoter("n8", "a:8")


def test_a_dead_voters_seat_goes_to_a_standby_and_the_freed_seat_to_a_worker() -> None:
    membership = _full(7)
    members = {f"n{i}": alive(i) for i in range(2, 10)}
    members["n2"] = MemberStatus("dead", 0.0, "a:2")
    kwargs = {"max_voters": 3, "max_members": 7, "match": {f"n{i}": 100 for i in range(2, 8)}}
    assert decide(membership, members, now=90.0, **kwargs) == Remove("n2", "gossip reports it dead for 90s")
    voters = {"n1": "a:1", "n3": "a:3"}
    standbys = {f"n{i}": f"a:{i}" for i in range(4, 8)}
    # A free voter seat and a free member seat: the worker joins first (rule 4 before 5), then
    # the most caught-up standby is promoted.
    after = Membership(voters=voters, non_voters=standbys)
    assert decide(after, members, now=90.0, **kwargs) == AddNonVoter("n8", "a:8")
    joined = Membership(voters=voters, non_voters={**standbys, "n8": "a:8"})
    assert decide(joined, members, now=90.0, **kwargs) == Promote("n7")


def test_a_lowered_cap_removes_nobody() -> None:
    members = {f"n{i}": alive(i) for i in range(2, 8)}
    match = {f"n{i}": 100 for i in range(2, 8)}
    assert decide(_full(7), members, match=match, max_voters=3, max_members=4) is None


def test_workers_do_not_delay_a_replaced_members_removal() -> None:
    membership = Membership(
        voters={"n1": "127.0.0.1:1", "n2": "127.0.0.1:2", "n3": "127.0.0.1:3"},
        cluster_id=CLUSTER,
        incarnations={"n1": "i1", "n2": "i2", "n3": "i3"},
    )
    members = {"n2": member(2, "i2"), "n3": member(3, "new3"), "n4": member(4, "i4"), "n5": member(5, "i5")}
    change = decide(membership, members, max_voters=3, max_members=3)
    assert change == Remove("n3", "replaced: data dir recreated (incarnation i3 -> new3)")
    # Its seat is free again: the lowest id among the live non-members takes it (here n3's new life).
    after = Membership(
        voters={"n1": "127.0.0.1:1", "n2": "127.0.0.1:2"},
        cluster_id=CLUSTER,
        incarnations={"n1": "i1", "n2": "i2"},
    )
    assert decide(after, members, max_voters=3, max_members=3) == AddNonVoter("n3", "127.0.0.1:3", "new3")


def test_a_dead_voter_at_the_floor_with_the_cap_full_of_voters_is_still_replaced_by_a_worker() -> None:
    """max_members == max_voters == 3: the floor keeps a dead voter until a caught-up standby
    can take its seat, and a standby needs a seat: the dead voter's, once the grace passed."""
    three = _full(3)
    members = {"n2": alive(2), "n3": MemberStatus("dead", 50.0, "a:3"), "n4": alive(4), "n5": alive(5)}
    kwargs = {"max_voters": 3, "max_members": 3}
    assert decide(three, members, now=60.0, **kwargs) is None  # in its grace: it holds its seat
    assert decide(three, members, now=90.0, **kwargs) == AddNonVoter("n4", "a:4")
    standby = Membership(voters=dict(three.voters), non_voters={"n4": "a:4"})
    assert decide(standby, members, now=90.0, match={"n4": 10}, **kwargs) is None  # catching up
    assert decide(standby, members, now=90.0, match={"n4": 100}, **kwargs) == Remove(
        "n3", "gossip reports it dead for 40s"
    )
    after = Membership(voters={"n1": "a:1", "n2": "a:2"}, non_voters={"n4": "a:4"})
    assert decide(after, members, now=90.0, match={"n4": 100}, **kwargs) == Promote("n4")
