"""Status views: what `orion nodes` shows for each member."""

from __future__ import annotations

import random

from orion.cluster.mirror import MemberMirror
from orion.cluster.status import node_infos, raft_info
from orion.fsm.state import ClusterState
from orion.model import NodeMeta
from orion.raft.core import RaftConfig, RaftCore
from orion.raft.memory_store import MemoryStore
from orion.raft.types import Membership


class _Event:
    def __init__(self, node_id: str, kind: str) -> None:
        self.node_id = node_id
        self.kind = kind
        self.meta = NodeMeta(id=node_id, raft_port=7100, gossip_port=7200)


def test_a_dead_member_is_not_shown_as_a_follower() -> None:
    membership = Membership(voters={"n1": "a:1", "n2": "a:2", "n3": "a:3"}, cluster_id="c")
    core = RaftCore("n1", MemoryStore().load(), RaftConfig(), random.Random(1), bootstrap=membership)
    mirror = MemberMirror()
    mirror.apply_events([_Event("n2", "alive"), _Event("n3", "dead")], now=1.0)
    roles = {
        info.id: (info.role, info.status, info.suffrage) for info in node_infos(core, ClusterState(), mirror)
    }
    assert roles["n2"] == ("follower", "alive", "voter")
    assert roles["n3"] == ("unknown", "dead", "voter")
    assert raft_info("n1", core).voters == ["n1", "n2", "n3"]


def test_the_mirror_keeps_since_while_a_status_lasts() -> None:
    mirror = MemberMirror()
    mirror.apply_events([_Event("n2", "suspect")], now=1.0)
    mirror.apply_events([_Event("n2", "suspect")], now=5.0)
    assert mirror.get("n2").since == 1.0
    mirror.apply_events([_Event("n2", "joined")], now=7.0)
    assert (mirror.get("n2").status, mirror.get("n2").since) == ("alive", 7.0)
