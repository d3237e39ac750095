"""What every actor of a node shares: a failure brings the whole node down cleanly.

Pykka stops an actor whose ``on_receive`` raises; a node with a dead reconciler or scheduler
would look alive to gossip while doing nothing, so each actor reports its failure to the node,
which logs it and shuts down (a supervisor restarts the process; DuckDB recovers the state).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pykka
from loguru import logger

FatalHandler = Callable[[str], None]


class NodeActor(pykka.ThreadingActor):
    def __init__(self, on_fatal: FatalHandler) -> None:
        super().__init__()
        self.on_fatal = on_fatal

    def answer(self, wrap: Callable[[Any], Any]) -> Callable[[Any], None]:
        """A callback that tells this actor ``wrap(outcome)``. Once the actor has stopped (the
        node is shutting down) the answer is dropped: whoever calls back, often the Raft actor
        in the middle of its Ready loop, must never fail because a listener is gone."""
        ref = self.actor_ref

        def deliver(outcome: Any) -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(wrap(outcome))

        return deliver

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        name = type(self).__name__
        logger.opt(exception=(exception_type, exception_value, traceback)).error("{} failed", name)
        self.on_fatal(f"{name} failed: {exception_value!r}")
