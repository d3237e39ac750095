"""The Raft actor's copy of what gossip says about each member: status, since when, metadata.

Gossip events arrive as values; the mirror keeps the latest per node and answers the
questions the leader asks of it (who is alive, at which Raft address, in which incarnation).
Pure bookkeeping: time comes in as an argument.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orion.model import NodeMeta, NodeStatus

# Event kinds that are not themselves a status: both say the member is alive.
_STATUS_OF_EVENT = {"joined": NodeStatus.ALIVE, "updated": NodeStatus.ALIVE}


@dataclass(slots=True)
class MirrorEntry:
    status: NodeStatus
    since: float
    meta: NodeMeta


class MemberMirror:
    def __init__(self) -> None:
        self.entries: dict[str, MirrorEntry] = {}
        # Counts the changes through set_local and apply_events: the leader's steps over the
        # mirror (membership_driver, node_records) skip their walk while it stands still.
        self.version = 0

    def get(self, node_id: str) -> MirrorEntry | None:
        return self.entries.get(node_id)

    def set_local(self, meta: NodeMeta, now: float) -> None:
        self.entries[meta.id] = MirrorEntry(NodeStatus.ALIVE, now, meta)
        self.version += 1

    def apply_events(self, events: Iterable[Any], now: float) -> None:
        """Gossip member events (``node_id``, ``kind``, ``meta``): the status keeps its
        ``since`` while it does not change, so grace periods count from the first report."""
        for event in events:
            previous = self.entries.get(event.node_id)
            status = _STATUS_OF_EVENT.get(event.kind) or NodeStatus(event.kind)
            since = previous.since if previous is not None and previous.status == status else now
            self.entries[event.node_id] = MirrorEntry(status, since, event.meta)
        self.version += 1

    def raft_address(self, node_id: str, incarnation: str = "") -> str | None:
        """Gossip's current Raft address of a member, if gossip knows this life of it."""
        entry = self.entries.get(node_id)
        if entry is None or not entry.meta.raft_port:
            return None
        if incarnation and entry.meta.raft_incarnation and entry.meta.raft_incarnation != incarnation:
            return None
        return entry.meta.raft_address

    def describe_endpoints(self, raft_addresses: Iterable[str]) -> str:
        """Where clients reach the members listening at ``raft_addresses``: their API (ZeroMQ)
        and REST endpoints as gossip announces them; a member gossip does not know yet is named
        by its Raft address."""
        by_raft = {e.meta.raft_address: e.meta for e in self.entries.values() if e.meta.raft_port}
        api: list[str] = []
        rest: list[str] = []
        unknown: list[str] = []
        for address in raft_addresses:
            meta = by_raft.get(address)
            if meta is None or not meta.api_port:
                unknown.append(address)
                continue
            api.append(meta.api_address)
            if meta.http_port:
                rest.append(f"{meta.address}:{meta.http_port}")
        parts = [f"API at {', '.join(api)}"] if api else []
        if rest:
            parts.append(f"REST at {', '.join(rest)}")
        if unknown:
            parts.append(f"Raft at {', '.join(unknown)}")
        return "; ".join(parts)

    def clusters_seen(self, own_id: str) -> dict[str, str]:
        """Cluster ids other members announce (cluster id -> one member announcing it)."""
        seen: dict[str, str] = {}
        for node_id, entry in self.entries.items():
            if node_id != own_id and entry.meta.cluster_id:
                seen.setdefault(entry.meta.cluster_id, node_id)
        return seen
