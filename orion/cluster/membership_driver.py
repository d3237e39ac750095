"""The leader's hand on the Raft configuration: it asks the membership policy
(``orion.cluster.membership.next_change``) what gossip's view calls for, and makes that change.

One change at a time: none is made while the last one is appended but not committed (Raft
changes membership one server at a time). Pure: time comes in as an argument.
"""

from __future__ import annotations

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
            membership=core.membership,
            members=members,
            match_index=core.match_index,
            commit_index=core.commit_index,
            now=now,
            max_voters=self.max_voters,
            remove_after=self.remove_after,
            max_members=self.max_members,
        )
        if change is None:
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
