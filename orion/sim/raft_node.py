"""One simulated Raft node: the host of a ``RaftShell`` (the production Ready loop), with a
``MemoryStore`` that outlives crashes, a KV FSM that does not, and the checkers watching.

The node owns no clock and no randomness: the cluster drives it (ticks, frames, faults) and
hands it what it needs, so a seed still replays a run exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from orion.raft.core import RaftCore
from orion.raft.memory_store import MemoryStore
from orion.raft.shell import RaftShell
from orion.raft.types import Entry, EntryKind, HardState, Membership, Snapshot, SnapshotMeta
from orion.sim.invariants import InvariantViolation
from orion.sim.kv import KVFsm, parse_command

if TYPE_CHECKING:
    from orion.sim.invariants import InvariantChecker
    from orion.sim.linearizability import LinearizabilityChecker
    from orion.sim.network import SimNetwork


class ClusterHost(Protocol):
    """What a node needs of the cluster that drives it (``SimCluster`` in raft_cluster.py):
    named here so the node does not import the cluster that imports it."""

    seed: int
    now: int
    net: SimNetwork
    snapshot_delay: int

    def checkers_for(self, cluster_id: str) -> tuple[InvariantChecker, LinearizabilityChecker]: ...

    def read_failed(self, node: SimNode, context: bytes) -> None: ...


class SimCrash(Exception):
    """Raised by a fault hook inside the shell's Ready loop: the node dies right there."""


class ObservedStore(MemoryStore):
    """The real in-memory store, with the checker told about every entry as it is written."""

    def __init__(self) -> None:
        super().__init__()
        self.on_save: Callable[[Sequence[Entry]], None] | None = None

    def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        if entries and self.on_save is not None:
            self.on_save(entries)
        super().save(hard_state, entries)


class SimNode:
    def __init__(
        self, cluster: ClusterHost, node_id: str, bootstrap: Membership | None, incarnation: str
    ) -> None:
        self.cluster = cluster
        self.id = node_id
        self.store = ObservedStore()
        self.store.save_identity(incarnation)
        self.store.on_save = self.on_save
        self.bootstrap = bootstrap  # the configuration to bootstrap with when the store is empty
        self.shell: RaftShell | None = None
        self.fsm = KVFsm()
        self.reads: dict[bytes, int] = {}  # read context -> index it may be served at
        self.failed_reads: list[bytes] = []
        self.open_reads: set[bytes] = set()  # reads invoked here through SimCluster.read, unanswered
        self.answered_reads: set[bytes] = set()  # every read context this node answered, any life
        self.dropped: list[tuple[str, str]] = []  # (peer, reason) reported by the identity checks
        self.snapshot_jobs: list[tuple[int, Snapshot]] = []  # (tick it completes, snapshot)
        self.bootstrap_at: int | None = None  # an empty node may found a cluster at this tick
        self.frames_sent = 0

    @property
    def core(self) -> RaftCore | None:
        return self.shell.core if self.shell is not None else None

    @property
    def alive(self) -> bool:
        return self.shell is not None

    @property
    def incarnation(self) -> str:
        incarnation = self.store.load_identity()
        assert incarnation is not None
        return incarnation

    def _checkers(self) -> tuple[InvariantChecker, LinearizabilityChecker]:
        core = self.core
        return self.cluster.checkers_for(core.membership.cluster_id if core is not None else "")

    def on_save(self, entries: Sequence[Entry]) -> None:
        core = self.core
        if core is not None:
            self._checkers()[0].on_persist(self.id, core, list(entries))

    # ------------------------------------------------------------------ ShellHost
    def send_frame(self, dst: str, frame: bytes) -> None:
        self.frames_sent += 1
        self.cluster.net.send_frame(frame, self.cluster.now)

    def apply(self, entry: Entry) -> bool:
        fsm = self.fsm
        expected = fsm.applied_index + 1
        fsm.apply(entry)
        checker, history = self._checkers()
        checker.on_apply(self.id, entry, expected, fsm.chain)
        command = parse_command(entry.data) if entry.kind == EntryKind.NORMAL else None
        now = self.cluster.now
        if command is None:
            history.on_commit(entry.index, None, b"", now)
        else:
            history.on_commit(entry.index, command[0], command[1], now)
        return True

    def restore(self, snapshot: Snapshot) -> None:
        self.fsm.restore(snapshot.data)
        checker = self.cluster.checkers_for(snapshot.meta.membership.cluster_id)[0]
        checker.on_restore(self.id, snapshot.meta.index, self.fsm.chain)

    def snapshot_source(self) -> bytes:
        return self.fsm.snapshot()  # encoded at once: the state as of the applied index

    def start_snapshot(self, meta: SnapshotMeta, source: bytes) -> None:
        """A background job in production; here it finishes ``snapshot_delay`` ticks later
        (0: at once), while the node keeps writing its log."""
        snapshot = Snapshot(meta, source)
        delay = self.cluster.snapshot_delay
        if delay:
            self.snapshot_jobs.append((self.cluster.now + delay, snapshot))
        else:
            self.finish_snapshot(snapshot)

    def finish_snapshot(self, snapshot: Snapshot) -> None:
        shell = self.shell
        assert shell is not None
        self.store.write_snapshot(snapshot)
        shell.snapshot_taken(snapshot)

    def _answer(self, context: bytes) -> None:
        """A ReadIndex request is answered once: served, or failed, never both or twice."""
        if context in self.answered_reads:
            raise InvariantViolation(
                f"seed={self.cluster.seed}: read {context!r} answered twice at {self.id}"
            )
        self.answered_reads.add(context)

    def on_read_state(self, context: bytes, index: int) -> None:
        self._answer(context)
        self.reads[context] = index

    def on_failed_read(self, context: bytes) -> None:
        self._answer(context)
        self.failed_reads.append(context)
        self.cluster.read_failed(self, context)

    def on_dropped(self, peer: str, reason: str, detail: str) -> None:
        self.dropped.append((peer, reason))
