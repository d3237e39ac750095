"""The sans-I/O Raft core: a deterministic state machine with no sockets, threads or clock.

Inputs: ``tick()``, ``step(message)``, ``propose*()``, membership calls, ``read_index()``.
Outputs: a ``Ready`` batch, collected by the shell, which must, in this order:

1. if ``ready.snapshot``: ``store.save_snapshot(snapshot)`` then restore the FSM from it;
2. ``store.save(ready.hard_state, ready.entries)`` (one durable write: group commit);
3. send ``ready.messages`` (each names its ``dst``);
4. apply ``ready.committed`` to the FSM in order; serve ``ready.read_states`` once the applied
   index reaches their index; fail ``ready.failed_reads``;
5. ``core.advance(ready)``, before the next ``ready()``; do not call ``step``/``tick``/
   ``propose`` between ``ready()`` and ``advance()`` (an actor does all five steps in one go).

A leader whose term and vote are already durable may send first and write while its followers
do (Raft thesis 10.2.1), and may even hand the write to a writer and go on:
``advance(ready, written=False)``, then ``persisted(index, term)`` once the write is durable.
The leader counts its own copy toward the commit only up to ``stable_index``, the durable end
of its log, never what it merely handed out; a quorum of followers may commit without it.

Start: load the store, restore the FSM from ``stored.snapshot`` if any, then construct the
core (stored entries may start before the snapshot's index + 1); ``applied_index`` starts at
the snapshot index and later entries come back in ``committed``. A new node may be given its
first configuration with ``bootstrap(membership)`` while it is still empty.

Compaction: when ``applied_index - snapshot_index > snapshot_threshold``, the shell snapshots
the FSM as of an applied index (``snapshot_meta(index)`` gives the term and membership for a
snapshot written off the Raft thread), calls ``compact(index, data)``, stores the returned
snapshot with ``store.write_snapshot`` and then drops what the log no longer holds with
``store.compact_log(log_first_index - 1)``: the log keeps ``trailing_entries`` entries behind
the snapshot. A snapshot that arrives in ``ready.snapshot`` (from the leader) goes to
``store.save_snapshot`` instead.

Snapshots to followers: the core emits one ``InstallSnapshot`` carrying the whole Snapshot; the
shell may stream it in chunks, calling ``snapshot_progress(peer)`` as chunks are acknowledged
and ``snapshot_failed(peer)`` if the stream gives up. A repeat of the same (dst, index, term)
means the same snapshot again (after a timeout or a failure).

Reads: ``read_index(ctx)`` on the leader; a ``ReadState(index, ctx)`` arrives in a later Ready
(serve it once the FSM applied ``index``), or ``ctx`` arrives in ``failed_reads`` if leadership
is lost first.

Design follows the Raft dissertation and etcd-io/raft: PreVote, CheckQuorum with a leader lease
on votes, fast conflict backup, per-follower probe/replicate/snapshot pacing with pipelining
bounded in messages and bytes, appends bounded in entries and bytes, single-server membership
changes that take effect on append, ReadIndex and TimeoutNow.
"""

from __future__ import annotations

import random
from collections import deque

import msgspec

from orion.raft.log import EntryReader, RaftLog
from orion.raft.messages import (
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    RequestVote,
    TimeoutNow,
    VoteResponse,
)
from orion.raft.progress import Progress, ProgressState
from orion.raft.types import (
    Entry,
    EntryKind,
    HardState,
    Membership,
    RaftRole,
    Snapshot,
    SnapshotMeta,
    StoreCorruptError,
    StoredState,
    decode_membership,
    encode_membership,
)

LEADER = RaftRole.LEADER
FOLLOWER = RaftRole.FOLLOWER
CANDIDATE = RaftRole.CANDIDATE
PRECANDIDATE = RaftRole.PRECANDIDATE

_CONFIG = int(EntryKind.CONFIG)
_NOOP = int(EntryKind.NOOP)
_NORMAL = int(EntryKind.NORMAL)
_REPLICATE = ProgressState.REPLICATE
_PROBE = ProgressState.PROBE
_SNAPSHOT = ProgressState.SNAPSHOT


class RaftConfig(msgspec.Struct, frozen=True):
    election_ticks: int = 10  # election timeout randomized in [election_ticks, 2*election_ticks)
    heartbeat_ticks: int = 2
    max_append_entries: int = 1024  # entries per AppendEntries
    max_inflight: int = 64  # pipelined AppendEntries per follower
    snapshot_threshold: int = 8192  # the shell snapshots when applied - snapshot index exceeds this
    pre_vote: bool = True
    check_quorum: bool = True
    # Bytes of entries (data plus ENTRY_OVERHEAD_BYTES each) per AppendEntries; a single larger
    # entry still goes alone, so progress is always possible (etcd's MaxSizePerMsg).
    max_size_per_msg: int = 1 << 20
    # Bytes of entries outstanding per follower in REPLICATE state; 0 = unlimited
    # (etcd's MaxInflightBytes). May be overshot by one message.
    max_inflight_bytes: int = 32 << 20
    # Entries kept in memory behind a local snapshot, so a follower slightly behind at
    # compaction time catches up with entries rather than a whole snapshot (etcd keeps 5,000).
    trailing_entries: int = 5000
    # ... and at most this many bytes of them (0 = no byte cap): 5,000 entries of 1 MiB
    # would otherwise pin 5 GB of memory.
    trailing_bytes: int = 64 << 20
    # Entries kept as objects in memory once durable and applied, when the shell lets the core
    # read older ones back from the store (``read_entries_from``): the trailing entries and
    # those applied since the last snapshot (5,000-13,192 entries, 4-6 MB at 100k tasks) are
    # read from the store only for a follower that far behind. hashicorp/raft puts a LogCache
    # of the latest entries in front of its LogStore (Consul: 512); 1,024 is ~0.8 s of writes
    # at c=64, so a follower within that is sent entries from memory. 0 = all in memory.
    memory_entries: int = 1024

    def __post_init__(self) -> None:
        for name in ("election_ticks", "heartbeat_ticks", "max_append_entries", "max_inflight"):
            if getattr(self, name) < 1:
                raise ValueError(f"RaftConfig.{name} must be at least 1, got {getattr(self, name)}")
        for name in (
            "max_size_per_msg",
            "max_inflight_bytes",
            "trailing_entries",
            "trailing_bytes",
            "memory_entries",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"RaftConfig.{name} must not be negative, got {getattr(self, name)}")


