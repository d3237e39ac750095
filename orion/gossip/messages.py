"""Gossip wire format: a tagged union of msgspec Structs, MessagePack encoded and validated on decode.

Every message names its sender's gossip address, so a reply needs no transport-level identity,
and its sender's cluster id (``cluster``, "" while the sender has not received the Raft
configuration), so a node can drop gossip from another cluster that shares the key. ``cluster`` is
the last field of every message: a decoder that predates it ignores the extra array element, and a
message from such a node decodes here with ``cluster = ""``, which every node accepts.
Updates (alive, suspect, dead) ride along on probes, acks and gossip messages ("piggybacking").
"""

from __future__ import annotations

from typing import Annotated, Any

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


class EncodedUpdates:
    """Each update's bytes, kept by the update object's identity while it is being gossiped.

    A member piggybacks one update ``4 x ceil(log10(N + 1))`` times and a relayed update is the
    object its message decoded to, so encoding it once (when it is queued, for its size) and
    inserting those bytes in every message that carries it gives the same bytes for a fraction
    of the work (an alive carries the member's whole meta). The entry holds the update, so its
    identity cannot be reused while it is cached; the cache is dropped whole past
    ``max_entries`` (what is dropped is encoded again when next needed)."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._raw: dict[int, tuple[Update, msgspec.Raw]] = {}

    def raw(self, update: Update) -> msgspec.Raw:
        entry = self._raw.get(id(update))
        if entry is not None and entry[0] is update:
            return entry[1]
        return self._encode(update)

    def _encode(self, update: Update) -> msgspec.Raw:
        raw = msgspec.Raw(_update_encoder.encode(update))
        self.remember(update, raw)
        return raw

    def remember(self, update: Update, raw: msgspec.Raw) -> None:
        """``raw`` is ``update``'s encoding (a decoder that has just read it says so)."""
        if len(self._raw) >= self.max_entries:
            self._raw.clear()
        self._raw[id(update)] = (update, raw)

    def raws(self, updates: list[Update]) -> list[msgspec.Raw]:
        # ``raw`` inlined: this runs for every update of every message a node sends.
        get = self._raw.get
        raws: list[msgspec.Raw] = []
        for update in updates:
            entry = get(id(update))
            raws.append(entry[1] if entry is not None and entry[0] is update else self._encode(update))
        return raws


class SharedAlives:
    """The alive a push-pull's member state stands for, one object per state object.

    A core merges each alive state of a push-pull as an alive, and queues that alive to gossip
    it on. In a hollow pool the states are shared (``SharedDecoder``): a join answer's thousand
    states reach a thousand cores as the same objects, and one alive per state (not one per
    core) is what lets ``EncodedUpdates`` encode it once instead of a thousand times (a million
    encodes in a join of 1,000, and a cache dropped over and over). Pure: an alive is made of
    the state's immutable fields. ``max_entries`` 0 (a real node: its states are its own)
    keeps nothing; past the bound the cache is dropped whole."""

    def __init__(self, max_entries: int = 0) -> None:
        self.max_entries = max_entries
        self._alive: dict[int, tuple[MemberState, Alive]] = {}

    def __call__(self, state: MemberState) -> Alive:
        entry = self._alive.get(id(state))
        if entry is not None and entry[0] is state:
            return entry[1]
        alive = Alive(state.node_id, state.incarnation, state.meta)
        if self.max_entries:
            if len(self._alive) >= self.max_entries:
                self._alive.clear()
            self._alive[id(state)] = (state, alive)
        return alive


# One per process: a node holds one core (a hollow pool many, which then share what they relay).
encoded_updates = EncodedUpdates()
shared_alives = SharedAlives()


def encode_message(msg: GossipMessage) -> bytes:
    """The message's MessagePack bytes (piggybacked updates from ``encoded_updates``: the same
    bytes as encoding them again)."""
    updates = getattr(msg, "updates", None)
    if not updates:
        return _encoder.encode(msg)
    raws = encoded_updates.raws(updates)
    kind = type(msg)
    if kind is Gossip:
        return _encoder.encode(_RawGossip(msg.sender, raws, msg.cluster))
    if kind is Ping:
        return _encoder.encode(_RawPing(msg.seq, msg.sender, msg.target_id, raws, msg.cluster))
    if kind is Ack:
        return _encoder.encode(_RawAck(msg.seq, msg.sender, raws, msg.cluster))
    assert kind is PingReq
    return _encoder.encode(
        _RawPingReq(msg.seq, msg.sender, msg.target_id, msg.target_address, msg.want_nack, raws, msg.cluster)
    )


def decode_message(buf: bytes | bytearray | memoryview) -> GossipMessage:
    """Parse and validate one message; garbage raises a msgspec error (DecodeError/ValidationError)."""
    return bounded_decode(_decoder, buf, MAX_MESSAGE_BYTES, "gossip message")


def encoded_size(update: Update) -> int:
    return len(encoded_updates.raw(update))


