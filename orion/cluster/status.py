"""Status views of one node: its Raft state, and every member as this node sees it.

Pure functions over the core, the FSM and the gossip mirror; the Raft actor serves them to
read queries (``orion raft``, ``orion nodes``).
"""

from __future__ import annotations

from orion.api.protocol import UNKNOWN, NodeInfo, RaftInfo, Suffrage
from orion.cluster.mirror import MemberMirror
from orion.fsm.state import ClusterState
from orion.model import GONE_STATUSES
from orion.raft.core import RaftCore
from orion.raft.types import RaftRole


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
            )
        )
    return infos
