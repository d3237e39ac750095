"""The one Ready loop: persist, send, apply and snapshot for a Raft core, with no I/O of its own.

The Raft actor, the simulator and the core benchmark all drive a core through ``RaftShell``,
so the order they test is the order production runs:

1. a snapshot from the leader: ``store.save_snapshot`` then ``host.restore``;
2. entries and hard state: one ``store.save`` (group commit). As in etcd's MustSync, a hard
   state whose only change is the commit index is not written on its own (a quorum can
   recover it); it rides along with the next write;
3. messages: after the write, except on a leader whose vote is settled, which sends first and
   writes while its followers do (Raft thesis 10.2.1: its own entries count toward the
   commit only once ``advance`` sees them durable);
4. committed entries to the host's FSM (a settled leader applies them before its write, in
   step 3: they are durable on a quorum and were written here by an earlier Ready; and with
   no entries to write, before its sends, which then carry commit indexes and heartbeats
   that no client waits for), read states and failed reads to the host;
5. ``core.advance``.

Write-behind: given a ``LogWriter``, a settled leader does not wait for its own write at all.
It hands the entries to the writer (which writes them in order, off the shell's thread) and
goes on; ``written(seq)`` reports each write done and ``core.persisted`` counts the leader's
copy from then on. Anything else that touches the store or promises durability waits for the
writer first (``_settle_writes``): a follower's or candidate's Ready (its acknowledgements and
votes speak for everything in its log, including what it handed out while it led), a snapshot
from the leader, a local snapshot and the log compaction after it, and shutdown.

``InstallSnapshot`` messages are never encoded as one frame: they are streamed in bounded
chunks (``orion.raft.snapshot_stream``), so no frame exceeds the transport's limit whatever
the size of the state. The core keeps only the meta of its snapshot once the store holds it
(``RaftCore.release_snapshot_data``); the shell streams the bytes the store gives back
(``LogStore.stored_snapshot``: a mapped file for the DuckDB store), which may belong to a newer
snapshot than the core's (a local one stored and not yet compacted into the core): that one
is as good for the follower, since it too covers only committed entries. Local snapshots are
taken off the caller's thread: the shell asks the
host for a consistent copy of the FSM (cheap) and a job that encodes and durably writes it
(``store.write_snapshot``); when the host reports it done, the core compacts, keeping
``trailing_entries`` behind it, and the store drops the log below what the core still holds.

Frames carry an ``Envelope`` (cluster id, both incarnations); a frame from another cluster or
for another life of a node is dropped here, before the core sees it, and reported to the host
once per peer and reason.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from orion.raft.core import LEADER, RaftCore
from orion.raft.envelope import Envelope, decode_envelope, encode_envelope
from orion.raft.messages import (
    AppendResponse,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    RequestVote,
    VoteResponse,
)
from orion.raft.snapshot_stream import (
    SnapshotAck,
    SnapshotChunk,
    SnapshotFailed,
    SnapshotProgress,
    SnapshotReceiver,
    SnapshotSender,
    snapshot_checksum,
)
from orion.raft.types import Entry, HardState, LogStore, Snapshot, SnapshotMeta

# Answers to a leader's replication: only the leader of their term asked for them, and they
# state facts about the sender's log, so one addressed to an earlier life of a leader (by a
# member whose configuration predates that leader's replacement) is still true and useful.
_REPLICATION_ANSWERS = (AppendResponse, HeartbeatResponse, InstallSnapshotResponse, SnapshotAck)
# What counts as a promise of the sender's life: acknowledgements and votes, and asking for a
# vote (voters remember whom they voted for by id, so an earlier life's vote would be reused).
_PROMISES = (
    AppendResponse,
    HeartbeatResponse,
    InstallSnapshotResponse,
    SnapshotAck,
    VoteResponse,
    RequestVote,
)

# Why a frame was dropped before reaching the core (reported once per peer and reason).
OTHER_CLUSTER = "other_cluster"
FOR_EARLIER_LIFE = "for_earlier_life"  # addressed to an incarnation of this node that is gone
FROM_OTHER_LIFE = "from_other_life"  # the sender's incarnation is not the one the configuration holds


class ShellHost(Protocol):
    """What a shell needs from its owner (the Raft actor or a simulated node)."""

    def send_frame(self, dst: str, frame: bytes) -> None:
        """Send one encoded envelope to node ``dst`` (best effort: Raft retries). A host may
        hold frames until ``flush_frames``, if it has one (see ``RaftShell``)."""
        ...

    def apply(self, entry: Entry) -> bool:
        """Apply one committed entry; True when the FSM changed."""
        ...

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the FSM by a snapshot installed from the leader."""
        ...

    def snapshot_source(self) -> Any:
        """A consistent, immutable copy of the FSM as of the applied index (cheap)."""
        ...

    def start_snapshot(self, meta: SnapshotMeta, source: Any) -> None:
        """Encode ``source`` and ``store.write_snapshot`` it, off the caller's thread if the
        host has threads; then call ``RaftShell.snapshot_taken`` on the shell's thread."""
        ...

    def on_read_state(self, context: bytes, index: int) -> None: ...

    def on_failed_read(self, context: bytes) -> None: ...

    def on_dropped(self, peer: str, reason: str, detail: str) -> None:
        """A frame was dropped by the identity checks (called once per peer and reason)."""
        ...

    # Optional: ``checkpoint_log()``, to fold the log written since the store's last
    # checkpoint into its file, off the caller's thread if the host has threads, then call
    # ``RaftShell.log_checkpointed`` on the shell's thread (a store that holds written rows in
    # memory until a checkpoint, as DuckDB does, holds no more than snapshot_threshold of them).