# The same messages with their updates and member states left encoded (``msgspec.Raw``), for
# ``SharedDecoder``: the envelope is validated here, each update or state by its own decoder.
RawList = Annotated[list[msgspec.Raw], msgspec.Meta(max_length=MAX_UPDATES)]


class _RawPing(msgspec.Struct, frozen=True, array_like=True, tag="ping"):
    seq: Seq
    sender: Address
    target_id: NodeId
    updates: RawList = []
    cluster: ClusterId = ""


class _RawAck(msgspec.Struct, frozen=True, array_like=True, tag="ack"):
    seq: Seq
    sender: Address
    updates: RawList = []
    cluster: ClusterId = ""


class _RawPingReq(msgspec.Struct, frozen=True, array_like=True, tag="ping_req"):
    seq: Seq
    sender: Address
    target_id: NodeId
    target_address: Address
    want_nack: bool = False
    updates: RawList = []
    cluster: ClusterId = ""


class _RawGossip(msgspec.Struct, frozen=True, array_like=True, tag="gossip"):
    sender: Address
    updates: RawList = []
    cluster: ClusterId = ""


class _RawPushPull(msgspec.Struct, frozen=True, array_like=True, tag="push_pull"):
    sender: Address
    sender_id: NodeId
    states: Annotated[list[msgspec.Raw], msgspec.Meta(max_length=MAX_STATES)]
    join: bool = False
    reply: bool = False
    cluster: ClusterId = ""


_RawMessage = _RawPing | _RawAck | Nack | _RawPingReq | _RawGossip | _RawPushPull


class SharedDecoder:
    """``decode_message`` for many SWIM cores in one process (the hollow pool): an update or a
    member state whose bytes were decoded before is handed out again as the same object.

    Messages, updates and member states are immutable, so sharing them changes nothing a core
    does; it saves decoding (and holding) a thousand copies of each member's meta when a
    thousand cores hear of it. Each distinct update or state is validated once, by the same
    types ``decode_message`` uses, so the same bytes are accepted or refused alike. The caches
    are dropped whole past ``max_entries`` (what is still referenced stays shared)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._decoder = msgspec.msgpack.Decoder(_RawMessage)
        self._update_decoder = msgspec.msgpack.Decoder(Update)
        self._state_decoder = msgspec.msgpack.Decoder(MemberState)
        self._updates: dict[bytes, Update] = {}
        self._states: dict[bytes, MemberState] = {}
        self.hits = 0
        self.misses = 0

    def decode(self, buf: bytes | bytearray | memoryview) -> GossipMessage:
        raw = bounded_decode(self._decoder, buf, MAX_MESSAGE_BYTES, "gossip message")
        kind = type(raw)
        if kind is _RawPing:
            return Ping(raw.seq, raw.sender, raw.target_id, self._shared_updates(raw.updates), raw.cluster)
        if kind is _RawAck:
            return Ack(raw.seq, raw.sender, self._shared_updates(raw.updates), raw.cluster)
        if kind is _RawGossip:
            return Gossip(raw.sender, self._shared_updates(raw.updates), raw.cluster)
        if kind is _RawPushPull:
            states = self._shared(raw.states, self._states, self._state_decoder)
            return PushPull(raw.sender, raw.sender_id, states, raw.join, raw.reply, raw.cluster)
        if kind is _RawPingReq:
            updates = self._shared_updates(raw.updates)
            return PingReq(
                raw.seq, raw.sender, raw.target_id, raw.target_address, raw.want_nack, updates, raw.cluster
            )
        return raw  # a Nack carries nothing to share

    def _shared_updates(self, raws: list[msgspec.Raw]) -> list[Update]:
        if not raws:
            return []
        return self._shared(raws, self._updates, self._update_decoder, encoded_updates)

    def _shared(
        self,
        raws: list[msgspec.Raw],
        cache: dict[bytes, Any],
        decoder: Any,
        encoded: EncodedUpdates | None = None,
    ) -> list[Any]:
        if len(cache) + len(raws) > self.max_entries:
            cache.clear()
        # The hit is the path that counts (each update reaches a pool ~16 times per member):
        # a lookup and an append, the counters kept per message.
        misses = self.misses
        get = cache.get
        found: list[Any] = []
        for raw in raws:
            key = bytes(raw)
            value = get(key)
            if value is None:
                value = self._decode_new(key, cache, decoder, encoded)
            found.append(value)
        self.hits += len(raws) - (self.misses - misses)
        return found

    def _decode_new(
        self, key: bytes, cache: dict[bytes, Any], decoder: Any, encoded: EncodedUpdates | None
    ) -> Any:
        self.misses += 1
        try:
            value = decoder.decode(key)
        except UnicodeDecodeError as exc:
            raise msgspec.DecodeError(f"invalid UTF-8 in gossip message: {exc}") from exc
        cache[key] = value
        if encoded is not None:
            # The pool's nodes relay what they hear: these are its bytes already.
            encoded.remember(value, msgspec.Raw(key))
        return value
