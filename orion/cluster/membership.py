"""Which Raft configuration change the leader should make next, given what gossip sees.

Pure policy, no I/O: the Raft actor calls ``next_change`` on every tick while it leads and
performs the one change it returns (Raft changes membership one server at a time, and a new
configuration takes effect as soon as the leader appends it).

Identity. The configuration records each member's incarnation (made when its data dir was
created) and the cluster id; gossip reports the incarnation and cluster id each member advertises.
A member whose advertised incarnation differs from the recorded one lost its data dir: it is not
the voter the configuration counts on, and never counts as that voter in a quorum. A member that
advertises another (non-empty) cluster id is a stranger and is never added, re-addressed or used
to replace anyone. A configuration without incarnations (a legacy cluster) or a member that
advertises none is taken at its word: nothing is replaced.

Rules, first match wins, and why in this order:

1. ``UpdateAddress``: a member with the same incarnation is alive at another Raft address. First,
   because a voter the leader cannot reach may be needed to commit any other change: removing
   someone from a configuration whose majority includes an unreachable voter would stall, and the
   leader makes no further change until the pending one commits.
2. ``Remove`` a replaced member (incarnation changed): no grace period, since a new incarnation is
   proof the old data is gone, and until then the old entry holds a seat that cannot vote. Only
   when the remaining voters keep a live majority (the replaced one counts as not live).
3. ``Remove`` a member gossip reports dead or left for longer than ``remove_after``, under the same
   quorum rule; a voter of a configuration with ``min_voters`` voters or fewer only when a
   caught-up non-voter is there to take its seat (a replaced member's new life comes straight
   back; a dead one may never). After the
   replacements, so a freshly wiped node is not left waiting behind a grace period.
4. ``AddNonVoter`` a member gossip sees alive that the configuration does not hold (this is how a
   replaced member comes back, with its new incarnation), unless it belongs to another cluster,
   and only while the configuration holds fewer than ``max_members`` members (lowest id first).
   Nodes beyond the cap are *workers*: they replicate no log and watch a member for what concerns
   them (``orion.cluster.feed_host``), so the leader's fan-out stays that of ``max_members``
   members however many nodes run. A member removed by rule 2 or 3 frees a seat, and the next
   tick fills it from the live workers: a dead member's seat goes to a live node once
   ``remove_after`` has passed, a replaced one's at once. A member gone for longer than
   ``remove_after`` holds no seat even while rule 3 must keep it (the voter floor waits for a
   caught-up standby to take its seat): with the cap full of voters (``max_members`` equal to
   ``max_voters``), that standby could otherwise never join, and the dead voter never leave.
   Nothing is removed to honour a lowered cap: members leave only by the rules above.
5. ``Promote`` the most caught-up healthy non-voter while voter seats are free.

The quorum rule: a removal is made only if the voters left after it hold a live majority (the
leader is live; others are live if gossip sees them alive or suspect with the recorded
incarnation). The new configuration takes effect when appended, so that majority is what commits
the removal. In a 2-voter cluster whose follower was wiped, the leader alone is that majority: it
removes the old entry and adds the node back. When the remaining voters have no live majority
(say a wiped voter and a dead voter out of three), nothing is removed: the old configuration
could not commit anything either, the wiped node stays outside (its frames are dropped by the
incarnation check) and the change is made once enough voters are back. A wiped node that was the
leader of a 2-voter cluster cannot be replaced by this policy at all: the survivor cannot win an
election without it, and an operator must intervene.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from orion.model import GONE_STATUSES, LIVE_STATUSES, NodeStatus
from orion.raft.types import Membership


@dataclass(frozen=True, slots=True)
class MemberStatus:
    """A member as the local gossip sees it: status, since when, its Raft address, and the
    incarnation and cluster id it advertises ("" = not advertised)."""

    status: str  # a NodeStatus
    since: float
    raft_address: str
    incarnation: str = ""
    cluster_id: str = ""


@dataclass(frozen=True, slots=True)
class AddNonVoter:
    node_id: str
    address: str
    incarnation: str = ""


@dataclass(frozen=True, slots=True)
class Promote:
    node_id: str


@dataclass(frozen=True, slots=True)
class Remove:
    node_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class UpdateAddress:
    node_id: str
    address: str


Change = AddNonVoter | Promote | Remove | UpdateAddress


def quorum(voters: int) -> int:
    return voters // 2 + 1


def is_stranger(member: MemberStatus, membership: Membership) -> bool:
    """It advertises a cluster id, and not ours."""
    return bool(member.cluster_id and membership.cluster_id and member.cluster_id != membership.cluster_id)


def is_replaced(node_id: str, member: MemberStatus, membership: Membership) -> bool:
    """It advertises an incarnation other than the one the configuration records for it."""
    recorded = membership.incarnations.get(node_id, "")
    return bool(recorded and member.incarnation and member.incarnation != recorded)


def is_same_life(node_id: str, member: MemberStatus, membership: Membership) -> bool:
    """Nothing says it is anyone but the member recorded: same incarnation, or none recorded."""
    if is_stranger(member, membership):
        return False
    recorded = membership.incarnations.get(node_id, "")
    return not recorded or member.incarnation == recorded


def next_change(
    *,
    leader_id: str,
    membership: Membership,
    members: Mapping[str, MemberStatus],
    match_index: Callable[[str], int],
    commit_index: int,
    now: float,
    max_voters: int,
    remove_after: float,
    catch_up_lag: int = 64,
    min_voters: int = 3,
    max_members: int | None = None,
) -> Change | None:
    """The change to make next, or None. ``max_members`` None: no cap (every live node joins)."""

    def live(node_id: str) -> bool:
        if node_id == leader_id:
            return True
        member = members.get(node_id)
        return (
            member is not None
            and member.status in LIVE_STATUSES
            and not is_replaced(node_id, member, membership)
            and not is_stranger(member, membership)
        )

    def keeps_quorum(node_id: str) -> bool:
        if node_id not in membership.voters:
            return True
        remaining = [v for v in membership.voters if v != node_id]
        return sum(1 for v in remaining if live(v)) >= quorum(len(remaining))

    known = [(node_id, members[node_id]) for node_id in membership.all_ids() if node_id in members]

    # 1. A member alive at a new Raft address, same life: re-learn the address.
    for node_id, member in known:
        current = membership.address_of(node_id)
        if (
            node_id != leader_id
            and member.status == NodeStatus.ALIVE
            and member.raft_address
            and member.raft_address != current
            and is_same_life(node_id, member, membership)
        ):
            return UpdateAddress(node_id, member.raft_address)

    # 2. A member back with a new incarnation lost its data: its old entry leaves at once.
    for node_id, member in known:
        if (
            node_id != leader_id
            and member.status == NodeStatus.ALIVE
            and is_replaced(node_id, member, membership)
            and not is_stranger(member, membership)
            and keeps_quorum(node_id)
        ):
            old = membership.incarnations[node_id]
            return Remove(
                node_id, f"replaced: data dir recreated (incarnation {old} -> {member.incarnation})"
            )

    ready_to_vote = [
        node_id
        for node_id in membership.non_voters
        if members.get(node_id) is not None
        and members[node_id].status == NodeStatus.ALIVE
        and is_same_life(node_id, members[node_id], membership)
        # match > 0: a node holding no entry is never caught up. On a young cluster
        # (commit < catch_up_lag) a brand-new node looked caught up and was promoted
        # before it had the log, so it knew the leader's id but not its address.
        and match_index(node_id) > 0
        and match_index(node_id) >= commit_index - catch_up_lag
    ]

    # 3. Members that are gone for longer than the grace period leave the configuration.
    for node_id, member in known:
        if node_id == leader_id or member.status not in GONE_STATUSES:
            continue
        if now - member.since < remove_after or not keeps_quorum(node_id):
            continue
        if node_id in membership.voters and len(membership.voters) <= min_voters and not ready_to_vote:
            # A floor, like Consul autopilot's min_quorum: pruning every dead voter could leave
            # one voter holding the data, and losing it then loses the cluster. A dead voter
            # keeps its seat until a caught-up member is there to take it.
            continue
        return Remove(node_id, f"gossip reports it {member.status} for {now - member.since:.0f}s")

    # 4. Members gossip sees alive but Raft does not know join as non-voters, while seats are free.
    # A member gone past the grace holds none: rule 3 may have had to keep it (the floor).
    expired = sum(
        1
        for node_id, member in known
        if node_id != leader_id and member.status in GONE_STATUSES and now - member.since >= remove_after
    )
    seats_free = max_members is None or len(membership.all_ids()) - expired < max_members
    for node_id in sorted(members) if seats_free else ():
        member = members[node_id]
        if (
            member.status == NodeStatus.ALIVE
            and member.raft_address
            and membership.address_of(node_id) is None
            and not is_stranger(member, membership)
        ):
            return AddNonVoter(node_id, member.raft_address, member.incarnation)

    # 5. Caught-up, healthy non-voters fill free voter seats, most caught-up first.
    if len(membership.voters) < max_voters and ready_to_vote:
        best = max(ready_to_vote, key=lambda n: (match_index(n), n))
        return Promote(best)
    return None
