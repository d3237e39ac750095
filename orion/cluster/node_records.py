"""The leader writes gossip's view of each node into the replicated state, and reschedules the
tasks of a node gone for longer than ``reschedule_after``.

A node's record changes when its status or what the scheduler places by (capacity, tags,
addresses, ports, incarnation) changes. A command of one kind proposed for a node is not
proposed again for two seconds, while it commits. Pure: time comes in as arguments (monotonic
seconds for decisions, wall clock for the records' timestamps).

The leader steps this every few ticks (5 a second); on a steady cluster every step finds the
records as gossip sees them. A step that wanted no command remembers what it looked at (the
FSM's applied index, the mirror's version, since when this node leads) and when the first
``reschedule_after`` it saw running ends; until one of them moves, the next steps return at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from orion.cluster.leadership import Leadership
from orion.cluster.mirror import MemberMirror
from orion.fsm import commands as fsm_commands
from orion.fsm.state import ClusterState
from orion.model import ACTIVE_STATES, GONE_STATUSES, NodeMeta

IN_FLIGHT = 2.0  # seconds before a node's command is proposed again
TIMEOUT = 5.0  # seconds a node's command may take to commit


class NodeRecordSync:
    """``propose(data, deadline)`` appends an encoded FSM command on this leader."""

    def __init__(
        self,
        fsm: ClusterState,
        mirror: MemberMirror,
        leadership: Leadership,
        propose: Callable[[bytes, float], None],
        *,
        reschedule_after: float,
    ) -> None:
        self.fsm = fsm
        self.mirror = mirror
        self.leadership = leadership
        self._propose = propose
        self.reschedule_after = reschedule_after
        # (node id, command type) -> until when that command is in flight. Per type: the record
        # of a node found dead must not hold its tasks' rescheduling back (Raft applies them in
        # the order proposed, the record first).
        self._in_flight: dict[tuple[str, type], float] = {}
        # What the last step that wanted no command looked at (None: look again), and until
        # when its answer holds if nothing of that moves (the first grace period running out).
        self._quiet_inputs: tuple[int, int, float] | None = None
        self._quiet_until = 0.0

    def step(self, now: float, wall_now: float) -> None:
        """Record gossip's view of the nodes in the FSM, and reschedule the tasks of dead ones."""
        fsm = self.fsm
        leadership = self.leadership
        inputs = (fsm.applied_index, self.mirror.version, leadership.leading_since)
        if now < self._quiet_until and inputs == self._quiet_inputs:
            return  # nothing new since a step that wanted no command
        wanted = False
        grace_ends = math.inf  # the first reschedule_after still running
        reschedule_after = self.reschedule_after
        known = {record.meta.id: record for record in fsm.nodes()}
        for node_id, entry in self.mirror.entries.items():
            record = known.get(node_id)
            commands: list[Any] = []
            if record is None or record.status != entry.status or capacity_changed(record.meta, entry.meta):
                commands.append(fsm_commands.UpsertNode(meta=entry.meta, status=entry.status, at=wall_now))
            if entry.status in GONE_STATUSES:
                since = leadership.trusted_since(entry.since)
                if now - since < reschedule_after:
                    grace_ends = min(grace_ends, max(now, since + reschedule_after))
                elif any(t.state in ACTIVE_STATES for t in fsm.tasks_on_node(node_id)):
                    commands.append(
                        fsm_commands.RescheduleNodeTasks(
                            node_id=node_id, reason=f"node {node_id} is {entry.status}", at=wall_now
                        )
                    )
            for command in commands:
                wanted = True
                key = (node_id, type(command))
                if self._in_flight.get(key, 0.0) > now:
                    continue
                self._in_flight[key] = now + IN_FLIGHT
                self._propose(fsm_commands.encode_command(command), now + TIMEOUT)
        # A command wanted (proposed, or in flight) is looked for again until the FSM has it.
        self._quiet_inputs = None if wanted else inputs
        self._quiet_until = grace_ends


def capacity_changed(old: NodeMeta, new: NodeMeta) -> bool:
    """Whether a node's record must be rewritten: what the scheduler and the API read of it
    changed (memory in use, the meta's version, role and cluster id alone do not count)."""
    return (
        old.memory_total != new.memory_total
        or old.cpu_total != new.cpu_total
        or old.disk_total != new.disk_total
        or old.tags != new.tags
        or old.address != new.address
        or old.api_port != new.api_port
        or old.raft_port != new.raft_port
        or old.gossip_port != new.gossip_port
        or old.http_port != new.http_port
        or old.host_ip != new.host_ip
        or old.port_space != new.port_space
        or old.raft_incarnation != new.raft_incarnation
    )
