"""Messages between the node's actors.

These stay inside one process, so they are frozen dataclasses rather than wire Structs; some
carry a callback, which the receiving actor calls from its own thread (callbacks must be
cheap and thread-safe: a ZeroMQ reply hand-off, or another actor's ``tell``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# The answer type of Propose and Read lives with the request path; actors import it from here.
from orion.cluster.outcome import Callback as Callback
from orion.cluster.outcome import Outcome as Outcome
from orion.cluster.outcome import outcome_of as outcome_of
from orion.fsm.touched import EVERYTHING, Touched
from orion.gossip.events import MemberEvent
from orion.model import NodeMeta


class TickGate:
    """Coalesces ticks: the ticker sends a new Tick only once the last one was handled, so an
    actor that was busy (or a process that was paused) does not find a storm of ticks queued.

    An actor that knows when it next has work may ask for its next tick then (``tick_at``),
    later than its interval to sleep through idle time, or earlier when work came in."""

    __slots__ = ("_armed", "_on_wish", "wish")

    def __init__(self, on_wish: Callable[[float], None] | None = None) -> None:
        self._armed = False
        self._on_wish = on_wish  # the ticker's: wakes its thread when the wish is sooner than its sleep
        # The latest wish, a new tuple each time: the ticker applies one it has not seen (by
        # identity), so a wish made while it reads is never lost and no lock is needed.
        self.wish: tuple[float] | None = None

    def tick_at(self, when: float) -> None:
        """Ask for the next tick at monotonic ``when`` instead of one interval after the last."""
        self.wish = (when,)
        if self._on_wish is not None:
            self._on_wish(when)

    def try_arm(self) -> bool:
        if self._armed:
            return False
        self._armed = True
        return True

    def release(self) -> None:
        self._armed = False


@dataclass(frozen=True, slots=True)
class Tick:
    """Sent by the ticker; ``now`` is monotonic seconds."""

    now: float
    gate: TickGate | None = None


@dataclass(frozen=True, slots=True)
class Propose:
    """Commit an FSM command (encoded) and call back with the FSM's result."""

    data: bytes
    callback: Callback | None = None
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class Read:
    """Run ``query`` against the FSM once it is linearizable (or at once when ``stale``)."""

    query: Callable[[Any], Any]
    callback: Callback
    stale: bool = False
    timeout: float = 5.0
    # The query reads only what concerns this node (its tasks, their volumes, its own status):
    # a worker (issue 20) serves it from its fed state (after a fresh feed answer unless
    # stale), where it refuses every other read, stale or not.
    local: bool = False
    # The caller acts on what the node's task list lacks (the reconciler removes the containers
    # of tasks not in it): refused while a former worker's replica catches up with what its feed
    # showed it, a replica that lacks tasks the node runs. Other node-local reads are served.
    complete: bool = False


@dataclass(frozen=True, slots=True)
class MemberEvents:
    events: list[MemberEvent]


@dataclass(frozen=True, slots=True)
class LocalMeta:
    """The node's own gossip identity, so the leader can account for itself."""

    meta: NodeMeta


@dataclass(frozen=True, slots=True)
class ClusterIdentity:
    """Raft to gossip: the cluster id of the configuration this node holds, and its data dir's
    incarnation. Gossip puts both in the node's meta and from then on drops other clusters' gossip."""

    cluster_id: str
    raft_incarnation: str


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The FSM applied commands that may matter to the receiver (wake-up, level-triggered).
    ``touched``: what they may have changed (orion/fsm/touched.py); each receiver looks only
    when that overlaps what it reads. The default, everything, makes every receiver look."""

    touched: Touched = EVERYTHING


@dataclass(frozen=True, slots=True)
class LeadershipChanged:
    is_leader: bool
    leader_id: str


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Graceful stop: a leader hands leadership over; gossip announces the leave."""

    done: Callable[[], None] = field(default=lambda: None)


@dataclass(frozen=True, slots=True)
class ContainerExited:
    task_id: str
    exit_code: int | None
    oom_killed: bool
