"""What the core tells the rest of the node about membership."""

from __future__ import annotations

from typing import Literal

import msgspec

from orion.model import NodeMeta, NodeStatus

EventKind = Literal["joined", "updated", "suspect", "alive", "dead", "left"]


class MemberEvent(msgspec.Struct, frozen=True):
    """joined: first seen, or back after dead/left; updated: new meta; alive: a suspicion was refuted."""

    kind: EventKind
    node_id: str
    address: str
    meta: NodeMeta
    incarnation: int


class MemberView(msgspec.Struct, frozen=True):
    id: str
    address: str
    status: NodeStatus
    incarnation: int
    meta: NodeMeta


class ForeignGossip(msgspec.Struct, frozen=True):
    """Gossip from another cluster was dropped: reported once per sender address and pair of ids.

    Two clusters sharing a key, or a wiped node that bootstrapped a cluster of its own by mistake.
    """

    address: str  # the sender's gossip address, as it names itself
    cluster_id: str  # the sender's cluster
    local_cluster_id: str  # ours, when the message was dropped
