"""The volumes that live on this node, checked against the cluster's record (every node).

On every tick it reads the volumes table (stale read: a slightly old view only delays the
check; node-local: a worker, issue 20, reads the records its feed gives it) and hands it to
``NodeVolumes.audit`` (orion/worker/node_volumes.py), which reports a volume whose data is
gone as lost and deletes the data of removed ones; the commands go through Raft. While the
cluster records no volume on this node there is nothing to check: the ticks slow to
``IDLE_TICK_S`` (a volume is first recorded here by this node itself, when a task using it
starts here; its first check may then wait that long).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pykka
from loguru import logger

from orion.actors.base import FatalHandler, NodeActor
from orion.actors.messages import Outcome, Propose, Read, Tick, TickGate
from orion.actors.state_view import StateView
from orion.fsm.commands import Command, encode_command
from orion.volumes.local import LocalDriver
from orion.volumes.spec import Volume
from orion.worker.node_volumes import Lookup, NodeVolumes, Report

TICK_S = 2.0
IDLE_TICK_S = 10.0  # between checks while no volume is recorded on this node


@dataclass(frozen=True, slots=True)
class _Volumes:
    outcome: Outcome


def _volumes_query(view: StateView) -> Any:
    return view.fsm.volumes()  # records are never mutated: the list may leave the Raft thread


class VolumeActor(NodeActor):
    def __init__(
        self, raft: pykka.ActorRef, volumes: NodeVolumes, request_timeout: float, on_fatal: FatalHandler
    ) -> None:
        super().__init__(on_fatal)
        self.raft = raft
        self.volumes = volumes
        self.timeout = request_timeout
        self._reading = False
        self._tick_gate: TickGate | None = None

    def on_receive(self, message: Any) -> Any:
        match message:
            case Tick(_, gate):
                if gate is not None:
                    gate.release()
                    self._tick_gate = gate
                if not self._reading:
                    self._reading = True
                    self.raft.tell(
                        Read(
                            _volumes_query,
                            self.answer(_Volumes),
                            stale=True,
                            timeout=self.timeout,
                            local=True,
                        )
                    )
            case _Volumes(outcome):
                self._reading = False
                if outcome.ok:
                    self.volumes.audit(outcome.value)
                    node_id = self.volumes.node_id
                    if self._tick_gate is not None and not any(v.node_id == node_id for v in outcome.value):
                        self._tick_gate.tick_at(time.monotonic() + IDLE_TICK_S)
                else:
                    logger.debug("volumes: cannot read the volumes: {}", outcome.message)
        return None


def raft_lookup(raft: pykka.ActorRef, timeout: float) -> Lookup:
    """Volume records read from this node's applied state, for a worker thread that waits.
    A stale read: the entry that placed a task here, and bound its volumes, is applied here
    before the task is started, and it works while the cluster has no leader. Node-local: on a
    worker (issue 20) the feed answer that brought the task brought its volumes' records too."""

    def lookup(names: list[str]) -> dict[str, Volume]:
        answered = threading.Event()
        box: list[Outcome] = []

        def query(view: StateView) -> dict[str, Volume]:
            found = {name: view.fsm.volume(name) for name in names}
            return {name: volume for name, volume in found.items() if volume is not None}

        def done(outcome: Outcome) -> None:
            box.append(outcome)
            answered.set()

        raft.tell(Read(query, done, stale=True, timeout=timeout, local=True))
        if not answered.wait(timeout + 1.0):
            raise TimeoutError(f"no answer within {timeout:g} s")
        if not box[0].ok:
            raise RuntimeError(box[0].message)
        result: dict[str, Volume] = box[0].value
        return result

    return lookup


def raft_report(raft: pykka.ActorRef, timeout: float) -> Report:
    def report(command: Command) -> None:
        raft.tell(Propose(encode_command(command), _log_failure, timeout=timeout))

    return report


def _log_failure(outcome: Outcome) -> None:
    if not outcome.ok:
        logger.info("volumes: report not committed: {} {}", outcome.code, outcome.message)


def node_volumes(
    node_id: str, host_paths: Sequence[str], raft: pykka.ActorRef, timeout: float
) -> NodeVolumes:
    """This node's volume support: the Docker ``local`` driver with its host path allow-list."""
    driver = LocalDriver(host_paths=host_paths)
    return NodeVolumes(node_id, driver, raft_lookup(raft, timeout), raft_report(raft, timeout), time.time)
