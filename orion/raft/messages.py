"""Raft RPCs as one tagged union of msgspec Structs, encoded as MessagePack.

Every message names its sender (``src``), its addressee (``dst``) and the sender's ``term``.
Structs are ``array_like`` (positional on the wire: smaller and faster) and tagged by a short
integer so ``decode_message`` can validate any of them in one pass.
"""

from __future__ import annotations

import msgspec

from orion.codec import bounded_decode
from orion.raft.types import Entry, Snapshot

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a whole snapshot travels in one InstallSnapshot


class RequestVote(msgspec.Struct, tag=1, array_like=True, frozen=True):
    """A (pre-)vote request. A pre-vote carries the term the sender *would* campaign at, and
    changes nobody's term; ``transfer`` marks a campaign started by TimeoutNow, which voters
    honour even while they believe a leader is alive."""

    src: str
    dst: str
    term: int
    last_log_index: int
    last_log_term: int
    pre_vote: bool = False
    transfer: bool = False


class VoteResponse(msgspec.Struct, tag=2, array_like=True, frozen=True):
    src: str
    dst: str
    term: int
    granted: bool
    pre_vote: bool = False


class AppendEntries(msgspec.Struct, tag=3, array_like=True, frozen=True):
    src: str
    dst: str
    term: int
    prev_index: int
    prev_term: int
    entries: list[Entry]
    leader_commit: int


class AppendResponse(msgspec.Struct, tag=4, array_like=True, frozen=True):
    """``index`` is the follower's match index on success, or the rejected ``prev_index``.
    On reject, ``conflict_term``/``conflict_index`` let the leader skip a whole term at once
    (``conflict_term`` 0: the follower's log is simply shorter, resume at ``conflict_index``)."""

    src: str
    dst: str
    term: int
    success: bool
    index: int
    conflict_term: int = 0
    conflict_index: int = 0


class Heartbeat(msgspec.Struct, tag=5, array_like=True, frozen=True):
    """Leader liveness plus a safe commit index (min of the follower's match and the commit).
    ``read_seq`` > 0 asks the follower to confirm leadership for pending ReadIndex requests.
    ``ack``: answer with a HeartbeatResponse (a leader that heard from a caught-up follower
    recently asks for none; a sender that predates the field asks every time)."""

    src: str
    dst: str
    term: int
    commit: int
    read_seq: int = 0
    ack: bool = True


class HeartbeatResponse(msgspec.Struct, tag=6, array_like=True, frozen=True):
    src: str
    dst: str
    term: int
    read_seq: int = 0


class InstallSnapshot(msgspec.Struct, tag=7, array_like=True, frozen=True):
    """The whole snapshot, as the core emits it. The shell streams it in chunks
    (orion/raft/snapshot_stream.py) and never encodes it as one frame; a repeat of the same
    (dst, snapshot index, snapshot term) asks for the same snapshot again."""

    src: str
    dst: str
    term: int
    snapshot: Snapshot


class InstallSnapshotResponse(msgspec.Struct, tag=8, array_like=True, frozen=True):
    """``index``: the follower's match index after handling the snapshot."""

    src: str
    dst: str
    term: int
    index: int


class TimeoutNow(msgspec.Struct, tag=9, array_like=True, frozen=True):
    """Leadership transfer: the addressee campaigns at once, skipping PreVote and leases."""

    src: str
    dst: str
    term: int


Message = (
    RequestVote
    | VoteResponse
    | AppendEntries
    | AppendResponse
    | Heartbeat
    | HeartbeatResponse
    | InstallSnapshot
    | InstallSnapshotResponse
    | TimeoutNow
)

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)


def encode_message(msg: Message) -> bytes:
    return _encoder.encode(msg)


def decode_message(buf: bytes) -> Message:
    """Decode and validate one message; raises msgspec.DecodeError / ValidationError on garbage
    (including a negative index or term, which no honest peer sends)."""
    msg = bounded_decode(_decoder, buf, MAX_MESSAGE_BYTES, "raft message")
    if msg.term < 0 or not msg.src or not msg.dst:
        raise msgspec.ValidationError("raft message with negative term or empty src/dst")
    return msg
