"""The wire messages of the worker feed (issue 20): a worker's watch and a Raft member's answer.

Members beyond the Raft configuration's cap are *workers*: they hold no replica of the log.
A worker watches one Raft member (voter or standby, any node holding the FSM) for what
concerns it, resumable by index (``orion.cluster.worker_feed`` is the member's side of it).
They travel on the peer transport's FEED channel:

- ``FeedWatch``: "answer me about ``node_id`` when anything of it changed after ``since``, or
  after ``wait_ms`` at the latest"; ``since`` 0 asks for everything at once.
- ``FeedAnswer``: level-triggered. With ``changed`` it carries the node's whole task list and
  the ids of tasks holding ports on it, at the member's applied ``index``; without it, nothing
  changed (keep what you hold), and the answer is only a sign of life. Either way it carries
  the cluster facts a worker needs to act without a replica: the cluster id, the leader and
  its Raft address (where writes go), the Raft members that can serve the feed, and whether
  the node is itself in the configuration now (``member``: it is replicating, or about to;
  it stops watching once its own replica has the configuration). With ``changed`` it also
  carries the volume records the node needs to start and audit its tasks' volumes (those its
  tasks mount, and those whose data lives on it): a worker has no volumes table of its own.
- ``FeedRedirect``: the node asked holds no replica (it is a worker itself, or still empty):
  here are the members it knows (possibly none: ask someone else).

Decoding is bounded and typed: a malformed or oversized frame raises ``msgspec.DecodeError``
or ``msgspec.ValidationError`` naming the field, and the receiver drops it. New fields go last
with a default, and trailing fields a receiver does not know are ignored (no
``forbid_unknown_fields``): members and workers of different versions understand each other
during a rolling upgrade, in either direction.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from orion.codec import bounded_decode
from orion.model import Task
from orion.volumes.spec import Volume

MAX_FEED_FRAME = 8 * 1024 * 1024  # a node's whole task list: thousands of tasks fit
MAX_WAIT_MS = 120_000
NodeId = Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
Address = Annotated[str, msgspec.Meta(max_length=300)]
Index = Annotated[int, msgspec.Meta(ge=0)]


class FeedWatch(msgspec.Struct, tag="watch", array_like=True, frozen=True):
    node_id: NodeId
    origin: Address  # the worker's peer address: where the answer goes
    since: Index  # the index of the last answer the worker holds (0: none)
    wait_ms: Annotated[int, msgspec.Meta(ge=0, le=MAX_WAIT_MS)]  # 0: answer at once


class FeedAnswer(msgspec.Struct, tag="answer", array_like=True, frozen=True):
    node_id: NodeId
    index: Index  # the member's applied index: the worker's next ``since``
    changed: bool
    tasks: list[Task] = []  # with ``changed``: every task on the node
    held_ports: list[str] = []  # with ``changed``: ids of tasks holding host ports on the node
    cluster_id: str = ""
    leader_id: str = ""
    leader_address: Address = ""  # the leader's Raft address ("" while none is known)
    servers: list[Address] = []  # Raft addresses of the members that serve the feed
    member: bool = False  # the node is in the Raft configuration
    # With ``changed``: the volumes the node's tasks mount and those whose data lives on it.
    # Last, with a default: a frame from a member that predates it decodes (as no volumes).
    volumes: list[Volume] = []


class FeedRedirect(msgspec.Struct, tag="redirect", array_like=True, frozen=True):
    node_id: NodeId
    servers: list[Address] = []
    reason: str = ""


FeedMessage = FeedWatch | FeedAnswer | FeedRedirect

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(FeedMessage)


def encode_feed(message: FeedMessage) -> bytes:
    return _encoder.encode(message)


def decode_feed(payload: bytes) -> FeedMessage:
    return bounded_decode(_decoder, payload, MAX_FEED_FRAME, "feed frame")
