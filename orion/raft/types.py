"""Values shared by the Raft core, its stores and its shell: log entries, hard state,
membership, snapshots, and the LogStore interface.

The core keeps the recent log in memory (compaction bounds it; older durable entries it may
read back with ``LogStore.read_entries``) and never writes to a store itself: it hands out
what must be persisted, and the shell (the Raft actor, or the simulator) writes it through a
``LogStore`` *before* sending messages or applying entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum, StrEnum
from typing import Protocol

import msgspec


class RaftRole(StrEnum):
    """A node's part in the Raft protocol; the values are what ``orion raft`` and the API show."""

    LEADER = "leader"
    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    PRECANDIDATE = "precandidate"  # polling for votes without raising its term (pre-vote)


class EntryKind(IntEnum):
    NORMAL = 0  # an opaque FSM command
    CONFIG = 1  # data is an encoded Membership: the whole new configuration
    NOOP = 2  # appended by a new leader to commit entries of earlier terms


class Entry(msgspec.Struct, array_like=True, frozen=True):
    index: int
    term: int
    kind: int = EntryKind.NORMAL
    data: bytes = b""


class HardState(msgspec.Struct, frozen=True):
    """What must be durable before a node answers: term, vote ("" = none), commit index."""

    term: int = 0
    vote: str = ""
    commit: int = 0


class Membership(msgspec.Struct, frozen=True):
    """A Raft configuration: node id -> Raft address ("host:port") for voters and non-voters.

    Addresses travel with the configuration so a node restarted alone still knows where its
    peers are before gossip has found them. ``cluster_id`` (made at bootstrap, "" for a legacy
    cluster) and ``incarnations`` (node id -> the incarnation of its data dir, recorded when
    it was added) travel with it too, so every holder of the log can tell this cluster and
    each member's current life apart from strangers and from a member's previous life.
    New fields have defaults: memberships encoded before they existed still decode.
    """

    voters: dict[str, str] = {}
    non_voters: dict[str, str] = {}
    cluster_id: str = ""
    incarnations: dict[str, str] = {}

    def all_ids(self) -> list[str]:
        return sorted({*self.voters, *self.non_voters})

    def address_of(self, node_id: str) -> str | None:
        return self.voters.get(node_id) or self.non_voters.get(node_id)


class SnapshotMeta(msgspec.Struct, frozen=True):
    index: int
    term: int
    membership: Membership


class Snapshot(msgspec.Struct, frozen=True):
    """FSM state as of ``meta.index``. ``data`` is opaque to Raft (the FSM encodes it as a
    ``TabularSnapshot`` so the DuckDB store can keep it as real tables)."""

    meta: SnapshotMeta
    data: bytes


class Table(msgspec.Struct, frozen=True):
    """One FSM table: column names, DuckDB column types (BIGINT, DOUBLE, VARCHAR, BLOB,
    BOOLEAN) and rows as lists of scalars in column order."""

    columns: list[str]
    types: list[str]
    rows: list[list[int | float | str | bytes | bool | None]]


class TabularSnapshot(msgspec.Struct, frozen=True):
    """The shape of ``Snapshot.data`` produced by Orion's FSM: named tables."""

    tables: dict[str, Table]


class StoredState(msgspec.Struct):
    """Everything a store holds, as read at start."""

    hard_state: HardState
    snapshot: Snapshot | None
    # Contiguous; starts at index 1 without a snapshot, else at or before snapshot index + 1
    # (entries kept behind a local snapshot: "trailing entries"), or is empty.
    entries: list[Entry]


class StoreCorruptError(RuntimeError):
    """The store's file is damaged or inconsistent; the node must refuse to start."""


class LogStore(Protocol):
    """Durable home of a Raft node's state. Every write method returns only once the write is
    durable (fsync'd), and is atomic: after a crash either all of it or none of it is there."""

    def load(self) -> StoredState:
        """Read everything at start; raise StoreCorruptError on damage, never repair silently."""
        ...

    def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        """One durable transaction (group commit): entries replace any stored entries with
        index >= entries[0].index (a follower truncating a conflicting suffix), then the hard
        state, if given, is stored."""
        ...

    def read_entries(self, lo: int, hi: int) -> list[Entry]:
        """The stored entries lo..hi (inclusive), in order; the caller asks only for entries it
        made durable here and that ``compact_log``, a truncation or a snapshot install has not
        dropped. Called on the Raft thread, beside a writer thread's ``save`` and a snapshot
        job's ``write_snapshot``."""
        ...

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Durably store a snapshot installed from the leader: drop log entries with index <=
        snapshot.meta.index and every entry that does not match the snapshot."""
        ...

    def write_snapshot(self, snapshot: Snapshot) -> None:
        """Durably store a locally taken snapshot without touching the log; safe to call from
        a background thread while the Raft thread calls ``save()``."""
        ...

    def compact_log(self, upto_index: int) -> None:
        """Drop stored log entries with index <= upto_index (the core's log_first_index - 1)."""
        ...

    def stored_snapshot(self) -> Snapshot | None:
        """The latest stored snapshot (None: none), its data readable for as long as the caller
        holds it, whatever the store writes meanwhile: the shell streams it to a lagging
        follower, so the core need not keep the bytes. Cheap enough for the Raft thread (the
        data may be a read-only mapping of a file rather than bytes in memory)."""
        ...

    def load_identity(self) -> str | None:
        """This data dir's incarnation, or None if none was saved yet."""
        ...

    def save_identity(self, incarnation: str) -> None:
        """Durably record this data dir's incarnation (made once, when the dir is created)."""
        ...

    def checkpoint(self) -> None:
        """Fold what the write-ahead log holds into the main file; may run on any thread. A store
        without a separate log (memory) has nothing to do."""
        ...

    def close(self) -> None: ...


def encode_membership(membership: Membership) -> bytes:
    return msgspec.msgpack.encode(membership)


def decode_membership(data: bytes) -> Membership:
    return msgspec.msgpack.decode(data, type=Membership)
