"""What the core tells the rest of the node about membership."""

from __future__ import annotations

from typing import Literal

import msgspec

from orion.model import NodeMeta

MemberStatus = Literal["alive", "suspect", "dead", "left"]
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
    status: MemberStatus
    incarnation: int
    meta: NodeMeta
