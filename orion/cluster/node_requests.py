"""Requests only one node can serve (a task's container logs), on the peer transport's NODE channel.

The node a client asked finds which node runs the task and sends it the client's request,
encoded as the API encodes it; that node answers with the API reply, encoded likewise. Both
travel over the cluster's CURVE-protected peer transport, so the request was already
authorized by the node the client reached. A lost frame ends as a timeout for the client,
whose next request (a cursor) simply asks again.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from orion.codec import bounded_decode

MAX_NODE_FRAME = 2 * 1024 * 1024  # a log chunk is at most 1 MiB (protocol.MAX_LOG_CHUNK)
ReqId = Annotated[int, msgspec.Meta(ge=0)]
Address = Annotated[str, msgspec.Meta(max_length=300)]


class NodeAsk(msgspec.Struct, tag="ask", array_like=True, frozen=True):
    req_id: ReqId
    origin: Address  # the asking node's Raft address, where the answer goes
    task_id: Annotated[str, msgspec.Meta(max_length=128)]
    request: bytes  # an encoded api.Request


class NodeAnswer(msgspec.Struct, tag="answer", array_like=True, frozen=True):
    req_id: ReqId
    reply: bytes  # an encoded api.Reply


NodeMessage = NodeAsk | NodeAnswer

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(NodeMessage)


def encode_node_message(message: NodeMessage) -> bytes:
    return _encoder.encode(message)


def decode_node_message(buf: bytes) -> NodeMessage:
    return bounded_decode(_decoder, buf, MAX_NODE_FRAME, "node frame")
