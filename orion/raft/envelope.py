"""The frame every Raft message travels in: who the sender and the addressee are, as lives.

A node id alone does not say which *life* of a node speaks: a node whose data dir was lost
comes back with the same id and an empty log, and if the others took its answers for the old
node's, a committed entry could be lost (it forgot what it acknowledged) or a vote cast twice.
So each frame names the cluster (``Membership.cluster_id``, made at bootstrap and replicated in
every configuration) and both incarnations (made when a data dir is created, recorded per
member in ``Membership.incarnations``). ``RaftShell.receive`` drops frames that do not match.
"""

from __future__ import annotations

import msgspec

from orion.codec import bounded_decode
from orion.raft.messages import MAX_MESSAGE_BYTES, Message
from orion.raft.snapshot_stream import SnapshotAck, SnapshotChunk

Body = Message | SnapshotChunk | SnapshotAck


class Envelope(msgspec.Struct, array_like=True, frozen=True):
    cluster: str  # the sender's cluster id ("" while it has none: a node waiting to be added)
    src_incarnation: str
    dst_incarnation: str  # what the sender believes the addressee's incarnation is ("" = unknown)
    body: Body


_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Envelope] = msgspec.msgpack.Decoder(Envelope)


def encode_envelope(envelope: Envelope) -> bytes:
    return _encoder.encode(envelope)


def decode_envelope(buf: bytes) -> Envelope:
    """Decode and validate one frame; raises msgspec.DecodeError / ValidationError on garbage."""
    envelope = bounded_decode(_decoder, buf, MAX_MESSAGE_BYTES, "raft frame")
    body = envelope.body
    if body.term < 0 or not body.src or not body.dst:
        raise msgspec.ValidationError("raft message with negative term or empty src/dst")
    return envelope
