"""Which Raft configuration change the leader should make next, given what gossip sees.

Pure policy, no I/O: the Raft actor calls ``next_change`` on every tick while it leads and
performs the one change it returns (Raft changes membership one server at a time).
Gossip-joined nodes enter as non-voters, are promoted once caught up while there are fewer
than ``max_voters`` voters, and members gossip reports dead or departed leave the
configuration after a grace period, but never when that would cost the cluster its quorum.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from orion.raft.types import Membership

LIVE_STATUSES = frozenset({"alive", "suspect"})  # a suspect may still refute: not gone yet
GONE_STATUSES = frozenset({"dead", "left"})


@dataclass(frozen=True, slots=True)
class MemberStatus:
    """A member as the local gossip sees it: status, since when, and its Raft address."""

    status: str
    since: float
    raft_address: str


@dataclass(frozen=True, slots=True)
class AddNonVoter:
    node_id: str
    address: str


@dataclass(frozen=True, slots=True)
class Promote:
    node_id: str


@dataclass(frozen=True, slots=True)
class Remove:
    node_id: str
    reason: str


Change = AddNonVoter | Promote | Remove


def quorum(voters: int) -> int:
    return voters // 2 + 1


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
) -> Change | None:
    def live(node_id: str) -> bool:
        if node_id == leader_id:
            return True
        member = members.get(node_id)
        return member is not None and member.status in LIVE_STATUSES

    # 1. Members that are gone for longer than the grace period leave the configuration.
    for node_id in sorted(membership.all_ids()):
        member = members.get(node_id)
        if node_id == leader_id or member is None or member.status not in GONE_STATUSES:
            continue
        if now - member.since < remove_after:
            continue
        if node_id in membership.voters:
            remaining = [v for v in membership.voters if v != node_id]
            if sum(1 for v in remaining if live(v)) < quorum(len(remaining)):
                continue  # removing it could not commit, or would leave no working majority
        return Remove(node_id, f"gossip reports it {member.status} for {now - member.since:.0f}s")

    # 2. Members gossip sees alive but Raft does not know join as non-voters.
    for node_id in sorted(members):
        member = members[node_id]
        if member.status == "alive" and membership.address_of(node_id) is None and member.raft_address:
            return AddNonVoter(node_id, member.raft_address)

    # 3. Caught-up, healthy non-voters fill free voter seats, most caught-up first.
    if len(membership.voters) < max_voters:
        candidates = [
            node_id
            for node_id in membership.non_voters
            if members.get(node_id) is not None
            and members[node_id].status == "alive"
            # match > 0: a node holding no entry is never caught up. On a young cluster
            # (commit < catch_up_lag) a brand-new node looked caught up and was promoted
            # before it had the log, so it knew the leader's id but not its address.
            and match_index(node_id) > 0
            and match_index(node_id) >= commit_index - catch_up_lag
        ]
        if candidates:
            best = max(candidates, key=lambda n: (match_index(n), n))
            return Promote(best)
    return None
