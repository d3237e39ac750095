"""What a read query sees: the FSM plus the node's Raft and membership status.

Queries run on the Raft actor's thread, so they see a consistent state without copies. The
view is the only thing the API, scheduler and reconciler actors know of the Raft actor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from orion.actors.messages import Outcome
from orion.api.protocol import ErrorCode, NodeInfo, RaftInfo, Refused
from orion.cluster.leader_contact import LeaderContact
from orion.fsm.state import ClusterState


class ViewSource(Protocol):
    fsm: ClusterState

    def status(self) -> RaftInfo: ...

    def node_infos(self) -> list[NodeInfo]: ...

    def gossip_seeds(self) -> list[str]: ...

    @property
    def is_leader(self) -> bool: ...

    def leader_contact(self) -> LeaderContact: ...


class StateView:
    __slots__ = ("_source",)

    def __init__(self, source: ViewSource) -> None:
        self._source = source

    @property
    def fsm(self) -> ClusterState:
        return self._source.fsm

    def raft(self) -> RaftInfo:
        return self._source.status()

    def nodes(self) -> list[NodeInfo]:
        return self._source.node_infos()

    def gossip_seeds(self) -> list[str]:
        return self._source.gossip_seeds()

    def leader_contact(self) -> LeaderContact:
        return self._source.leader_contact()

    @property
    def is_leader(self) -> bool:
        return self._source.is_leader


def run_query(query: Callable[[StateView], Any], view: StateView) -> Outcome:
    try:
        return Outcome.success(query(view))
    except LookupError as exc:
        return Outcome.failure(ErrorCode.NOT_FOUND, str(exc.args[0]) if exc.args else "not found")
    except Refused as exc:  # e.g. an ambiguous task id prefix
        return Outcome.failure(exc.code, exc.message)
