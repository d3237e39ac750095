"""Bounded duplicates: when a node cut off from its cluster's leader stops its own tasks.

A node the others cannot reach is declared dead by gossip, and after ``[scheduler]
reschedule_after`` the leader places its tasks elsewhere; its containers, out of reach, go on
running: the task runs twice. Nomad bounds that with ``stop_after_client_disconnect``: a client
that cannot reach the servers stops its allocations itself after that long. Orion's rule
(``stop_after_disconnect``) is the same, with one refinement for a cluster-wide outage:

- Contact with the leader comes from Raft (``LeaderContact.last_heard``, kept by the Raft
  actor): the last message from the leader this node answered, or now while it leads.
- A node silent for longer than ``stop_after`` stops its tasks only if it also reaches
  neither half of the voters nor a majority of all members (gossip says who is alive). Then it
  may be on the minority side of a partition, whose other side can elect a leader and
  reschedule its tasks. If it still reaches them, the cluster as a whole has no leader (quorum
  lost, an election under way): nobody can reschedule anything, and stopping every task on
  every node would turn a control-plane outage into a full outage, so the tasks keep running.

Reaching half of the voters is decisive: no leader elsewhere can then hold a quorum. Reaching a
majority of all members (non-voters included) is the judgment call for large fleets where a
few voters died: without it, losing three of five voters would stop every task of a hundred
nodes that still see each other. Its price: a partition that leaves a majority of the voters
on the side with fewer members lets that side reschedule the other side's tasks, which then
run twice until contact returns. A lone survivor of a small cluster (two of three nodes dead)
cannot tell that case from being cut off, and stops its tasks.

Pure: time comes in as an argument (monotonic seconds, the clock ``last_heard`` is kept in).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LeaderContact:
    """What the Raft actor knows of this node's contact with the leader and its peers."""

    last_heard: float  # monotonic s: the last leader message this node answered (now, if it leads)
    leader_id: str  # the leader it follows; "" while none is known
    members: int  # nodes in its Raft configuration, voters and non-voters
    members_reachable: int  # of them, alive to its gossip (itself included)
    voters: int
    voters_reachable: int
    cluster_id: str = ""  # its configuration's ("" before it holds one, or in a legacy cluster)

    @property
    def majority_reachable(self) -> bool:
        """It reaches half the voters (no leader elsewhere can hold a quorum) or a majority of
        all members: a silent leader then means the whole cluster has none."""
        return 2 * self.voters_reachable >= self.voters or 2 * self.members_reachable > self.members


@dataclass(frozen=True, slots=True)
class Verdict:
    """``stop``: stop this node's tasks now. ``reason`` says why (for logs and the tasks'
    history); it is also set when the leader is silent too long but the tasks keep running."""

    stop: bool
    silent_for: float  # seconds since the leader was last heard
    reason: str = ""


def disconnect_verdict(contact: LeaderContact, now: float, stop_after: float) -> Verdict:
    """Whether a node must stop its tasks for want of the leader; ``stop_after`` 0 turns it off."""
    silent = max(0.0, now - contact.last_heard)
    if stop_after <= 0 or silent <= stop_after:
        return Verdict(False, silent)
    reach = f"{contact.members_reachable} of {contact.members} members reachable"
    if contact.majority_reachable:
        return Verdict(
            False,
            silent,
            f"no contact with the leader for {silent:.0f}s, but {reach}: the cluster has no leader, "
            "nobody can place these tasks elsewhere, so they keep running",
        )
    return Verdict(True, silent, f"no contact with the leader for {silent:.0f}s ({reach})")
