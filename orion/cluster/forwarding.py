"""Wire messages that carry a follower's writes and read-index requests to the leader.

Any node accepts any request: a follower forwards the encoded FSM command (or a request for
a read index) to the leader over the peer transport's FORWARD channel, and the leader answers
with the outcome once the entry is applied (or the read index once a quorum confirmed it).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from orion.codec import bounded_decode

MAX_FORWARD_FRAME = 4 * 1024 * 1024
ReqId = Annotated[int, msgspec.Meta(ge=0)]
Address = Annotated[str, msgspec.Meta(max_length=300)]


class ForwardPropose(msgspec.Struct, tag="propose", array_like=True, frozen=True):
    req_id: ReqId
    origin: Address  # the follower's Raft address, where the answer goes
    data: bytes


class ForwardReadIndex(msgspec.Struct, tag="read_index", array_like=True, frozen=True):
    req_id: ReqId
    origin: Address


class ForwardAnswer(msgspec.Struct, tag="answer", array_like=True, frozen=True):
    """``code`` is empty on success; ``not_leader`` means nothing was appended: retry elsewhere."""

    req_id: ReqId
    code: str = ""
    message: str = ""
    index: int = 0  # the applied index of a write, or the read index
    result: bytes = b""  # the FSM's result, encoded (a Task, or nothing)


ForwardMessage = ForwardPropose | ForwardReadIndex | ForwardAnswer

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(ForwardMessage)


def encode_forward(message: ForwardMessage) -> bytes:
    return _encoder.encode(message)


def decode_forward(buf: bytes) -> ForwardMessage:
    return bounded_decode(_decoder, buf, MAX_FORWARD_FRAME, "forward frame")
