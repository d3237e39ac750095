"""Gossip wire format: a tagged union of msgspec Structs, MessagePack encoded and validated on decode.

Every message names its sender's gossip address, so a reply needs no transport-level identity,
and its sender's cluster id (``cluster``, "" while the sender has not received the Raft
configuration), so a node can drop gossip from another cluster that shares the key. ``cluster`` is
the last field of every message: a decoder that predates it ignores the extra array element, and a
message from such a node decodes here with ``cluster = ""``, which every node accepts.
Updates (alive, suspect, dead) ride along on probes, acks and gossip messages ("piggybacking").
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from orion.codec import bounded_decode
from orion.model import NodeMeta, NodeStatus

MAX_MESSAGE_BYTES = 512 * 1024  # a push-pull of ~2000 members; everything else is far smaller
MAX_UPDATES = 512  # piggybacked updates per message
MAX_STATES = 4096  # members per push-pull

NodeId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Address = Annotated[str, msgspec.Meta(min_length=3, max_length=256, pattern=r"^[^\s:]+:\d{1,5}$")]
Incarnation = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
ClusterId = Annotated[str, msgspec.Meta(max_length=64, pattern=r"^[0-9A-Za-z_-]*$")]  # uuid4().hex


class Alive(msgspec.Struct, frozen=True, array_like=True, tag="alive"):
    node_id: NodeId
    incarnation: Incarnation
    meta: NodeMeta


class Suspect(msgspec.Struct, frozen=True, array_like=True, tag="suspect"):
    node_id: NodeId
    incarnation: Incarnation
    accuser: NodeId  # who suspects; confirmations from distinct accusers shorten the timeout


class Dead(msgspec.Struct, frozen=True, array_like=True, tag="dead"):
    node_id: NodeId
    incarnation: Incarnation
    accuser: NodeId
    left: bool = False  # a graceful leave, announced by the member itself


Update = Alive | Suspect | Dead
Updates = Annotated[list[Update], msgspec.Meta(max_length=MAX_UPDATES)]


class Ping(msgspec.Struct, frozen=True, array_like=True, tag="ping"):
    seq: Seq
    sender: Address
    target_id: NodeId  # a member restarted under another id at the same address must not ack
    updates: Updates = []
    cluster: ClusterId = ""


class Ack(msgspec.Struct, frozen=True, array_like=True, tag="ack"):
    seq: Seq
    sender: Address
    updates: Updates = []
    cluster: ClusterId = ""


class Nack(msgspec.Struct, frozen=True, array_like=True, tag="nack"):
    """Lifeguard: an indirect prober saying "I asked, no answer", so the requester knows it is not slow."""

    seq: Seq
    sender: Address
    cluster: ClusterId = ""


class PingReq(msgspec.Struct, frozen=True, array_like=True, tag="ping_req"):
    seq: Seq
    sender: Address
    target_id: NodeId
    target_address: Address
    want_nack: bool = False
    updates: Updates = []
    cluster: ClusterId = ""


class Gossip(msgspec.Struct, frozen=True, array_like=True, tag="gossip"):
    sender: Address
    updates: Updates = []
    cluster: ClusterId = ""


class MemberState(msgspec.Struct, frozen=True, array_like=True):
    node_id: NodeId
    incarnation: Incarnation
    status: NodeStatus  # encoded as its value ("alive", ...)
    meta: NodeMeta


class PushPull(msgspec.Struct, frozen=True, array_like=True, tag="push_pull"):
    """Full state exchange: on join (``join``) and periodically for anti-entropy."""

    sender: Address
    sender_id: NodeId
    states: Annotated[list[MemberState], msgspec.Meta(max_length=MAX_STATES)]
    join: bool = False
    reply: bool = False  # an answer; never answered again
    cluster: ClusterId = ""


GossipMessage = Ping | Ack | Nack | PingReq | Gossip | PushPull

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(GossipMessage)
_update_encoder = msgspec.msgpack.Encoder()


def encode_message(msg: GossipMessage) -> bytes:
    return _encoder.encode(msg)


def decode_message(buf: bytes | bytearray | memoryview) -> GossipMessage:
    """Parse and validate one message; garbage raises a msgspec error (DecodeError/ValidationError)."""
    return bounded_decode(_decoder, buf, MAX_MESSAGE_BYTES, "gossip message")


def encoded_size(update: Update) -> int:
    return len(_update_encoder.encode(update))
