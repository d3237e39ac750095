"""The leader's hand on the Raft configuration: it asks the membership policy
(``orion.cluster.membership.next_change``) what gossip's view calls for, and makes that change.

One change at a time: none is made while the last one is appended but not committed (Raft
changes membership one server at a time). Pure: time comes in as an argument.

The leader steps this every few ticks (5 a second), and on a steady cluster the answer is
"nothing" step after step. A step that found nothing to do remembers what it looked at (the
mirror's version, the configuration, the commit index, the non-voters' match indexes, since
when this node leads) and when the first grace period it saw running out ends (a member gone
for ``remove_after``); until one of them moves, the next steps return at once.
"""

from __future__ import annotations

import math

from loguru import logger

from orion.cluster.leadership import Leadership
from orion.cluster.membership import (
    AddNonVoter,
    MemberStatus,
    Promote,
    Remove,
    UpdateAddress,
    next_change,
)
from orion.cluster.mirror import MemberMirror
from orion.model import GONE_STATUSES
from orion.raft.core import RaftCore


class MembershipDriver:
    def __init__(
        self,
        core: RaftCore,
        mirror: MemberMirror,
        leadership: Leadership,
        *,
        node_id: str,
        max_voters: int,
        remove_after: float,
        max_members: int | None = None,
    ) -> None:
        self.core = core
        self.mirror = mirror
        self.leadership = leadership
        self.node_id = node_id
        self.max_voters = max_voters
        self.max_members = max_members  # None: every live node joins (nobody is a worker)
        self.remove_after = remove_after
        self.pending_index = 0  # the log index of the change in flight, 0 if none
        # What the last step that found no change looked at (None: look again), and until when
        # its answer holds if nothing of that moves (the first grace period running out).
        self._quiet_inputs: tuple[object, ...] | None = None
        self._quiet_until = 0.0

    def on_config_applied(self, index: int) -> None:
        """A configuration entry at ``index`` was applied: the change in flight (if it is the
        one, or an earlier one) is done."""
        if index >= self.pending_index:
            self.pending_index = 0

    def step(self, now: float) -> None:
        """Make the configuration change gossip's view calls for, if any (this node leads)."""
        core = self.core
        if self.pending_index and self.pending_index > core.commit_index:
            return
        membership = core.membership
        inputs = (
            self.mirror.version,
            membership,  # a new object on each change: the tuple compares it by identity first
            core.commit_index,
            self.leadership.leading_since,
            tuple(map(core.match_index, membership.non_voters)) if membership.non_voters else (),
        )
        if now < self._quiet_until and inputs == self._quiet_inputs:
            return  # nothing new since a step that found nothing to do
        self._quiet_inputs = None
        members = {
            node_id: MemberStatus(
                entry.status,
                self.leadership.trusted_since(entry.since),
                entry.meta.raft_address,
                incarnation=entry.meta.raft_incarnation,
                cluster_id=entry.meta.cluster_id,
            )
            for node_id, entry in self.mirror.entries.items()
            if node_id != self.node_id
        }
        change = next_change(
            leader_id=self.node_id,
            membership=membership,
            members=members,
            match_index=core.match_index,
            commit_index=core.commit_index,
            now=now,
            max_voters=self.max_voters,
            remove_after=self.remove_after,
            max_members=self.max_members,
        )
        if change is None:
            self._quiet_inputs = inputs
            self._quiet_until = self._grace_ends(members, now)
            return
        try:
            match change:
                case AddNonVoter(node_id, address, incarnation):
                    self.pending_index = core.add_non_voter(node_id, address, incarnation)
                    logger.info("raft: adding {} ({}) as a non-voter", node_id, address)
                case Promote(node_id):
                    self.pending_index = core.promote(node_id)
                    logger.info("raft: promoting {} to voter", node_id)
                case Remove(node_id, reason):
                    self.pending_index = core.remove(node_id)
                    logger.info("raft: removing {} from the configuration: {}", node_id, reason)
                case UpdateAddress(node_id, address):
                    self.pending_index = core.update_address(node_id, address)
                    logger.info("raft: {} moved to {}", node_id, address)
        except Exception as exc:  # a change already in flight, or leadership just lost
            logger.debug("raft: membership change {} deferred: {}", change, exc)

    def _grace_ends(self, members: dict[str, MemberStatus], now: float) -> float:
        """When the first grace period still running ends: a member gone (dead or left) for
        ``remove_after`` may leave the configuration, or no longer hold a seat (``next_change``
        rules 3 and 4). ``now`` when one ends within a rounding error of it (the next step
        looks again); infinity while none runs."""
        ends = math.inf
        remove_after = self.remove_after
        for member in members.values():
            if member.status in GONE_STATUSES and now - member.since < remove_after:
                ends = min(ends, max(now, member.since + remove_after))
        return ends
