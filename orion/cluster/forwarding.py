"""A follower's writes and read-index requests on their way to the leader, and their wire messages.

Any node accepts any request: a follower forwards the encoded FSM command (or a request for
a read index) to the leader over the peer transport's FORWARD channel, and the leader answers
with the outcome once the entry is applied (or the read index once a quorum confirmed it).
``Forwarder`` keeps what a follower sent and still waits for, and what it parked while no
leader (or no address for it) was known.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import msgspec

from orion.cluster.deadlines import pop_expired
from orion.cluster.outcome import Callback
from orion.codec import bounded_decode
from orion.fsm.results import AssignResult, ReportResults, TaskIds
from orion.fsm.tables import NodeRecord
from orion.model import Task
from orion.services.spec import Service

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
    result: bytes = b""  # the FSM's result, encoded (see ``encode_result``)
    result_kind: str = ""  # which record ``result`` holds: a key of RESULT_TYPES, "" = nothing


ForwardMessage = ForwardPropose | ForwardReadIndex | ForwardAnswer

# The records a write answers with (orion/fsm/results.py), by the name they travel under: a
# follower that forwarded the write hands its caller the same record the leader's caller gets.
RESULT_TYPES: dict[str, type] = {
    "task": Task,
    "service": Service,
    "node": NodeRecord,
    "task_ids": TaskIds,
    "assigned": AssignResult,
    "reports": ReportResults,
}
_KIND_OF = {cls: kind for kind, cls in RESULT_TYPES.items()}
_RESULT_DECODERS = {kind: msgspec.msgpack.Decoder(cls) for kind, cls in RESULT_TYPES.items()}

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(ForwardMessage)


def encode_result(value: Any) -> tuple[str, bytes]:
    """(kind, bytes) of a write's result; ("", b"") for nothing or a kind no caller reads."""
    kind = _KIND_OF.get(type(value), "")
    return (kind, _encoder.encode(value)) if kind else ("", b"")


def decode_result(kind: str, data: bytes) -> Any:
    """The record ``encode_result`` made; None for "" (raises msgspec.DecodeError if damaged)."""
    decoder = _RESULT_DECODERS.get(kind)
    return decoder.decode(data) if decoder is not None and data else None


def encode_forward(message: ForwardMessage) -> bytes:
    return _encoder.encode(message)


def decode_forward(buf: bytes) -> ForwardMessage:
    return bounded_decode(_decoder, buf, MAX_FORWARD_FRAME, "forward frame")


class RequestKind(StrEnum):
    PROPOSE = "propose"
    READ = "read"


@dataclass(slots=True)
class Remote:
    """A request that waits for a leader: a write (``data``) or a linearizable read (``query``)."""

    kind: RequestKind
    deadline: float
    callback: Callback | None
    data: bytes = b""
    query: Callable[[Any], Any] | None = None
    sent_to: str = ""  # the leader address it was forwarded to ("" while parked)


class Forwarder:
    """What this node sent to the leader and still waits for, and what waits for a leader.

    ``send(address, payload)`` puts one frame on the FORWARD channel (best effort: a lost
    request or answer ends as a timeout). ``origin`` is this node's Raft address, where
    leaders send their answers.
    """

    def __init__(self, origin: str, send: Callable[[str, bytes], None]) -> None:
        self.origin = origin
        self._send = send
        self._sent: dict[int, Remote] = {}  # by request id, in the order sent
        self._parked: list[Remote] = []
        self._req_ids = itertools.count(1)

    def forward(self, remote: Remote, address: str | None) -> None:
        """Send ``remote`` to the leader at ``address``; park it if the address is unknown."""
        if address is None:
            self.park(remote)
            return
        req_id = next(self._req_ids)
        remote.sent_to = address
        self._sent[req_id] = remote
        message = (
            ForwardPropose(req_id, self.origin, remote.data)
            if remote.kind == RequestKind.PROPOSE
            else ForwardReadIndex(req_id, self.origin)
        )
        self._send(address, encode_forward(message))

    def park(self, remote: Remote) -> None:
        """Keep ``remote`` until a leader is known (``take_parked``) or its deadline passes."""
        self._parked.append(remote)

    @property
    def has_parked(self) -> bool:
        return bool(self._parked)

    @property
    def waiting(self) -> bool:
        """Requests wait for a leader's answer or for a leader."""
        return bool(self._sent or self._parked)

    @property
    def in_flight(self) -> int:
        """Requests sent to a leader and not answered yet."""
        return len(self._sent)

    def take_parked(self) -> list[Remote]:
        parked, self._parked = self._parked, []
        return parked

    def take_sent_elsewhere(self, address: str | None) -> list[Remote]:
        """Remove and return the requests forwarded to a leader other than the one at
        ``address`` (None: no leader known now): that leader will most likely never answer."""
        gone = [req_id for req_id, remote in self._sent.items() if remote.sent_to != address]
        return [self._sent.pop(req_id) for req_id in gone]

    def answered(self, req_id: int) -> Remote | None:
        """The request a leader's answer is for (None: already expired, or never sent)."""
        return self._sent.pop(req_id, None)

    def reply(self, origin: str, answer: ForwardAnswer) -> None:
        """Answer a follower's forwarded request (this node leads, or did)."""
        self._send(origin, encode_forward(answer))

    def expire(self, now: float) -> tuple[list[Remote], list[Remote]]:
        """Remove and return the requests past their deadline: (sent to a leader and not
        answered, parked while no leader was known)."""
        sent = pop_expired(self._sent, now)
        parked: list[Remote] = []
        if self._parked:
            parked = [r for r in self._parked if r.deadline <= now]
            self._parked = [r for r in self._parked if r.deadline > now]
        return sent, parked
