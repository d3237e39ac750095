"""Status views of one node: its Raft state, every member as this node sees it, its contact
with the leader, and where gossip may look for the cluster after a restart.

Pure functions over the core, the FSM and the gossip mirror. ``StatusViews`` gathers them
for one node; read queries see them through ``orion.actors.state_view.StateView``
(``orion raft``, ``orion nodes``, the reconciler's disconnect rule, gossip's rejoin seeds).
"""

from __future__ import annotations

from collections.abc import Callable

from orion.api.protocol import UNKNOWN, NodeInfo, RaftInfo, Suffrage
from orion.cluster.leader_contact import LeaderContact
from orion.cluster.leadership import Leadership
from orion.cluster.mirror import MemberMirror
from orion.fsm.state import ClusterState
from orion.model import GONE_STATUSES, NodeStatus
from orion.raft.core import RaftCore
from orion.raft.types import RaftRole


class StatusViews:
    """One node's status views. ``clock()``: the node's current time (monotonic seconds)."""

    def __init__(
        self,
        node_id: str,
        core: RaftCore,
        fsm: ClusterState,
        mirror: MemberMirror,
        leadership: Leadership,
        clock: Callable[[], float],
    ) -> None:
        self.node_id = node_id
        self.core = core
        self.fsm = fsm
        self.mirror = mirror
        self.leadership = leadership
        self._clock = clock

    def status(self) -> RaftInfo:
        return raft_info(self.node_id, self.core)

    def node_infos(self) -> list[NodeInfo]:
        return node_infos(self.core, self.fsm, self.mirror)

    @property
    def is_leader(self) -> bool:
        return self.core.role == RaftRole.LEADER

    def leader_contact(self) -> LeaderContact:
        last_heard = self.leadership.last_heard(self.core, self._clock())
        return leader_contact(self.node_id, self.core, self.mirror, last_heard)

    def gossip_seeds(self) -> list[str]:
        return gossip_seeds(self.node_id, self.fsm)


def raft_info(node_id: str, core: RaftCore) -> RaftInfo:
    membership = core.membership
    return RaftInfo(
        node_id=node_id,
        role=core.role,
        term=core.term,
        leader_id=core.leader_id,
        commit_index=core.commit_index,
        applied_index=core.applied_index,
        last_index=core.last_index,
        voters=sorted(membership.voters),
        non_voters=sorted(membership.non_voters),
    )


def node_infos(core: RaftCore, fsm: ClusterState, mirror: MemberMirror) -> list[NodeInfo]:
    membership = core.membership
    records = {record.meta.id: record for record in fsm.nodes()}
    leader = core.leader_id if core.role != RaftRole.LEADER else core.id
    infos = []
    for node_id in sorted({*records, *mirror.entries, *membership.all_ids()}):
        record = records.get(node_id)
        entry = mirror.get(node_id)
        meta = entry.meta if entry else (record.meta if record else None)
        status = entry.status if entry else (record.status if record else UNKNOWN)
        memory, cpu, disk = fsm.allocated(node_id)
        if node_id in membership.voters:
            suffrage = Suffrage.VOTER
        elif node_id in membership.non_voters:
            suffrage = Suffrage.NONVOTER
        else:
            suffrage = Suffrage.NONE
        role: str
        if node_id == leader:
            role = RaftRole.LEADER
        elif status in GONE_STATUSES or status == UNKNOWN:
            role = UNKNOWN  # whatever it was, nobody hears from it: it leads or follows nothing
        else:
            role = RaftRole.FOLLOWER
        infos.append(
            NodeInfo(
                id=node_id,
                address=meta.address if meta else (membership.address_of(node_id) or ""),
                status=status,
                role=role,
                suffrage=suffrage,
                meta=meta,
                allocated_memory=memory,
                allocated_cpu=cpu,
                allocated_disk=disk,
                subnet=record.subnet if record else "",
            )
        )
    return infos


def leader_contact(node_id: str, core: RaftCore, mirror: MemberMirror, last_heard: float) -> LeaderContact:
    """When this node last heard its leader and which peers gossip finds alive: what the
    reconciler needs to decide whether to stop its tasks (orion/cluster/leader_contact.py)."""
    membership = core.membership
    alive = {node for node, entry in mirror.entries.items() if entry.status == NodeStatus.ALIVE}
    alive.add(node_id)
    members = {*membership.all_ids(), node_id}
    voters = set(membership.voters)
    return LeaderContact(
        last_heard=last_heard,
        leader_id=core.leader_id,
        members=len(members),
        members_reachable=len(members & alive),
        voters=len(voters),
        voters_reachable=len(voters & alive),
        cluster_id=membership.cluster_id,
    )


def gossip_seeds(node_id: str, fsm: ClusterState) -> list[str]:
    """Gossip addresses of every other node the replicated state knows (rejoin after a restart)."""
    return [
        record.meta.gossip_address
        for record in fsm.nodes()
        if record.meta.id != node_id and record.meta.gossip_port
    ]
