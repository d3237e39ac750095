"""A stand-in for the Raft actor of a one-node cluster, around a real ClusterState.

It speaks the Raft actor's message contract (``Propose`` and ``Read``, answered through their
callbacks with an ``Outcome``) and commits every proposal at once, in order, so the actors and
API edges above it can be tested with the real state machine and without consensus. Results
of commands are turned into outcomes by the Raft actor's own mapping (``outcome_of``).
"""

from __future__ import annotations

from typing import Any

import pykka

from orion.actors.messages import Propose, Read, outcome_of
from orion.actors.state_view import StateView, run_query
from orion.api.protocol import NodeInfo, RaftInfo
from orion.fsm.commands import Command, decode_command, encode_command
from orion.fsm.state import ClusterState
from orion.raft.types import RaftRole


class FsmRaft(pykka.ThreadingActor):
    def __init__(self, node_id: str = "node1") -> None:
        super().__init__()
        self.node_id = node_id
        self.fsm = ClusterState()
        self.leader = True
        self.committed: list[Command] = []  # every command applied, in order

    # -- the message contract of the Raft actor ---------------------------------------------

    def on_receive(self, message: Any) -> Any:
        match message:
            case Propose(data, callback, _):
                result = self._apply(data)
                if callback is not None:
                    callback(outcome_of(result))
            case Read(query, callback, _, _):
                callback(run_query(query, StateView(self)))
        return None

    # -- what a StateView reads (orion.actors.state_view.ViewSource) ---------------------------

    def status(self) -> RaftInfo:
        index = self.fsm.applied_index
        return RaftInfo(
            node_id=self.node_id,
            role=RaftRole.LEADER if self.leader else RaftRole.FOLLOWER,
            term=1,
            leader_id=self.node_id if self.leader else None,
            commit_index=index,
            applied_index=index,
            last_index=index,
            voters=[self.node_id],
        )

    def node_infos(self) -> list[NodeInfo]:
        return [NodeInfo(id=record.id, status=record.status, meta=record.meta) for record in self.fsm.nodes()]

    def gossip_seeds(self) -> list[str]:
        return []

    @property
    def is_leader(self) -> bool:
        return self.leader

    # -- for tests, called through a proxy (on the actor's thread) ------------------------------

    def commit(self, command: Command) -> Any:
        """Apply ``command`` as the next entry; the FSM's result."""
        return self._apply(encode_command(command))

    def set_leader(self, leader: bool) -> None:
        self.leader = leader

    def tasks(self) -> list[Any]:
        return self.fsm.tasks()

    def commands(self) -> list[Command]:
        return list(self.committed)

    def _apply(self, data: bytes) -> Any:
        self.committed.append(decode_command(data))
        return self.fsm.apply(self.fsm.applied_index + 1, data)