class LogWriter(Protocol):
    """Writes a settled leader's entries behind its sends, in the order handed, one at a time."""

    def write(self, seq: int, hard_state: HardState | None, entries: list[Entry]) -> None:
        """``store.save(hard_state, entries)`` after every earlier write, off the caller's
        thread; then have ``RaftShell.written(seq)`` called on the shell's thread. A write that
        fails must stop the node (its log is no longer what the core believes)."""
        ...

    def wait(self) -> None:
        """Return once every write handed so far is durable; raise if one failed. Their
        ``written`` reports may still arrive later: the shell ignores them."""
        ...


def _overlaps(committed: list[Entry], unwritten: list[Entry]) -> bool:
    """True when a committed entry is among those this Ready still has to write."""
    return bool(unwritten) and committed[-1].index >= unwritten[0].index


class RaftShell:
    def __init__(
        self,
        core: RaftCore,
        store: LogStore,
        host: ShellHost,
        *,
        incarnation: str,
        snapshot_threshold: int,
        snapshot_log_ratio: float = 0.0,
        chunk_bytes: int = 1 << 20,
        window_bytes: int = 4 << 20,
        saved_hard_state: HardState | None = None,
        writer: LogWriter | None = None,
    ) -> None:
        self.core = core
        self.store = store
        self.host = host
        self.incarnation = incarnation
        self.snapshot_threshold = snapshot_threshold
        # A snapshot re-writes the whole state, so taken every ``snapshot_threshold`` entries its
        # cost per entry grows with the state (at 50k tasks it was a third to a half of a
        # write's CPU). With a ratio, the log since the last snapshot must also hold that many
        # times the last snapshot's bytes, as CockroachDB truncates a range's Raft log only once
        # it outgrows the range: each entry then pays for at most 1/ratio of its own bytes in
        # snapshots, and a restart replays at most ratio times the state's bytes of log.
        self.snapshot_log_ratio = snapshot_log_ratio
        stored = core.snapshot
        self._snapshot_bytes = len(stored.data) if stored is not None else 0
        self._log_bytes = 0  # data bytes of the entries applied since the snapshot's index
        self._log_bytes_before_job = 0
        self._checkpoint_log: Callable[[], None] | None = getattr(host, "checkpoint_log", None)
        self._checkpointed_index = core.applied_index  # the log up to here is in the store's file
        self._sender = SnapshotSender(chunk_bytes=chunk_bytes, window_bytes=window_bytes)
        self._receiver = SnapshotReceiver()
        # Checksum of the snapshot this node would stream, computed where the snapshot was made
        # (a background job, or the stream it arrived by), never again on this thread.
        self._checksum: tuple[int, int, int] | None = None  # (index, term, crc32)
        # The stored snapshot being streamed (its data mapped by the store), shared by every
        # follower's stream and dropped when none is left.
        self._outgoing: Snapshot | None = None
        core.release_snapshot_data()  # loaded from the store, which gives the bytes back
        # Durable, applied entries are read back from the store when needed, not kept in memory
        # (RaftConfig.memory_entries); a store without reads leaves them all in memory.
        reader = getattr(store, "read_entries", None)
        if reader is not None:
            core.read_entries_from(reader)
        self._saved_hard_state = saved_hard_state or HardState()
        self._unsaved_hard_state: HardState | None = None
        self._snapshot_job = 0  # index of the local snapshot being taken, 0 if none
        self._reported: set[tuple[str, str]] = set()
        self.heard_clusters: dict[str, str] = {}  # cluster id -> a node that spoke for it
        # Fault points for the simulator: called with "sent_before_persist" and "persisted";
        # raising there aborts the Ready half done, as a crash would.
        self.fault_hook: Callable[[str], None] | None = None
        # A host that batches its sends (one wake-up of its network thread per Ready, not one
        # per frame) gets them flushed right after a Ready's messages: before the leader's own
        # write, which its followers' writes overlap, and before a follower's answer waits.
        self._flush_frames: Callable[[], None] | None = getattr(host, "flush_frames", None)
        # A host that also flushes when it is about to wait (the Raft actor, just before its
        # thread blocks) is left the frames of a Ready with nothing slow after its sends (an idle
        # leader's heartbeats, a follower's answer to one): its network thread then wakes while
        # this thread sleeps, not while it still holds the interpreter lock.
        self._flushes_when_idle: bool = getattr(host, "flushes_when_idle", False)
        self.writer = writer
        self._write_seq = 0
        # Writes handed to the writer and not yet reported: (seq, last index, its term).
        self._unwritten: deque[tuple[int, int, int]] = deque()

    # ------------------------------------------------------------------ frames in
    def receive(self, frame: bytes) -> None:
        """One frame from the network; raises msgspec.DecodeError/ValidationError on garbage."""
        self.receive_envelope(decode_envelope(frame))

    def receive_envelope(self, envelope: Envelope) -> None:
        body = envelope.body
        core = self.core
        if body.dst != core.id or body.src == core.id:
            return
        if envelope.cluster:
            self.heard_clusters.setdefault(envelope.cluster, body.src)
        membership = core.membership
        mine = membership.cluster_id
        if envelope.cluster and mine and envelope.cluster != mine:
            self._drop(body.src, OTHER_CLUSTER, f"it is in cluster {envelope.cluster}, this node in {mine}")
            return
        if (
            envelope.dst_incarnation
            and envelope.dst_incarnation != self.incarnation
            and not isinstance(body, _REPLICATION_ANSWERS)
        ):
            self._drop(
                body.src,
                FOR_EARLIER_LIFE,
                f"it is addressed to incarnation {envelope.dst_incarnation} of this node, which is now "
                f"{self.incarnation} (its data dir was recreated): waiting to be added back by the leader",
            )
            return
        # Requests from a leader are followed whatever life the configuration names: only an
        # elected leader sends them, and a stale configuration must be able to learn of the
        # sender's replacement from the sender itself.
        recorded = core.incarnation_of(body.src) if isinstance(body, _PROMISES) else ""
        if recorded and envelope.src_incarnation != recorded:
            self._drop(
                body.src,
                FROM_OTHER_LIFE,
                f"it is incarnation {envelope.src_incarnation or '?'}, the configuration holds {recorded}",
            )
            return
        if isinstance(body, SnapshotChunk):
            acks, complete = self._receiver.on_chunk(body)
            for ack in acks:
                self._send(ack)
            if complete is not None:
                meta = complete.snapshot.meta
                self._checksum = (meta.index, meta.term, body.checksum)
                core.step(complete)
        elif isinstance(body, SnapshotAck):
            self._on_stream_events(self._sender.on_ack(body))
        else:
            core.step(body)

    def _drop(self, peer: str, reason: str, detail: str) -> None:
        key = (peer, reason)
        if key not in self._reported:
            self._reported.add(key)
            self.host.on_dropped(peer, reason, detail)

    # ------------------------------------------------------------------ time
    def tick(self) -> None:
        self.core.tick()
        if self._sender.active():
            self._on_stream_events(self._sender.tick())
        elif self.core.role != LEADER:
            # What _on_stream_events does with no stream under way (an idle node's every tick:
            # the sender's tick and poll would only walk an empty table).
            self._outgoing = None
        if self._receiver.status() is not None:
            self._receiver.tick()

    def ticks_until_due(self) -> int | None:
        """The core's ``ticks_until_due``, or 1 while a snapshot streams either way (its
        timeouts count every tick). A host may owe the ticks before it, as the core says."""
        if self._sender.active() or self._receiver.status() is not None:
            return 1
        return self.core.ticks_until_due()

    def _on_stream_events(self, events: list[Any]) -> None:
        core = self.core
        if core.role != LEADER:
            if self._sender.active():
                self._sender.cancel_all()  # a deposed leader's streams are the new leader's job
            self._outgoing = None
            return
        if events and not self._sender.active():
            self._outgoing = None
        for event in events:
            # A finished stream needs nothing here: the follower's InstallSnapshotResponse,
            # sent once its core has taken the snapshot, moves its progress on.
            if isinstance(event, SnapshotProgress):
                core.snapshot_progress(event.dst)
            elif isinstance(event, SnapshotFailed):
                core.snapshot_failed(event.dst)
        self._flush_chunks()

    def _flush_chunks(self) -> None:
        for chunk in self._sender.poll():
            self._send(chunk)

    # ------------------------------------------------------------------ the Ready loop
    def drain(self) -> bool:
        """Process every pending Ready; True when the FSM changed (applied or restored)."""
        core = self.core
        host = self.host
        changed = False
        while True:
            if self._unwritten and core.role != LEADER:
                # Before ready(): what the writer held now counts, and a follower's
                # acknowledgements in this Ready speak for it.
                self._settle_writes()
            if not core.has_ready():
                break
            ready = core.ready()
            if self.snapshot_log_ratio and ready.committed:
                self._log_bytes += sum([len(entry.data) for entry in ready.committed])
            hard_state = ready.hard_state
            saved = self._saved_hard_state
            vote_settled = hard_state is None or (
                hard_state.term == saved.term and hard_state.vote == saved.vote
            )
            committed = ready.committed
            written = True
            late: list[tuple[int, int, int]] = []
            # Nothing after the sends but bookkeeping: no write, no apply, no reads to serve.
            quick = not (ready.entries or committed or ready.read_states or ready.failed_reads)
            if core.role == LEADER and vote_settled and ready.snapshot is None:
                if committed and not ready.entries:
                    # Nothing to write: the clients of the committed entries are answered
                    # before the sends (commit indexes mostly, which no client waits for), so
                    # the reply's thread is not woken behind the network thread's.
                    for entry in committed:
                        changed |= host.apply(entry)
                    committed = []
                self._send_all(ready.messages, urgent=not quick)
                if self.fault_hook is not None:
                    self.fault_hook("sent_before_persist")
                if committed and (self.writer is not None or not _overlaps(committed, ready.entries)):
                    # Committed entries are durable on a quorum (this node's copy counts only
                    # once written): their writers are answered now, not after this node's
                    # write of newer entries (a whole fsync later).
                    for entry in committed:
                        changed |= host.apply(entry)
                    committed = []
                if self.writer is not None:
                    written = not self._write_behind(hard_state, ready.entries)
                else:
                    self._persist(hard_state, ready.entries)
            else:
                # A leader that just changed term or vote, a candidate, a follower: nothing it
                # sends may get ahead of its store, nor its store's writes out of order.
                late = self._wait_writer()
                if ready.snapshot is not None:
                    self.store.save_snapshot(ready.snapshot)
                    host.restore(ready.snapshot)
                    self._snapshot_bytes = len(ready.snapshot.data)
                    self._log_bytes = 0
                    changed = True
                self._persist(hard_state, ready.entries)
                if self.fault_hook is not None:
                    self.fault_hook("persisted")
                self._send_all(ready.messages, urgent=not quick or ready.snapshot is not None)
            for entry in committed:
                changed |= host.apply(entry)
            for read_state in ready.read_states:
                host.on_read_state(read_state.context, read_state.index)
            for context in ready.failed_reads:
                host.on_failed_read(context)
            core.advance(ready, written=written)
            if ready.snapshot is not None:
                core.release_snapshot_data()  # the store holds it now
            self._report(late)  # after advance: the core takes no input between ready and advance
        self._maybe_snapshot()
        return changed

    # ------------------------------------------------------------------ write-behind
    def _write_behind(self, hard_state: HardState | None, entries: list[Entry]) -> bool:
        """Hand a settled leader's write to the writer; False when there is nothing to write
        (a hard state whose only change is the commit index rides along with the next one)."""
        writer = self.writer
        assert writer is not None
        if not entries:
            if hard_state is not None:
                self._unsaved_hard_state = hard_state
            return False
        latest = hard_state if hard_state is not None else self._unsaved_hard_state
        self._write_seq += 1
        last = entries[-1]
        self._unwritten.append((self._write_seq, last.index, last.term))
        writer.write(self._write_seq, latest, entries)
        if latest is not None:
            # Writes land in the order handed, so later ones may take this as saved.
            self._saved_hard_state = latest
            self._unsaved_hard_state = None
        return True

    def written(self, seq: int) -> None:
        """The writer made write ``seq`` (and every earlier one) durable: the leader's copy of
        those entries counts from now on. Reports of writes already waited for are ignored."""
        done = []
        unwritten = self._unwritten
        while unwritten and unwritten[0][0] <= seq:
            done.append(unwritten.popleft())
        self._report(done)

    @property
    def writes_pending(self) -> int:
        return len(self._unwritten)

    def _wait_writer(self) -> list[tuple[int, int, int]]:
        """Wait until the writer has made everything handed to it durable; the writes to report
        to the core (by ``_report``, when the core may take input)."""
        if not self._unwritten:
            return []
        assert self.writer is not None
        self.writer.wait()
        done = list(self._unwritten)
        self._unwritten.clear()
        return done

    def _settle_writes(self) -> None:
        self._report(self._wait_writer())

    def _report(self, done: list[tuple[int, int, int]]) -> None:
        core = self.core
        for _, index, term in done:
            core.persisted(index, term)

    def _persist(self, hard_state: HardState | None, entries: list[Entry]) -> None:
        if hard_state is not None:
            self._unsaved_hard_state = hard_state
        latest = self._unsaved_hard_state
        saved = self._saved_hard_state
        must_sync = bool(entries) or (
            latest is not None and (latest.term != saved.term or latest.vote != saved.vote)
        )
        if not must_sync:
            return
        self.store.save(latest, entries)
        if latest is not None:
            self._saved_hard_state = latest
            self._unsaved_hard_state = None

    def flush_hard_state(self) -> None:
        """Write what the writer holds and a commit-only hard state still held back (at shutdown)."""
        self._settle_writes()
        if self._unsaved_hard_state is not None:
            self.store.save(self._unsaved_hard_state, [])
            self._saved_hard_state = self._unsaved_hard_state
            self._unsaved_hard_state = None

    def _send_all(self, messages: list[Message], urgent: bool = True) -> None:
        for msg in messages:
            if isinstance(msg, InstallSnapshot):
                self._stream(msg)
            else:
                self._send(msg)
        self._flush_chunks()
        if self._flush_frames is not None and (urgent or not self._flushes_when_idle):
            self._flush_frames()

    def _stream(self, msg: InstallSnapshot) -> None:
        """Start streaming the snapshot ``msg`` asks for, its bytes from the store when the core
        kept only the meta. A stream already under way for the same snapshot goes on."""
        meta = msg.snapshot.meta
        current = self._sender.status(msg.dst)
        if current is not None and (current.index, current.snap_term) == (meta.index, meta.term):
            self._sender.start(msg)  # needs only the meta: adopts a newer term
            return
        if not msg.snapshot.data:
            snapshot = self._outgoing if self._sender.active() else None
            if snapshot is None or snapshot.meta.index < meta.index:
                snapshot = self.store.stored_snapshot()
            if snapshot is None or snapshot.meta.index < meta.index:
                # Never so (the store holds a snapshot before the core compacts to it); the
                # core sends again when its wait for an answer runs out.
                return
            self._outgoing = snapshot
            msg = InstallSnapshot(msg.src, msg.dst, msg.term, snapshot)
            meta = snapshot.meta
        known = self._checksum
        if known is None or known[:2] != (meta.index, meta.term):
            known = (meta.index, meta.term, snapshot_checksum(msg.snapshot.data))
            self._checksum = known
        self._sender.start(msg, known[2])

    def _send(self, body: Message | SnapshotChunk | SnapshotAck) -> None:
        core = self.core
        envelope = Envelope(core.membership.cluster_id, self.incarnation, core.incarnation_of(body.dst), body)
        self.host.send_frame(body.dst, encode_envelope(envelope))

    # ------------------------------------------------------------------ local snapshots
    @property
    def snapshot_in_progress(self) -> bool:
        return self._snapshot_job != 0

    def _maybe_snapshot(self) -> None:
        core = self.core
        if self._snapshot_job or core.applied_index - core.snapshot_index < self.snapshot_threshold:
            return
        if self._log_bytes < self.snapshot_log_ratio * self._snapshot_bytes:
            # No snapshot yet; the store still checkpoints every threshold entries, as a
            # snapshot would have (a snapshot's write ends in one).
            if self._checkpoint_log is not None and (
                core.applied_index - self._checkpointed_index >= self.snapshot_threshold
            ):
                self._checkpointed_index = core.applied_index
                self._checkpoint_log()
            return
        # Entries up to the snapshot must be in the store before it (the store refuses, or
        # would keep, rows at or below a snapshot written ahead of them); once per threshold.
        self._settle_writes()
        index = core.applied_index
        self._snapshot_job = index
        self._checkpointed_index = index
        self._log_bytes_before_job, self._log_bytes = self._log_bytes, 0
        self.host.start_snapshot(core.snapshot_meta(index), self.host.snapshot_source())

    def log_checkpointed(self) -> None:
        """The host's ``checkpoint_log`` is over: let the store drop what it cached of the log,
        between writes (a snapshot under way does that when it compacts)."""
        release = getattr(self.store, "release_buffers", None)
        if release is None or self._snapshot_job:
            return
        self._settle_writes()
        release()

    def snapshot_taken(self, snapshot: Snapshot | None, checksum: int | None = None) -> None:
        """The host's snapshot job finished (``None``: it failed; a later Ready retries).
        ``checksum``: ``snapshot_checksum(snapshot.data)`` if the job computed it."""
        self._snapshot_job = 0
        core = self.core
        if snapshot is None or snapshot.meta.index <= core.snapshot_index:
            if snapshot is None:  # the log it would have compacted is still there
                self._log_bytes += self._log_bytes_before_job
            return  # failed, or a snapshot from the leader overtook it
        self._snapshot_bytes = len(snapshot.data)
        if checksum is not None:
            self._checksum = (snapshot.meta.index, snapshot.meta.term, checksum)
        # Before compacting (a report for an entry compacted away would be lost), and the writer
        # and compact_log share the store's connection.
        self._settle_writes()
        core.compact(snapshot.meta.index, snapshot.data)
        core.release_snapshot_data()  # the job stored it: streams read it back from the store
        self.store.compact_log(core.log_first_index - 1)
