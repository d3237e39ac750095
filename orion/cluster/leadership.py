"""This node's view of who leads: when that changes, since when it leads, when it last heard its leader.

Pure bookkeeping over a Raft core: time comes in as an argument (monotonic seconds), ticks
are counted by ``on_tick``.
"""

from __future__ import annotations

from orion.raft.core import RaftCore
from orion.raft.types import RaftRole


class Leadership:
    def __init__(self, now: float) -> None:
        self.ticks = 0  # ticks seen by this node
        self.is_leader = False
        self.leader_id = ""
        self.led_since_tick = 0  # the tick this node last became leader
        self.leading_since = 0.0  # when this node last became leader
        # When this node last heard its leader. Counted from the start, so a node that never
        # hears one is silent from then on.
        self._heard = now

    def on_tick(self, core: RaftCore, now: float) -> None:
        self.ticks += 1
        if core.role == RaftRole.LEADER:
            self._heard = now  # a leader is its own contact (CheckQuorum deposes a cut-off one)

    def on_send(self, core: RaftCore, dst: str, now: float) -> None:
        """A frame leaves for ``dst``. A follower sends to its leader only in answer to the
        leader's own messages (appends, heartbeats, snapshot chunks): answering it means
        having heard from it."""
        if dst == core.leader_id and core.role != RaftRole.LEADER:
            self._heard = now

    def on_receive(self, core: RaftCore, now: float) -> None:
        """A Raft frame was stepped: if it came from the leader (its election timer restarted),
        the leader was heard, whether or not it asked for an answer."""
        if core.leader_silence_ticks == 0:
            self._heard = now

    def last_heard(self, core: RaftCore, now: float) -> float:
        """When this node last heard its leader: ``now`` while it leads."""
        return now if core.role == RaftRole.LEADER else self._heard

    def observe(self, core: RaftCore, now: float) -> bool:
        """Take note of the core's role and leader; True when either changed."""
        is_leader = core.role == RaftRole.LEADER
        if is_leader == self.is_leader and core.leader_id == self.leader_id:
            return False
        if is_leader and not self.is_leader:
            self.led_since_tick = self.ticks
            self.leading_since = now
        self.is_leader = is_leader
        self.leader_id = core.leader_id
        return True

    @property
    def ticks_leading(self) -> int:
        """Ticks since this node last became leader (meaningful while it leads)."""
        return self.ticks - self.led_since_tick

    def trusted_since(self, since: float) -> float:
        """Since when a member's gossip status counts, for decisions this leader makes: not
        before it began to lead. A node that was cut off and just won an election may hold
        stale "dead" reports of healthy nodes; their grace periods start again with its reign,
        while gossip catches up."""
        return max(since, self.leading_since)
