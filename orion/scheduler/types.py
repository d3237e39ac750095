"""Values the Judge reads (a snapshot of nodes) and the value it returns (a plan)."""

from __future__ import annotations

import msgspec

from orion.model import NodeMeta, PortClaim

STRATEGIES = ("binpack", "spread")


class NodeView(msgspec.Struct, frozen=True):
    """One node as the scheduler sees it: gossip status, declared capacity, and what the FSM
    already assigns to it (the FSM, not gossip, is the truth about what is taken)."""

    id: str
    status: str  # a NodeStatus: only ALIVE takes new work
    meta: NodeMeta
    allocated_memory: int = 0  # bytes already assigned by the FSM
    allocated_cpu: float = 0.0  # cores already assigned by the FSM
    allocated_disk: int = 0  # bytes already assigned by the FSM
    eligible: bool = True  # False: it keeps its tasks but takes no new ones
    draining: bool = False  # ``orion node drain``: not eligible, and its tasks are moving away
    ports: tuple[PortClaim, ...] = ()  # host ports the FSM counts as taken on this node


class Plan(msgspec.Struct):
    """What the leader should commit: placements in the order they were decided, and for every
    task that fits nowhere, a reason that counts each node under the first filter it failed."""

    assignments: list[tuple[str, str]] = []  # (task_id, node_id)
    pending_reasons: dict[str, str] = {}  # task_id -> "0/3 nodes fit: ..."
    host_ports: dict[str, dict[str, int]] = {}  # task_id -> {"80/tcp": 8080}: the ports it was given


class ServiceLayout(msgspec.Struct, frozen=True):
    """A service's placement rules and where its tasks run (orion/scheduler/spread.py)."""

    spread: str = ""  # node tag to spread over; "" = over nodes
    max_per_node: int = 0  # 0 = no limit
    placed: dict[int, dict[str, int]] = {}  # template version -> node id -> active tasks of it there
