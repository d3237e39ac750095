"""A leader that stops hands leadership over first, so the cluster does not wait out an
election timeout for a new one: it asks the most caught-up voter to campaign at once
(``RaftCore.transfer_leadership``) and reports done when it no longer leads, or after
``wait`` seconds. Any other node is done at once. Pure: time comes in as an argument.
"""

from __future__ import annotations

from collections.abc import Callable

from loguru import logger

from orion.raft.core import RaftCore
from orion.raft.types import RaftRole

WAIT = 3.0  # seconds a leader waits for its successor before stopping anyway


class ShutdownHandover:
    def __init__(self, core: RaftCore, wait: float = WAIT) -> None:
        self.core = core
        self.wait = wait
        self._done: Callable[[], None] | None = None
        self._deadline = 0.0

    @property
    def pending(self) -> bool:
        return self._done is not None

    def begin(self, done: Callable[[], None], now: float) -> None:
        """Start the hand-over; ``done()`` is called once it is over (perhaps at once)."""
        self._done = done
        self._deadline = now + self.wait
        core = self.core
        if core.role == RaftRole.LEADER and len(core.membership.voters) > 1:
            logger.info("raft: handing leadership over before shutdown")
            core.transfer_leadership(None)
        else:
            self.step(now)

    def step(self, now: float) -> None:
        """Call ``done`` if the hand-over is over (this node no longer leads, or time is up)."""
        if self.core.role == RaftRole.LEADER and now < self._deadline:
            return
        done, self._done = self._done, None
        if done is not None:
            done()
