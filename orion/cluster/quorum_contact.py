"""Whether this leader can commit: the voters it heard from within an election timeout.

The core records when the leader last heard each follower (``RaftCore.last_contact_ticks``);
this module is the one place that turns that into "reachable", so a write is held unappended
and refused with ``no_quorum`` after one more election timeout without a quorum
(orion/cluster/request_path.py) instead of waiting out its timeout, and timeouts say why.
"""

from __future__ import annotations

from orion.cluster.leadership import Leadership
from orion.raft.core import RaftCore
from orion.raft.types import RaftRole


class QuorumContact:
    def __init__(self, core: RaftCore, leadership: Leadership, election_ticks: int) -> None:
        self.core = core
        self.leadership = leadership
        self.window = election_ticks

    def reachable_voters(self) -> list[str]:
        """Voters the leader heard from within an election timeout.

        A new leader has heard from no one yet in its term: for its first election timeout
        (as etcd's CheckQuorum waits one), a voter not yet heard from counts as reachable, so
        the writes that arrive right after an election (a leader handing over on shutdown)
        are not refused with no_quorum while a quorum has just voted for it."""
        core = self.core
        window = self.window
        new_leader = self.leadership.ticks_leading <= window
        reachable = []
        for node_id in core.membership.voters:
            ticks = core.last_contact_ticks(node_id)
            if (ticks is not None and ticks <= window) or (ticks is None and new_leader):
                reachable.append(node_id)
        return reachable

    @property
    def ticks(self) -> int:
        """This node's tick count (the leadership's), the clock ``window`` is counted on."""
        return self.leadership.ticks

    def has_quorum(self) -> bool:
        return len(self.reachable_voters()) >= len(self.core.membership.voters) // 2 + 1

    def no_quorum_message(self) -> str:
        voters = self.core.membership.voters
        unreachable = len(voters) - len(self.reachable_voters())
        return f"the cluster cannot commit writes ({unreachable} of {len(voters)} voters unreachable)"

    def timeout_message(self, kind: str) -> str:
        """Why a write or read of ``kind`` timed out, as far as this node can tell."""
        core = self.core
        if core.role == RaftRole.LEADER and not self.has_quorum():
            return self.no_quorum_message() + f"; the {kind} may or may not be applied later"
        return f"{kind} timed out; outcome unknown (leader {core.leader_id or 'unknown'})"
