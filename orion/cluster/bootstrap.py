"""Bootstrap grace: an empty node configured to bootstrap founds a new cluster only if nobody
spoke for an existing one while it listened. A bootstrap node whose data dir was lost must
rejoin its cluster, never fork it. Pure: time comes in as an argument.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from loguru import logger

from orion.raft.core import RaftCore
from orion.raft.types import Membership


class BootstrapGrace:
    """``heard()``: the clusters other nodes spoke for so far (cluster id -> a node speaking for it)."""

    def __init__(
        self,
        core: RaftCore,
        heard: Callable[[], dict[str, str]],
        *,
        node_id: str,
        raft_address: str,
        incarnation: str,
    ) -> None:
        self.core = core
        self._heard = heard
        self.node_id = node_id
        self.raft_address = raft_address
        self.incarnation = incarnation
        self._found_at: float | None = None  # when this node may found a cluster; None: it won't

    def start(self, now: float, grace: float) -> None:
        """Listen for ``grace`` seconds from ``now``, then found a cluster if still alone."""
        self._found_at = now + grace
        logger.info(
            "empty data dir with bootstrap = true: listening {:.1f}s for an existing cluster first", grace
        )
        self.step(now)

    @property
    def pending(self) -> bool:
        """Still listening: ``step`` must run on every tick until the grace ends."""
        return self._found_at is not None

    def step(self, now: float) -> None:
        if self._found_at is None:
            return
        core = self.core
        heard = self._heard()
        if heard or core.term > 0 or core.last_index > 0:
            cluster, via = next(iter(heard.items()), (core.membership.cluster_id, core.leader_id))
            logger.warning(
                "not bootstrapping: cluster {} exists (heard from {}); this node joins it as a new "
                "member (incarnation {}) once the leader adds it",
                cluster or "?",
                via or "?",
                self.incarnation,
            )
            self._found_at = None
            return
        if now < self._found_at:
            return
        self._found_at = None
        cluster_id = uuid.uuid4().hex
        membership = Membership(
            voters={self.node_id: self.raft_address},
            cluster_id=cluster_id,
            incarnations={self.node_id: self.incarnation},
        )
        core.bootstrap(membership)
        logger.info("bootstrapping a new cluster {} with {} as its only voter", cluster_id, self.node_id)