class NotLeaderError(Exception):
    """Raised by leader-only calls on a non-leader; ``leader_id`` is "" if unknown."""

    def __init__(self, leader_id: str = "") -> None:
        super().__init__(f"not the leader (leader: {leader_id or 'unknown'})")
        self.leader_id = leader_id


class ConfigChangeInProgress(Exception):
    """A membership change is appended but not committed yet: one change at a time."""


class ReadState(msgspec.Struct):
    """A read is linearizable once the FSM's applied index reaches ``index``."""

    index: int
    context: bytes


class Ready(msgspec.Struct):
    hard_state: HardState | None  # persist if not None
    entries: list[Entry]  # persist (store.save replaces entries >= entries[0].index)
    snapshot: Snapshot | None  # from the leader: persist it, then restore the FSM from it
    messages: list[Message]  # send AFTER persisting
    committed: list[Entry]  # apply in order, AFTER persisting
    read_states: list[ReadState]
    failed_reads: list[bytes]  # read contexts dropped because leadership was lost


class _PendingRead:
    __slots__ = ("context", "index", "seq")

    def __init__(self, seq: int, index: int, context: bytes) -> None:
        self.seq = seq
        self.index = index
        self.context = context


class RaftCore:
    def __init__(
        self,
        node_id: str,
        stored: StoredState,
        config: RaftConfig,
        rng: random.Random,
        bootstrap: Membership | None = None,
    ) -> None:
        self._id = node_id
        self._config = config
        self._rng = rng
        hs = stored.hard_state
        snap = stored.snapshot
        self._log = _log_from_store(snap, stored.entries)
        if snap is not None:
            self._configs: list[tuple[int, Membership]] = [(snap.meta.index, snap.meta.membership)]
        else:
            self._configs = [(0, Membership())]
        after_snapshot = self._log.snapshot_index
        for e in self._log.entries:
            # Configurations at or before the snapshot are summed up by its membership.
            if e.kind == _CONFIG and e.index > after_snapshot:
                self._configs.append((e.index, decode_membership(e.data)))
        self._snapshot = snap
        self._term = hs.term
        self._vote = hs.vote
        self._stable = self._log.last_index  # entries <= this are durable
        self._prev_hs = hs  # the hard state last handed to the shell
        self._handed = self._stable  # entries <= this were given to a Ready
        self._commit = min(max(hs.commit, self._log.snapshot_index), self._log.last_index)
        self._applied = self._log.snapshot_index  # the shell restores the FSM from the snapshot
        self._apply_handed = self._applied
        self._pending_snapshot: Snapshot | None = None
        self._msgs: list[Message] = []
        self._read_states: list[ReadState] = []
        self._failed_reads: list[bytes] = []
        self._role = FOLLOWER
        self._leader_id = ""
        self._ticks = 0
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = 0
        self._votes: dict[str, bool] = {}
        self._progress: dict[str, Progress] = {}
        self._dirty: dict[str, bool] = {}  # peer -> send even an empty AppendEntries
        self._pending_reads: deque[_PendingRead] = deque()
        self._reads_before_commit: list[bytes] = []  # until the leader commits in its term
        self._read_seq = 0
        self._read_heartbeat = False
        self._transferee = ""
        self._reset_randomized_timeout()
        if bootstrap is not None and self._is_empty():
            self.bootstrap(bootstrap)

    def read_entries_from(self, reader: EntryReader) -> None:
        """``reader(lo, hi)`` gives back entries lo..hi from the store (``LogStore.read_entries``):
        from now on the log keeps only the latest ``memory_entries`` durable, applied entries as
        objects and reads older ones back when a follower needs them (nothing changes with
        ``memory_entries`` 0). Synchronous and deterministic: the store answers from what it
        holds, and it holds every entry this node made durable until ``compact_log``."""
        if self._config.memory_entries:
            self._log.read_from(reader)

    @property
    def entries_in_memory(self) -> int:
        """How many log entries the core holds as objects (for the node's memory figures)."""
        return self._log.held_in_memory

    def _is_empty(self) -> bool:
        return self._snapshot is None and self._log.last_index == 0 and self._term == 0

    def bootstrap(self, membership: Membership) -> None:
        """Create a cluster from nothing: ``membership`` becomes entry 1, committed at once.
        Only on an empty node (no log, no snapshot, term 0): a node that holds anything, or has
        heard from a cluster, belongs to one already. Every voter bootstrapped together must be
        given the same membership."""
        if not self._is_empty():
            raise ValueError(
                f"bootstrap: {self._id} is not empty (last index {self._log.last_index}, "
                f"snapshot index {self._log.snapshot_index}, term {self._term})"
            )
        if self._id not in membership.voters:
            raise ValueError(f"bootstrap membership must list {self._id} as a voter")
        # Every bootstrapped node holds this same first entry, so it is committed by fiat.
        self._log.append([Entry(1, 1, _CONFIG, encode_membership(membership))])
        self._configs.append((1, membership))
        self._term = 1
        self._commit = 1

    # ------------------------------------------------------------------ read-only state
    @property
    def id(self) -> str:
        return self._id

    @property
    def role(self) -> str:
        return self._role

    @property
    def term(self) -> int:
        return self._term

    @property
    def vote(self) -> str:
        return self._vote

    @property
    def leader_id(self) -> str:
        return self._leader_id

    @property
    def commit_index(self) -> int:
        return self._commit

    @property
    def applied_index(self) -> int:
        return self._applied

    @property
    def last_index(self) -> int:
        return self._log.last_index

    @property
    def last_term(self) -> int:
        return self._log.last_term

    @property
    def snapshot_index(self) -> int:
        return self._log.snapshot_index

    @property
    def log_first_index(self) -> int:
        """First index still held in memory (at most snapshot_index + 1: entries behind the
        snapshot are kept for followers slightly behind); the store may drop what precedes it."""
        return self._log.first_index

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    def release_snapshot_data(self) -> None:
        """The store holds the snapshot's bytes: keep only its meta. The ``InstallSnapshot``
        messages sent from then on carry empty data, which the shell fills in from the store
        (a 100k-task state's snapshot is ~35 MB that a node kept only for lagging followers)."""
        snap = self._snapshot
        if snap is not None and snap.data:
            self._snapshot = Snapshot(snap.meta, b"")

    @property
    def membership(self) -> Membership:
        return self._configs[-1][1]

    @property
    def is_voter(self) -> bool:
        return self._id in self._configs[-1][1].voters

    @property
    def config(self) -> RaftConfig:
        return self._config

    @property
    def transferee(self) -> str:
        return self._transferee

    def incarnation_of(self, node_id: str) -> str:
        """The incarnation the newest configuration naming ``node_id`` records for it ("" if
        none): a member whose removal is appended but not committed is still that life."""
        for _, membership in reversed(self._configs):
            incarnation = membership.incarnations.get(node_id)
            if incarnation:
                return incarnation
        return ""

    def entry_term(self, index: int) -> int | None:
        """Term of the entry at ``index`` (None if compacted or beyond the end)."""
        return self._log.term(index)

    def entries(self, lo: int, hi: int) -> list[Entry]:
        """Entries lo..hi clipped to what the log holds (for inspection and checkers)."""
        lo = max(lo, self._log.first_index)
        hi = min(hi, self._log.last_index)
        return self._log.slice(lo, hi) if lo <= hi else []

    def match_index(self, node_id: str) -> int:
        if self._role != LEADER:
            raise NotLeaderError(self._leader_id)
        if node_id == self._id:
            return self._stable
        pr = self._progress.get(node_id)
        return pr.match if pr is not None else 0

    def last_contact_ticks(self, node_id: str) -> int | None:
        if self._role != LEADER:
            return None
        if node_id == self._id:
            return 0
        pr = self._progress.get(node_id)
        if pr is None or pr.last_heard == 0:
            return None
        return self._ticks - pr.last_heard

    # ------------------------------------------------------------------ inputs
    def tick(self) -> None:
        self._ticks += 1
        self._election_elapsed += 1
        if self._role == LEADER:
            self._tick_leader()
            return
        if not self._may_campaign():
            return
        voters = self._configs[-1][1].voters
        if self._election_elapsed >= self._randomized_timeout or (len(voters) == 1 and self._id in voters):
            self._campaign(pre=self._config.pre_vote)

    @property
    def leader_silence_ticks(self) -> int | None:
        """Ticks since this follower last heard its leader (None: it knows none, or leads)."""
        if self._role == LEADER or not self._leader_id:
            return None
        return self._election_elapsed

    def ticks_until_due(self) -> int | None:
        """How many more ``tick()`` calls until one does more than count: a leader's heartbeat
        or CheckQuorum round, a follower's or candidate's election timeout (None: never, for a
        node that may not campaign). The ticks before it change nothing but counters that only
        later inputs read, so a host may owe them and pay them in one go, before the next
        input or when this many are owed (``tick`` that many times): an idle follower then
        wakes at its election deadline instead of every tick. Meaningful until the next input."""
        if self._role == LEADER:
            cfg = self._config
            beat = cfg.heartbeat_ticks - self._heartbeat_elapsed
            return max(1, min(beat, cfg.election_ticks - self._election_elapsed))
        if not self._may_campaign():
            return None
        voters = self._configs[-1][1].voters
        if len(voters) == 1 and self._id in voters:
            return 1
        return max(1, self._randomized_timeout - self._election_elapsed)

    def _may_campaign(self) -> bool:
        """A voter of the latest configuration may campaign; so may a voter of the latest
        *committed* one whose removal is still uncommitted: it may hold the only up-to-date
        log (a leader that appended its own removal and lost leadership), and without it the
        cluster could deadlock. Votes are always counted in the latest configuration."""
        if self._id in self._configs[-1][1].voters:
            return True
        for index, membership in reversed(self._configs):
            if index <= self._commit:
                return self._id in membership.voters
        return False

    def _tick_leader(self) -> None:
        cfg = self._config
        if self._election_elapsed >= cfg.election_ticks:
            self._election_elapsed = 0
            if cfg.check_quorum and not self._quorum_active():
                self._become_follower(self._term, "")
                return
            self._transferee = ""  # a transfer that did not finish within a timeout is abandoned
        self._heartbeat_elapsed += 1
        if self._heartbeat_elapsed >= cfg.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            seq = self._pending_reads[-1].seq if self._pending_reads else 0
            self._bcast_heartbeat(seq)
            for peer, pr in self._progress.items():
                if pr.state == _SNAPSHOT:
                    pr.snapshot_wait += 1
                    if pr.snapshot_wait * cfg.heartbeat_ticks > 2 * cfg.election_ticks:
                        pr.become_probe()  # the snapshot or its answer was lost: resend
                        self._dirty[peer] = True

    def step(self, msg: Message) -> None:
        if msg.dst != self._id or msg.src == self._id:
            return
        term = msg.term
        if term > self._term:
            if isinstance(msg, RequestVote):
                in_lease = (
                    self._config.check_quorum
                    and self._leader_id != ""
                    and self._election_elapsed < self._config.election_ticks
                )
                if in_lease and not msg.transfer:
                    return  # a leader is alive: do not let a disruptive node depose it
                if not msg.pre_vote:
                    self._become_follower(term, "")
            elif isinstance(msg, VoteResponse) and msg.pre_vote and msg.granted:
                pass  # a granted pre-vote carries the term we would campaign at
            elif isinstance(msg, AppendEntries | Heartbeat | InstallSnapshot):
                self._become_follower(term, msg.src)
            else:
                self._become_follower(term, "")
        elif term < self._term:
            if isinstance(msg, AppendEntries | Heartbeat):
                # Tell a stale leader about the newer term so it steps down (needed with
                # CheckQuorum/PreVote, where our term might otherwise never reach it).
                self._send(HeartbeatResponse(self._id, msg.src, self._term))
            elif isinstance(msg, RequestVote) and msg.pre_vote:
                self._send(VoteResponse(self._id, msg.src, self._term, False, True))
            return

        if isinstance(msg, AppendResponse):
            if self._role == LEADER:
                self._on_append_response(msg)
        elif isinstance(msg, AppendEntries):
            if self._accept_leader(msg.src):
                self._on_append(msg)
        elif isinstance(msg, HeartbeatResponse):
            if self._role == LEADER:
                self._on_heartbeat_response(msg)
        elif isinstance(msg, Heartbeat):
            if self._accept_leader(msg.src):
                self._on_heartbeat(msg)
        elif isinstance(msg, RequestVote):
            self._on_vote_request(msg)
        elif isinstance(msg, VoteResponse):
            self._on_vote_response(msg)
        elif isinstance(msg, InstallSnapshot):
            if self._accept_leader(msg.src):
                self._on_install_snapshot(msg)
        elif isinstance(msg, InstallSnapshotResponse):
            if self._role == LEADER:
                self._on_snapshot_response(msg)
        elif (
            isinstance(msg, TimeoutNow)
            and self._role != LEADER
            and self._may_campaign()
            and msg.src == self._leader_id
        ):
            self._campaign(pre=False, transfer=True)

    def _accept_leader(self, src: str) -> bool:
        """A message from this term's leader: follow it and restart the election timer."""
        if self._role == LEADER:
            return False  # two leaders in one term cannot happen; ignore rather than crash
        if self._role != FOLLOWER or self._leader_id != src:
            self._become_follower(self._term, src)
        self._election_elapsed = 0
        return True

    def propose(self, data: bytes) -> int:
        return self.propose_batch([data])[0]

    def propose_batch(self, items: list[bytes]) -> list[int]:
        self._require_leader()
        start = self._log.last_index + 1
        term = self._term
        self._log.append([Entry(start + i, term, _NORMAL, data) for i, data in enumerate(items)], items)
        self._mark_all_dirty(False)
        return list(range(start, start + len(items)))

    # Configuration changes: one at a time, each the whole new Membership (cluster_id carried
    # forward by msgspec.structs.replace); each returns the index of its entry.
    def add_non_voter(self, node_id: str, address: str, incarnation: str = "") -> int:
        """Add ``node_id`` as a non-voter; ``incarnation`` ("" = unknown) identifies the life of
        its data dir, so a message from an earlier life of the same id can be told apart."""
        self._require_conf_change()
        current = self.membership
        if node_id in current.voters or node_id in current.non_voters:
            raise ValueError(f"{node_id} is already a member")
        incarnations = {k: v for k, v in current.incarnations.items() if k != node_id}
        if incarnation:
            incarnations[node_id] = incarnation
        return self._append_config(
            msgspec.structs.replace(
                current,
                non_voters={**current.non_voters, node_id: address},
                incarnations=incarnations,
            )
        )

    def promote(self, node_id: str) -> int:
        self._require_conf_change()
        current = self.membership
        if node_id not in current.non_voters:
            raise ValueError(f"{node_id} is not a non-voter")
        non_voters = dict(current.non_voters)
        address = non_voters.pop(node_id)
        return self._append_config(
            msgspec.structs.replace(
                current, voters={**current.voters, node_id: address}, non_voters=non_voters
            )
        )

    def remove(self, node_id: str) -> int:
        self._require_conf_change()
        current = self.membership
        voters = dict(current.voters)
        non_voters = dict(current.non_voters)
        if node_id in voters:
            if len(voters) == 1:
                raise ValueError("cannot remove the last voter")
            del voters[node_id]
        elif node_id in non_voters:
            del non_voters[node_id]
        else:
            raise ValueError(f"{node_id} is not a member")
        incarnations = {k: v for k, v in current.incarnations.items() if k != node_id}
        return self._append_config(
            msgspec.structs.replace(current, voters=voters, non_voters=non_voters, incarnations=incarnations)
        )

    def update_address(self, node_id: str, address: str) -> int:
        """Re-address a member (it came back elsewhere): same voters and non-voters, same
        incarnation, only its Raft address changes."""
        self._require_conf_change()
        current = self.membership
        if node_id in current.voters:
            group, name = current.voters, "voters"
        elif node_id in current.non_voters:
            group, name = current.non_voters, "non_voters"
        else:
            raise ValueError(f"update_address: {node_id} is not a member")
        if not address:
            raise ValueError(f"update_address: empty address for {node_id}")
        if group[node_id] == address:
            raise ValueError(f"update_address: {node_id} already has address {address}")
        changed = {**group, node_id: address}
        return self._append_config(msgspec.structs.replace(current, **{name: changed}))

    def read_index(self, context: bytes) -> None:
        if self._role != LEADER:
            raise NotLeaderError(self._leader_id)
        if self._log.term(self._commit) != self._term:
            # The commit index is only known to be current once an entry of this term commits.
            self._reads_before_commit.append(context)
            return
        self._start_read(context)

    def transfer_leadership(self, target: str | None = None) -> None:
        if self._role != LEADER:
            raise NotLeaderError(self._leader_id)
        voters = self.membership.voters
        if target is None:
            candidates = sorted(v for v in voters if v != self._id and v in self._progress)
            if not candidates:
                raise ValueError("no other voter to transfer leadership to")
            target = max(candidates, key=lambda v: self._progress[v].match)
        elif target == self._id:
            return
        elif target not in voters or target not in self._progress:
            raise ValueError(f"{target} is not a voter")
        self._transferee = target
        self._election_elapsed = 0  # the transfer is abandoned after one election timeout
        if self._progress[target].match == self._log.last_index:
            self._send(TimeoutNow(self._id, target, self._term))
        else:
            self._dirty[target] = True

    def snapshot_meta(self, index: int) -> SnapshotMeta:
        """Term and membership at ``index`` (snapshot_index <= index <= applied_index): what a
        snapshot of the FSM as of ``index``, taken off the Raft thread, must carry."""
        if not self._log.snapshot_index <= index <= self._applied:
            raise ValueError(
                f"snapshot_meta({index}): index must lie in [{self._log.snapshot_index}, {self._applied}]"
                " (snapshot index, applied index)"
            )
        term = self._log.term(index)
        assert term is not None, "entries from the snapshot index on are always held"
        return SnapshotMeta(index, term, self._membership_at(index))

    def _membership_at(self, index: int) -> Membership:
        membership = self._configs[0][1]
        for idx, m in self._configs:
            if idx > index:
                break
            membership = m
        return membership

    def compact(self, index: int, data: bytes) -> Snapshot:
        """Make ``data`` (the FSM as of ``index``) the snapshot; the log keeps up to
        ``trailing_entries`` entries behind it (see ``log_first_index``)."""
        if index > self._applied:
            raise ValueError(f"compact({index}) beyond the applied index {self._applied}")
        if index <= self._log.snapshot_index:
            raise ValueError(f"compact({index}) at or below the snapshot index {self._log.snapshot_index}")
        membership = self._membership_at(index)
        term = self._log.compact(index, self._trailing_behind(index))
        self._configs = [(index, membership), *[c for c in self._configs if c[0] > index]]
        snap = Snapshot(SnapshotMeta(index, term, membership), data)
        self._snapshot = snap
        return snap

    def _trailing_behind(self, index: int) -> int:
        """How many entries up to ``index`` to keep: ``trailing_entries``, fewer if their data
        would pass ``trailing_bytes``."""
        keep = self._config.trailing_entries
        budget = self._config.trailing_bytes
        if not budget:
            return keep
        lowest = max(index - keep + 1, self._log.offset + 1)
        total = 0
        for k, size in enumerate(reversed(self._log.data_sizes(lowest, index))):
            total += size
            if total > budget:
                return k
        return keep

    def snapshot_progress(self, peer: str) -> None:
        """A chunk of the snapshot streamed to ``peer`` was acknowledged: the transfer is
        alive, so restart the wait that would otherwise give up on it."""
        pr = self._progress.get(peer) if self._role == LEADER else None
        if pr is not None and pr.state == _SNAPSHOT:
            pr.snapshot_wait = 0
            self._heard_from(pr)

    def snapshot_failed(self, peer: str) -> None:
        """The stream to ``peer`` gave up: leave SNAPSHOT state and probe from its match index
        (the next append finds what it needs, a snapshot again if it is still too far behind)."""
        pr = self._progress.get(peer) if self._role == LEADER else None
        if pr is not None and pr.state == _SNAPSHOT:
            pr.snapshot_index = 0  # not installed: probe from the match, not after the snapshot
            pr.become_probe()
            self._dirty[peer] = True

    # ------------------------------------------------------------------ outputs
    def has_ready(self) -> bool:
        if self._msgs or self._dirty or self._read_heartbeat or self._pending_snapshot is not None:
            return True
        if self._log.last_index > self._handed or self._read_states or self._failed_reads:
            return True
        if min(self._commit, self._log.last_index) > self._apply_handed:
            return True
        hs = self._prev_hs
        return hs.term != self._term or hs.vote != self._vote or hs.commit != self._commit

    def ready(self) -> Ready:
        if self._role == LEADER:
            self._flush()
        else:
            self._dirty = {}
            self._read_heartbeat = False
        log = self._log
        last = log.last_index
        entries = log.slice(self._handed + 1, last) if last > self._handed else []
        self._handed = last
        hs: HardState | None = None
        prev = self._prev_hs
        if prev.term != self._term or prev.vote != self._vote or prev.commit != self._commit:
            hs = HardState(self._term, self._vote, self._commit)
            self._prev_hs = hs
        hi = min(self._commit, last)
        committed: list[Entry] = []
        if hi > self._apply_handed:
            committed = log.slice(self._apply_handed + 1, hi)
            self._apply_handed = hi
        ready = Ready(
            hs, entries, self._pending_snapshot, self._msgs, committed, self._read_states, self._failed_reads
        )
        self._pending_snapshot = None
        self._msgs = []
        if self._read_states:
            self._read_states = []
        if self._failed_reads:
            self._failed_reads = []
        return ready

    def advance(self, ready: Ready, *, written: bool = True) -> None:
        """The shell is done with ``ready``. ``written=False``: its entries (and hard state) were
        handed to a writer rather than written, and count as this node's own copies only once
        ``persisted`` reports them durable (a leader writing behind its AppendEntries, as
        etcd's asynchronous storage writes do). Only a leader whose term and vote are durable
        may do that: followers acknowledge, and candidates ask for votes, after writing."""
        if ready.snapshot is not None:
            self._applied = max(self._applied, ready.snapshot.meta.index)
        if ready.entries and written:
            last = ready.entries[-1]
            self._mark_stable(last.index, last.term)
        if ready.committed:
            self._applied = max(self._applied, ready.committed[-1].index)
        if self._role == LEADER:
            self._maybe_commit()
        keep = self._config.memory_entries
        if keep:
            # In batches of an eighth of the window, so the list is shifted now and then only.
            upto = min(self._stable, self._applied) - keep
            if upto - self._log.hot_offset >= max(1, keep >> 3):
                self._log.make_cold(upto)

    def persisted(self, index: int, term: int) -> None:
        """Entries up to ``index`` (the last of them of ``term``), handed in a Ready advanced with
        ``written=False``, are durable now. Nothing happens if that entry was truncated (or
        compacted) meanwhile; a leader may commit what a quorum now holds."""
        if self._mark_stable(index, term) and self._role == LEADER:
            self._maybe_commit()

    def _mark_stable(self, index: int, term: int) -> bool:
        # Same index and term means the same entry and prefix (log matching), so nothing
        # written up to it was truncated since it was handed out.
        if index > self._stable and self._log.term(index) == term:
            self._stable = index
            return True
        return False

    @property
    def stable_index(self) -> int:
        """Entries up to here are durable in this node's store (its own match as a leader)."""
        return self._stable

    # ------------------------------------------------------------------ roles
    def _reset_randomized_timeout(self) -> None:
        e = self._config.election_ticks
        self._randomized_timeout = e + self._rng.randrange(e)

    def _become_follower(self, term: int, leader: str) -> None:
        if self._role == LEADER:
            self._fail_reads()
        if term != self._term:
            self._term = term
            self._vote = ""
        self._role = FOLLOWER
        self._leader_id = leader
        self._election_elapsed = 0
        self._reset_randomized_timeout()
        self._votes = {}
        self._progress = {}
        self._dirty = {}
        self._transferee = ""
        self._read_heartbeat = False

    def _fail_reads(self) -> None:
        self._failed_reads.extend(r.context for r in self._pending_reads)
        self._failed_reads.extend(self._reads_before_commit)
        self._pending_reads.clear()
        self._reads_before_commit = []

    def _campaign(self, pre: bool, transfer: bool = False) -> None:
        if pre:
            self._role = PRECANDIDATE
            vote_term = self._term + 1
        else:
            self._term += 1
            self._vote = self._id
            self._role = CANDIDATE
            vote_term = self._term
        self._leader_id = ""
        self._election_elapsed = 0
        self._reset_randomized_timeout()
        self._votes = {self._id: True}
        voters = self.membership.voters
        if len(voters) == 1 and self._id in voters:
            if pre:
                self._campaign(pre=False)
            else:
                self._become_leader()
            return
        last_index = self._log.last_index
        last_term = self._log.last_term
        for peer in voters:
            if peer != self._id:
                self._send(RequestVote(self._id, peer, vote_term, last_index, last_term, pre, transfer))

    def _become_leader(self) -> None:
        self._role = LEADER
        self._leader_id = self._id
        self._votes = {}
        self._transferee = ""
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        next_index = self._log.last_index + 1
        self._progress = {p: Progress(next_index) for p in self.membership.all_ids() if p != self._id}
        # A no-op of this term lets entries of earlier terms commit (Figure 8), and lets
        # ReadIndex learn the current commit index.
        self._log.append([Entry(next_index, self._term, _NOOP, b"")])
        self._mark_all_dirty(True)

    # ------------------------------------------------------------------ elections
    def _on_vote_request(self, msg: RequestVote) -> None:
        log = self._log
        up_to_date = msg.last_log_term > log.last_term or (
            msg.last_log_term == log.last_term and msg.last_log_index >= log.last_index
        )
        can_vote = (
            self._vote == msg.src
            or (self._vote == "" and self._leader_id == "")
            or (msg.pre_vote and msg.term > self._term)
        )
        if can_vote and up_to_date:
            self._send(VoteResponse(self._id, msg.src, msg.term, True, msg.pre_vote))
            if not msg.pre_vote:
                self._vote = msg.src
                self._election_elapsed = 0
        else:
            self._send(VoteResponse(self._id, msg.src, self._term, False, msg.pre_vote))

    def _on_vote_response(self, msg: VoteResponse) -> None:
        if msg.pre_vote != (self._role == PRECANDIDATE) or self._role not in (PRECANDIDATE, CANDIDATE):
            return
        voters = self.membership.voters
        if msg.src not in voters:
            return
        self._votes[msg.src] = msg.granted
        granted = sum(1 for v in voters if self._votes.get(v) is True)
        rejected = sum(1 for v in voters if self._votes.get(v) is False)
        quorum = len(voters) // 2 + 1
        if granted >= quorum:
            if self._role == PRECANDIDATE:
                self._campaign(pre=False)
            else:
                self._become_leader()
        elif rejected >= quorum:
            self._become_follower(self._term, "")

    # ------------------------------------------------------------------ follower side
    def _on_append(self, msg: AppendEntries) -> None:
        log = self._log
        prev = msg.prev_index
        entries = msg.entries
        n = len(entries)
        if prev < 0 or (n and (entries[0].index != prev + 1 or entries[-1].index != prev + n)):
            return  # malformed: ignore
        last_new = prev + n
        commit = self._commit
        if prev < commit:
            # Entries up to our commit index are committed, hence identical to the leader's.
            skip = commit - prev
            entries = entries[skip:] if skip < n else []
            prev = commit
        else:
            term = log.term(prev)
            if term != msg.prev_term:
                last = log.last_index
                if term is None:
                    hint_term, hint_index = 0, last + 1
                else:
                    hint_term, hint_index = term, log.first_index_of_term(prev)
                self._send(
                    AppendResponse(
                        self._id, msg.src, self._term, False, msg.prev_index, hint_term, hint_index
                    )
                )
                return
        if entries:
            last = log.last_index
            first = entries[0].index
            if first == last + 1:
                self._append_follower(entries)
            else:
                # Skip the prefix we already hold; truncate at the first conflict.
                i = 0
                while i < len(entries) and entries[i].index <= last:
                    e = entries[i]
                    if log.term(e.index) != e.term:
                        self._truncate_from(e.index)
                        break
                    i += 1
                if i < len(entries):
                    self._append_follower(entries[i:] if i else entries)
        if msg.leader_commit > self._commit:
            self._commit = max(self._commit, min(msg.leader_commit, last_new))
        self._send(AppendResponse(self._id, msg.src, self._term, True, max(last_new, self._commit)))

    def _append_follower(self, entries: list[Entry]) -> None:
        self._log.append(entries)
        for e in entries:
            if e.kind == _CONFIG:
                self._configs.append((e.index, decode_membership(e.data)))

    def _truncate_from(self, index: int) -> None:
        assert index > self._commit, "never truncate a committed entry"
        self._log.truncate_from(index)
        # A configuration takes effect on append, so it is reverted when its entry goes.
        while self._configs[-1][0] >= index:
            self._configs.pop()
        if self._handed >= index:
            self._handed = index - 1
        if self._stable >= index:
            self._stable = index - 1

    def _on_heartbeat(self, msg: Heartbeat) -> None:
        commit = min(msg.commit, self._log.last_index)
        if commit > self._commit:
            self._commit = commit
        if msg.ack or msg.read_seq:
            self._send(HeartbeatResponse(self._id, msg.src, self._term, msg.read_seq))

    def _on_install_snapshot(self, msg: InstallSnapshot) -> None:
        snap = msg.snapshot
        index = snap.meta.index
        if index <= self._commit:
            self._send(InstallSnapshotResponse(self._id, msg.src, self._term, self._commit))
            return
        if self._log.term(index) == snap.meta.term:
            # We already hold that entry: the entries up to it are the leader's, just commit.
            self._commit = index
            self._send(InstallSnapshotResponse(self._id, msg.src, self._term, index))
            return
        self._log.reset(index, snap.meta.term)
        self._configs = [(index, snap.meta.membership)]
        self._commit = index
        self._handed = self._stable = index
        self._apply_handed = index
        self._snapshot = snap
        self._pending_snapshot = snap
        self._send(InstallSnapshotResponse(self._id, msg.src, self._term, index))

    # ------------------------------------------------------------------ leader side
    def _require_leader(self) -> None:
        if self._role != LEADER:
            raise NotLeaderError(self._leader_id)
        if self._transferee:
            raise NotLeaderError(self._transferee)

    def _require_conf_change(self) -> None:
        self._require_leader()
        if self._configs[-1][0] > self._commit:
            raise ConfigChangeInProgress(f"configuration change at index {self._configs[-1][0]} pending")
        if self._log.term(self._commit) != self._term:
            # Ongaro's fix to single-server changes: a new leader must commit an entry of its
            # own term first, or two leaders' overlapping changes could elect disjoint quorums.
            raise ConfigChangeInProgress("the leader has not committed an entry in its term yet")

    def _append_config(self, membership: Membership) -> int:
        index = self._log.last_index + 1
        self._log.append([Entry(index, self._term, _CONFIG, encode_membership(membership))])
        self._configs.append((index, membership))
        for peer in membership.all_ids():
            if peer != self._id and peer not in self._progress:
                self._progress[peer] = Progress(index)
        # A removed server keeps receiving entries until its removal commits, so it learns
        # of it and stops campaigning (pruned in _maybe_commit).
        self._mark_all_dirty(False)
        self._maybe_commit()  # the quorum may have shrunk
        return index

    def _mark_all_dirty(self, send_if_empty: bool) -> None:
        dirty = self._dirty
        for peer in self._progress:
            if send_if_empty or peer not in dirty:
                dirty[peer] = send_if_empty or dirty.get(peer, False)

    def _flush(self) -> None:
        if self._read_heartbeat:
            self._read_heartbeat = False
            self._bcast_heartbeat(self._read_seq)
        if not self._dirty:
            return
        last = self._log.last_index
        progress = self._progress
        for peer, send_if_empty in self._dirty.items():
            pr = progress.get(peer)
            if pr is None:
                continue
            if pr.state == _REPLICATE:
                sent = False
                while pr.next <= last and self._send_append(peer, pr, False):
                    sent = True
                if not sent and send_if_empty:
                    self._send_append(peer, pr, True)
            else:
                self._send_append(peer, pr, send_if_empty)
        self._dirty = {}

    def _send_append(self, peer: str, pr: Progress, send_if_empty: bool) -> bool:
        state = pr.state
        if state == _SNAPSHOT or (state == _PROBE and pr.paused):
            return False
        cfg = self._config
        if state == _REPLICATE and pr.inflight_full(cfg.max_inflight, cfg.max_inflight_bytes):
            return False
        log = self._log
        prev = pr.next - 1
        prev_term = log.term(prev)
        if prev_term is None:
            # The follower needs an entry before the log's first index: only the snapshot has it.
            if self._snapshot is None or prev > log.last_index:
                return False
            self._send(InstallSnapshot(self._id, peer, self._term, self._snapshot))
            pr.become_snapshot(self._snapshot.meta.index)
            return True
        last = log.last_index
        if pr.next > last:
            if not send_if_empty:
                return False
            entries: list[Entry] = []
        else:
            hi, nbytes = log.limit_bytes(
                pr.next, min(last, prev + cfg.max_append_entries), cfg.max_size_per_msg
            )
            entries = log.slice(pr.next, hi)
            if state == _REPLICATE:
                pr.next = hi + 1
                pr.sent(hi, nbytes)
        if state == _PROBE:
            pr.paused = True
        self._send(AppendEntries(self._id, peer, self._term, prev, prev_term, entries, self._commit))
        return True

    def _bcast_heartbeat(self, read_seq: int) -> None:
        commit = self._commit
        for peer, pr in self._progress.items():
            ack = read_seq > 0 or self._wants_answer(pr)
            self._send(Heartbeat(self._id, peer, self._term, min(pr.match, commit), read_seq, ack))

    def _wants_answer(self, pr: Progress) -> bool:
        """Whether a heartbeat asks ``pr``'s follower to answer. An idle, caught-up follower
        heard from within half an election timeout need not: its answers only keep that
        contact fresh, and two thirds of them cost a round trip of wakeups on both sides for
        nothing. Asked again on every heartbeat while the contact is older, or not renewed
        since the last CheckQuorum round, so CheckQuorum still counts on an answer to any of
        the round's heartbeats, and a follower that is behind, paused or has appends in
        flight answers every one (the answer is what resends a lost append)."""
        return (
            not pr.recent_active
            or self._ticks - pr.last_heard >= self._config.election_ticks // 2
            or pr.state != _REPLICATE
            or pr.paused
            or bool(pr.inflight)
            or pr.match < self._log.last_index
        )

    def _heard_from(self, pr: Progress) -> None:
        pr.recent_active = True
        pr.last_heard = self._ticks

    def _on_append_response(self, msg: AppendResponse) -> None:
        pr = self._progress.get(msg.src)
        if pr is None:
            return
        self._heard_from(pr)
        if not msg.success:
            rejected = msg.index
            if pr.state == _REPLICATE:
                if rejected <= pr.match:
                    return  # stale
            elif pr.state == _PROBE:
                if rejected != pr.next - 1:
                    return  # stale
            else:
                return
            if msg.conflict_term > 0:
                index, term = self._log.last_index_of_term_at_most(msg.conflict_term, rejected)
                next_index = index + 1 if term == msg.conflict_term else msg.conflict_index
            else:
                next_index = msg.conflict_index
            pr.state = _PROBE
            pr.paused = False
            pr.clear_inflight()
            pr.next = max(min(next_index, rejected), pr.match + 1, 1)
            self._dirty[msg.src] = True
            return
        if pr.update(msg.index):
            if pr.state != _REPLICATE:
                pr.become_replicate()
            self._maybe_commit()
            if self._role != LEADER:
                return  # our own removal committed: we just stepped down
            if msg.src not in self._dirty:
                self._dirty[msg.src] = False
            if msg.src == self._transferee and pr.match == self._log.last_index:
                self._send(TimeoutNow(self._id, msg.src, self._term))
        elif pr.state == _PROBE:
            pr.paused = False
            self._dirty[msg.src] = True

    def _on_snapshot_response(self, msg: InstallSnapshotResponse) -> None:
        pr = self._progress.get(msg.src)
        if pr is None:
            return
        self._heard_from(pr)
        pr.update(msg.index)
        if pr.state == _SNAPSHOT:
            pr.become_replicate()
        self._maybe_commit()
        if self._role == LEADER:
            self._dirty[msg.src] = True

    def _on_heartbeat_response(self, msg: HeartbeatResponse) -> None:
        pr = self._progress.get(msg.src)
        if pr is None:
            return
        self._heard_from(pr)
        pr.paused = False
        cfg = self._config
        if pr.state == _REPLICATE and pr.inflight_full(cfg.max_inflight, cfg.max_inflight_bytes):
            pr.free_first()
        if msg.read_seq > pr.read_ack:
            pr.read_ack = msg.read_seq
            self._advance_reads()
        if pr.match < self._log.last_index:
            self._dirty[msg.src] = True

    def _quorum_active(self) -> bool:
        voters = self.membership.voters
        active = 1 if self._id in voters else 0
        for peer, pr in self._progress.items():
            if pr.recent_active and peer in voters:
                active += 1
            pr.recent_active = False
        return active >= len(voters) // 2 + 1

    def _maybe_commit(self) -> None:
        membership = self.membership
        voters = membership.voters
        matches = []
        for v in voters:
            if v == self._id:
                matches.append(self._stable)
            else:
                pr = self._progress.get(v)
                matches.append(pr.match if pr is not None else 0)
        matches.sort(reverse=True)
        candidate = matches[len(voters) // 2]
        if candidate <= self._commit or self._log.term(candidate) != self._term:
            return
        first_in_term = self._log.term(self._commit) != self._term
        self._commit = candidate
        self._mark_all_dirty(True)
        if first_in_term and self._reads_before_commit:
            waiting, self._reads_before_commit = self._reads_before_commit, []
            for context in waiting:
                self._start_read(context)
        if self._configs[-1][0] <= candidate and len(self._progress) > len(membership.all_ids()) - 1:
            for peer in [p for p in self._progress if p not in voters and p not in membership.non_voters]:
                # Last word to a removed server: the commit index, so it sees its removal
                # committed and stops campaigning (best effort; PreVote contains it anyway).
                pr = self._progress.pop(peer)
                self._dirty.pop(peer, None)
                self._send(Heartbeat(self._id, peer, self._term, min(pr.match, candidate)))
        if self._id not in voters and self._configs[-1][0] <= candidate:
            # Our own removal is committed: tell the others, hand over, and step down.
            self._flush()
            best = max(
                (p for p in self._progress if p in voters),
                key=lambda p: self._progress[p].match,
                default="",
            )
            if best and self._progress[best].match == self._log.last_index:
                self._send(TimeoutNow(self._id, best, self._term))
            self._become_follower(self._term, "")

    # ------------------------------------------------------------------ ReadIndex
    def _start_read(self, context: bytes) -> None:
        voters = self.membership.voters
        if len(voters) == 1 and self._id in voters:
            self._read_states.append(ReadState(self._commit, context))
            return
        self._read_seq += 1
        self._pending_reads.append(_PendingRead(self._read_seq, self._commit, context))
        self._read_heartbeat = True

    def _advance_reads(self) -> None:
        voters = self.membership.voters
        quorum = len(voters) // 2 + 1
        pending = self._pending_reads
        while pending:
            seq = pending[0].seq
            acks = 1 if self._id in voters else 0
            for peer, pr in self._progress.items():
                if pr.read_ack >= seq and peer in voters:
                    acks += 1
            if acks < quorum:
                return
            read = pending.popleft()
            self._read_states.append(ReadState(read.index, read.context))

    def _send(self, msg: Message) -> None:
        self._msgs.append(msg)


def _log_from_store(snap: Snapshot | None, stored: list[Entry]) -> RaftLog:
    """The in-memory log for what a store loaded: the snapshot (if any) plus the stored
    entries, which may start at or before the snapshot's index + 1 (trailing entries kept
    behind a local snapshot). Entries that end before the snapshot, or that disagree with it,
    are dropped: the snapshot sums up everything up to its index."""
    snap_index, snap_term = (snap.meta.index, snap.meta.term) if snap is not None else (0, 0)
    if not stored:
        return RaftLog(snap_index, snap_term, [])
    first = stored[0].index
    if stored[-1].index != first + len(stored) - 1:
        raise StoreCorruptError(
            f"stored entries are not contiguous: {len(stored)} entries from {first} to {stored[-1].index}"
        )
    if first > snap_index + 1 or first < 1:
        raise StoreCorruptError(
            f"stored entries start at {first}: a gap after the snapshot index {snap_index}, or no such index"
        )
    last = stored[-1].index
    if last < snap_index or (last >= snap_index > first - 1 and stored[snap_index - first].term != snap_term):
        return RaftLog(snap_index, snap_term, [])
    if first - 1 == snap_index:
        return RaftLog(snap_index, snap_term, list(stored))
    # The term of the entry just before the first one is unknown: the first entry becomes the
    # anchor (offset) and the log holds what follows it.
    return RaftLog(snap_index, snap_term, stored[1:], offset=first, offset_term=stored[0].term)
