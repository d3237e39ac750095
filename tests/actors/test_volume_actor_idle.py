"""The volume actor asks for no tick for IDLE_TICK_S while no volume is recorded on its node."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import pykka

from orion.actors.messages import Read, Tick, TickGate
from orion.actors.state_view import StateView, run_query
from orion.actors.volume_actor import IDLE_TICK_S, VolumeActor, node_volumes
from orion.fsm.state import ClusterState
from orion.testing.localcluster import wait_for

wait_until = functools.partial(wait_for, timeout=10.0, interval=0.01)


class _Source:
    def __init__(self) -> None:
        self.fsm = ClusterState()


class RaftSide(pykka.ThreadingActor):
    """Answers the volume actor's stale reads from an empty cluster state, as the Raft actor would."""

    def __init__(self) -> None:
        super().__init__()
        self.view = StateView(_Source())  # type: ignore[arg-type]

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Read):
            message.callback(run_query(message.query, self.view))
        return None


def test_no_volume_on_this_node_slows_the_checks(tmp_path: Path) -> None:
    raft = RaftSide.start()
    volumes = node_volumes("n1", [str(tmp_path)], raft, 5.0)
    actor = VolumeActor.start(raft, volumes, 5.0, lambda reason: None)
    try:
        gate = TickGate()
        assert gate.try_arm()
        asked = time.monotonic()
        actor.tell(Tick(100.0, gate))
        # The read found no volume here: the next tick is asked for IDLE_TICK_S on, not TICK_S.
        wait_until(lambda: gate.wish is not None)
        assert gate.wish is not None
        assert gate.wish[0] >= asked + IDLE_TICK_S
    finally:
        actor.stop()
        raft.stop()
