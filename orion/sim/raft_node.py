"""One simulated Raft node: the host of a ``RaftShell`` (the production Ready loop), with a
``MemoryStore`` that outlives crashes, a KV FSM that does not, and the checkers watching.

The node owns no clock and no randomness: the cluster drives it (ticks, frames, faults) and
hands it what it needs, so a seed still replays a run exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

from orion.raft.core import RaftCore
from orion.raft.envelope import decode_envelope
from orion.raft.memory_store import MemoryStore
from orion.raft.messages import AppendResponse, VoteResponse
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

    def write_delay(self) -> int:
        """Ticks a leader's write-behind takes (drawn per write)."""
        ...

    def checkers_for(self, cluster_id: str) -> tuple[InvariantChecker, LinearizabilityChecker]: ...

    def read_failed(self, node: SimNode, context: bytes) -> None: ...


ASK_CORE = -1  # no term is negative: "read the term before the entries from the core"


class SimCrash(Exception):
    """Raised by a fault hook inside the shell's Ready loop: the node dies right there."""


class ObservedStore(MemoryStore):
    """The real in-memory store, with the checker told about every entry as it is written."""

    def __init__(self) -> None:
        super().__init__()
        # Called with the entries and the term of the entry before them (ASK_CORE: the core's).
        self.on_save: Callable[[Sequence[Entry], int | None], None] | None = None

    def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        self.save_after(hard_state, entries, ASK_CORE)

    def save_after(
        self, hard_state: HardState | None, entries: Sequence[Entry], prev_term: int | None
    ) -> None:
        """``save``, for a write handed out earlier: ``prev_term`` is the term that preceded the
        entries when they were handed (the core's log may have been truncated since)."""
        if entries and self.on_save is not None:
            self.on_save(entries, prev_term)
        super().save(hard_state, entries)

    def last_index(self) -> int:
        """The last index written (an entry, or the snapshot's)."""
        return self._last_index()


class PendingWrite(NamedTuple):
    due: int  # tick from which the write may complete
    seq: int
    hard_state: HardState | None
    entries: list[Entry]
    prev_term: int | None


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
        # The writer of a leader writing behind its sends (production: a thread); a crash
        # loses what it has not completed.
        self.writes: list[PendingWrite] = []

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

    def on_save(self, entries: Sequence[Entry], prev_term: int | None) -> None:
        core = self.core
        if core is not None:
            self._checkers()[0].on_persist(self.id, core, list(entries), prev_term)

    # ------------------------------------------------------------------ LogWriter
    def write(self, seq: int, hard_state: HardState | None, entries: list[Entry]) -> None:
        core = self.core
        assert core is not None
        due = self.cluster.now + self.cluster.write_delay()
        if self.writes:
            due = max(due, self.writes[-1].due)  # one write at a time, in order
        prev_term = core.entry_term(entries[0].index - 1)
        self.writes.append(PendingWrite(due, seq, hard_state, list(entries), prev_term))

    def wait(self) -> None:
        while self.writes:
            self._complete(self.writes.pop(0))

    def complete_due_writes(self) -> bool:
        """Complete the writes due by now and report them to the shell; True if any."""
        done = 0
        now = self.cluster.now
        while self.writes and self.writes[0].due <= now:
            write = self.writes.pop(0)
            self._complete(write)
            done = write.seq
        if done and self.shell is not None:
            self.shell.written(done)
        return done > 0

    def _complete(self, write: PendingWrite) -> None:
        self.store.save_after(write.hard_state, write.entries, write.prev_term)

    # ------------------------------------------------------------------ ShellHost
    def send_frame(self, dst: str, frame: bytes) -> None:
        self.frames_sent += 1
        self._check_promise(decode_envelope(frame).body)
        self.cluster.net.send_frame(frame, self.cluster.now)

    def _check_promise(self, body: object) -> None:
        """What a node promises it must already have written: the entries it acknowledges
        (a former leader's writes still in its writer included), the vote it grants."""
        store = self.store
        if isinstance(body, AppendResponse) and body.success:
            stored = store.last_index()
            if stored < body.index:
                raise InvariantViolation(
                    f"seed={self.cluster.seed}: {self.id} acknowledged index {body.index} with "
                    f"only {stored} written"
                )
        elif isinstance(body, VoteResponse) and body.granted and not body.pre_vote:
            hard_state = store.hard_state
            if hard_state.term < body.term or (hard_state.term == body.term and hard_state.vote != body.dst):
                raise InvariantViolation(
                    f"seed={self.cluster.seed}: {self.id} granted its vote in term {body.term} to "
                    f"{body.dst} before writing it (stored {hard_state})"
                )

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
