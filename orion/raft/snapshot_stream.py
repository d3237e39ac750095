"""Snapshots streamed in bounded chunks: a pure, tick-driven sender and receiver.

The Raft core emits ``InstallSnapshot`` carrying the whole Snapshot; the peer transport drops frames
over its ``max_frame``, so the shell never sends that message as one frame. It hands it to
``SnapshotSender.start`` instead and sends what ``poll`` returns; the follower's shell feeds each
``SnapshotChunk`` to ``SnapshotReceiver.on_chunk``, sends back the acks and steps the core with the
completed ``InstallSnapshot``. Nothing here has a clock, a thread or I/O: time is ``tick()``.

Protocol, one stream per (leader, follower):
- A stream opens with a *probe*: an empty chunk at the offset the sender believes the receiver holds.
  The receiver answers with the offset it really holds, so a new leader (or the same leader after a
  timeout) resumes where the follower's partial copy ends instead of resending bytes it already has.
- Then chunks of at most ``chunk_bytes`` go out while at most ``window_bytes`` are unacknowledged.
  The receiver accepts only the chunk that continues its contiguous prefix (no out-of-order buffer:
  memory stays at the snapshot size) and acks every chunk with the next offset it wants.
- An ack that repeats the acked offset while more is in flight means a gap: the window is resent from
  there once (a fast retransmit). ``timeout_ticks`` without progress sends a probe again;
  ``max_retries`` consecutive timeouts end the stream with ``SnapshotFailed``.
- ``checksum`` is the CRC-32 of the whole snapshot data; the receiver keeps a running CRC over its
  contiguous prefix and compares at the end. A mismatch discards the copy and is answered with
  ``ok=False, reason="checksum: ..."``: the sender starts over (at most ``max_retries`` times). Every other
  refusal (``ok=False``) names the offending field first and ends the stream.

``meta`` (the msgpack-encoded SnapshotMeta, a few hundred bytes) rides in every chunk, encoded once per
stream: any chunk, including a probe, can then (re)open the receiver's partial copy after the
receiver dropped it (idle timeout, restart, another snapshot in between), and no chunk depends on an
earlier one having arrived. It costs well under 0.1% of a 1 MiB chunk.

Shell duties: ``start`` each InstallSnapshot instead of sending it; send ``poll()``'s chunks after each
call; on SnapshotProgress call ``core.snapshot_progress(dst)``, on SnapshotFailed
``core.snapshot_failed(dst)``; ``cancel_all()`` on stepping down. On the follower, send the acks
``on_chunk`` returns and step the core with the InstallSnapshot it completes. A chunk frame is at most
``chunk_bytes`` + len(meta) + the ids + ~60 bytes of msgpack, well under 2 MiB with the defaults.
Keep the receiver's ``idle_ticks`` above the sender's ``timeout_ticks * max_retries`` (the defaults:
600 > 100) so a partial copy outlives a sender's silence.

There is no per-chunk checksum: the transport is TCP (ZeroMQ), whose checksums already catch
transmission errors; the end-to-end CRC catches the rest (memory or software faults) at the price of
one restart, which is rare enough not to pay a second CRC pass on both sides for every byte.
"""

from __future__ import annotations

import zlib
from typing import cast

import msgspec

from orion.codec import bounded_decode
from orion.raft.messages import MAX_MESSAGE_BYTES, InstallSnapshot
from orion.raft.types import Snapshot, SnapshotMeta

CHECKSUM_REASON = "checksum:"  # prefix of the one refusal after which the sender starts over


class SnapshotChunk(msgspec.Struct, tag=10, array_like=True, frozen=True):
    """``data`` = snapshot bytes [offset, offset + len(data)). ``total`` and ``checksum`` (CRC-32 of
    the whole data) describe the whole snapshot; ``index``/``snap_term`` are its Raft position and
    ``term`` the sender's (leader's) term. On the sending side ``data`` is a read-only memoryview
    slice of the snapshot (zero copy; msgspec encodes any buffer); decoded, it is bytes."""

    src: str
    dst: str
    term: int
    index: int
    snap_term: int
    total: int
    checksum: int
    offset: int
    meta: bytes
    data: bytes


class SnapshotAck(msgspec.Struct, tag=11, array_like=True, frozen=True):
    """``offset``: how many bytes of the snapshot the receiver holds contiguously (the next offset it
    wants); ``total`` once it has the whole snapshot and has checked it. ``term`` echoes the chunk's.
    ``ok=False``: refused; ``reason`` starts with the name of the field at fault."""

    src: str
    dst: str
    term: int
    index: int
    snap_term: int
    offset: int
    ok: bool
    reason: str = ""


StreamMessage = SnapshotChunk | SnapshotAck

_encoder = msgspec.msgpack.Encoder()
_stream_decoder: msgspec.msgpack.Decoder[StreamMessage] = msgspec.msgpack.Decoder(StreamMessage)


def encode_stream_message(msg: StreamMessage) -> bytes:
    return _encoder.encode(msg)


def decode_stream_message(buf: bytes) -> StreamMessage:
    """Decode one chunk or ack; raises msgspec.DecodeError / ValidationError on garbage. Field
    ranges are checked by the receiver (``SnapshotReceiver.on_chunk``), which answers with a reason."""
    return bounded_decode(_stream_decoder, buf, MAX_MESSAGE_BYTES, "snapshot stream message")


def snapshot_checksum(data: bytes | memoryview) -> int:
    """The checksum a stream carries: CRC-32 of the whole snapshot data (zlib releases the GIL on
    large buffers, so a shell may compute it off the Raft thread and pass it to ``start``)."""
    return zlib.crc32(data)


# ---------------------------------------------------------------------------------------------
# Sender


class SnapshotProgress(msgspec.Struct, frozen=True):
    """The follower acknowledged more bytes: the shell calls ``core.snapshot_progress(dst)``."""

    dst: str
    index: int
    snap_term: int
    offset: int
    total: int


class SnapshotFinished(msgspec.Struct, frozen=True):
    """The follower holds and has verified the whole snapshot (its core answers separately with
    InstallSnapshotResponse). Always preceded by a SnapshotProgress for the same ack."""

    dst: str
    index: int
    snap_term: int
    total: int


class SnapshotFailed(msgspec.Struct, frozen=True):
    """The stream gave up (timeouts, or the follower refused it): the shell calls
    ``core.snapshot_failed(dst)`` and the core probes the follower again."""

    dst: str
    index: int
    snap_term: int
    reason: str


SenderEvent = SnapshotProgress | SnapshotFinished | SnapshotFailed


class StreamStatus(msgspec.Struct, frozen=True):
    """A sender stream as seen from outside (metrics, logs, tests)."""

    dst: str
    term: int
    index: int
    snap_term: int
    total: int
    acked: int  # bytes the follower confirmed holding
    next_offset: int  # next byte to send
    probing: bool
    retries: int  # consecutive timeouts without progress
    restarts: int  # passes started over after a checksum mismatch
    bytes_sent: int  # data bytes put in chunks so far, resends included


class _OutStream:
    __slots__ = (
        "acked",
        "bytes_sent",
        "checksum",
        "data",
        "dst",
        "index",
        "meta_raw",
        "next_offset",
        "probe_sent",
        "probing",
        "restarts",
        "retries",
        "rewound_at",
        "snap_term",
        "src",
        "term",
        "total",
        "view",
        "waited",
    )

    def __init__(self, msg: InstallSnapshot, checksum: int, meta_raw: bytes) -> None:
        self.src = msg.src
        self.dst = msg.dst
        self.term = msg.term
        self.index = msg.snapshot.meta.index
        self.snap_term = msg.snapshot.meta.term
        self.data = msg.snapshot.data  # kept to recognise the same snapshot sent to another follower
        self.view = memoryview(msg.snapshot.data).cast("B")
        self.total = self.view.nbytes
        self.checksum = checksum
        self.meta_raw = meta_raw
        self.acked = 0
        self.next_offset = 0
        self.probing = True
        self.probe_sent = False
        self.waited = 0  # ticks since the last progress (or since the probe went out)
        self.retries = 0
        self.restarts = 0  # checksum mismatches reported by the receiver
        self.rewound_at = -1  # acked offset at which the last fast retransmit happened
        self.bytes_sent = 0

    def restart_probe(self) -> None:
        self.probing = True
        self.probe_sent = False
        self.next_offset = self.acked
        self.waited = 0

    def chunk(self, offset: int, data: memoryview) -> SnapshotChunk:
        return SnapshotChunk(
            self.src,
            self.dst,
            self.term,
            self.index,
            self.snap_term,
            self.total,
            self.checksum,
            offset,
            self.meta_raw,
            cast(bytes, data),  # a zero-copy slice; see SnapshotChunk
        )


class SnapshotSender:
    """Streams the snapshots of InstallSnapshot messages to followers, one stream per follower.

    Drive it with ``start`` (for each InstallSnapshot the core emits), ``on_ack`` (each SnapshotAck
    received), ``tick`` (each Raft tick) and send whatever ``poll`` returns after any of them.
    """

    def __init__(
        self,
        *,
        chunk_bytes: int = 1 << 20,
        window_bytes: int = 4 << 20,
        timeout_ticks: int = 20,
        max_retries: int = 5,
    ) -> None:
        if chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be at least 1, got {chunk_bytes}")
        if window_bytes < chunk_bytes:
            raise ValueError(f"window_bytes ({window_bytes}) must be at least chunk_bytes ({chunk_bytes})")
        if timeout_ticks < 1:
            raise ValueError(f"timeout_ticks must be at least 1, got {timeout_ticks}")
        if max_retries < 1:
            raise ValueError(f"max_retries must be at least 1, got {max_retries}")
        self.chunk_bytes = chunk_bytes
        self.window_bytes = window_bytes
        self.timeout_ticks = timeout_ticks
        self.max_retries = max_retries
        self._streams: dict[str, _OutStream] = {}

    def start(self, msg: InstallSnapshot, checksum: int | None = None) -> bool:
        """Begin streaming ``msg.snapshot`` to ``msg.dst``; True if a new stream started.

        A repeat for the same follower and snapshot (index, snap_term) while its stream is active
        changes nothing, except that a higher ``term`` is adopted (the leader was re-elected) so the
        follower keeps the partial copy. Another snapshot for that follower replaces its stream.
        ``checksum`` (CRC-32 of the data) may be given when already known; otherwise it is computed
        here, once per snapshot even when several followers need it.
        """
        meta = msg.snapshot.meta
        current = self._streams.get(msg.dst)
        if current is not None and current.index == meta.index and current.snap_term == meta.term:
            if msg.term > current.term:
                current.term = msg.term
                current.src = msg.src
            return False
        if checksum is None:
            checksum = self._known_checksum(msg.snapshot.data)
        if checksum is None:
            checksum = snapshot_checksum(msg.snapshot.data)
        elif not 0 <= checksum <= 0xFFFFFFFF:
            raise ValueError(f"checksum must be a CRC-32 (0 .. 2**32-1), got {checksum}")
        self._streams[msg.dst] = _OutStream(msg, checksum, _encoder.encode(meta))
        return True

    def _known_checksum(self, data: bytes) -> int | None:
        for stream in self._streams.values():
            if stream.data is data:
                return stream.checksum
        return None

    def cancel(self, dst: str) -> None:
        """Forget the stream to ``dst`` (e.g. the core stopped needing it)."""
        self._streams.pop(dst, None)

    def cancel_all(self) -> None:
        """Forget every stream (this node stepped down)."""
        self._streams.clear()

    def active(self) -> list[str]:
        return sorted(self._streams)

    def status(self, dst: str) -> StreamStatus | None:
        s = self._streams.get(dst)
        if s is None:
            return None
        return StreamStatus(
            s.dst,
            s.term,
            s.index,
            s.snap_term,
            s.total,
            s.acked,
            s.next_offset,
            s.probing,
            s.retries,
            s.restarts,
            s.bytes_sent,
        )

    def on_ack(self, ack: SnapshotAck) -> list[SenderEvent]:
        s = self._streams.get(ack.src)
        if (
            s is None
            or ack.index != s.index
            or ack.snap_term != s.snap_term
            or ack.term != s.term
            or not 0 <= ack.offset <= s.total
        ):
            return []  # for an older stream, or bogus
        if not ack.ok:
            if ack.reason.startswith(CHECKSUM_REASON):
                # Counted apart from timeouts: the progress of each new pass must not reset it,
                # or a sender whose data never matches its checksum would stream forever.
                s.restarts += 1
                if s.restarts >= self.max_retries:
                    return [self._fail(s, f"{ack.reason}; gave up after {s.restarts} restarts")]
                s.acked = 0
                s.restart_probe()
                return []
            return [self._fail(s, f"follower refused the snapshot: {ack.reason}")]
        events: list[SenderEvent] = []
        if s.probing:
            # The answer to a probe is the truth about the receiver, even if lower than what it
            # acked before (it lost its partial copy).
            advanced = ack.offset > s.acked
            s.probing = False
            s.acked = ack.offset
            s.next_offset = ack.offset
            s.rewound_at = -1
            s.waited = 0
        elif ack.offset > s.acked:
            advanced = True
            s.acked = ack.offset
            s.next_offset = max(s.next_offset, ack.offset)
            s.waited = 0
        else:
            advanced = False
            if ack.offset == s.acked < s.next_offset and s.rewound_at != s.acked:
                # The receiver saw a chunk past a gap: resend the window from the gap, once; a
                # lower offset is a stale (reordered) ack and is left to the timeout's probe.
                s.next_offset = s.acked
                s.rewound_at = s.acked
        if advanced:
            s.retries = 0
            events.append(SnapshotProgress(s.dst, s.index, s.snap_term, s.acked, s.total))
        if s.acked == s.total:
            del self._streams[s.dst]
            events.append(SnapshotFinished(s.dst, s.index, s.snap_term, s.total))
        return events

    def tick(self) -> list[SenderEvent]:
        events: list[SenderEvent] = []
        for dst in sorted(self._streams):
            s = self._streams[dst]
            s.waited += 1
            if s.waited >= self.timeout_ticks:
                events.extend(self._count_retry(s, f"no acknowledgement for {self.timeout_ticks} ticks"))
        return events

    def _count_retry(self, s: _OutStream, why: str) -> list[SenderEvent]:
        s.retries += 1
        if s.retries >= self.max_retries:
            return [self._fail(s, f"{why}; gave up after {s.retries} consecutive retries")]
        s.restart_probe()
        return []

    def _fail(self, s: _OutStream, reason: str) -> SnapshotFailed:
        del self._streams[s.dst]
        return SnapshotFailed(s.dst, s.index, s.snap_term, reason)

    def poll(self) -> list[SnapshotChunk]:
        """Chunks to send now (a probe, or as many as the windows allow), followers in id order."""
        out: list[SnapshotChunk] = []
        for dst in sorted(self._streams):
            s = self._streams[dst]
            if s.probing:
                if not s.probe_sent:
                    s.probe_sent = True
                    out.append(s.chunk(s.acked, s.view[0:0]))
                continue
            while s.next_offset < s.total:
                size = min(self.chunk_bytes, s.total - s.next_offset)
                if s.next_offset + size - s.acked > self.window_bytes:
                    break
                start = s.next_offset
                out.append(s.chunk(start, s.view[start : start + size]))
                s.next_offset = start + size
                s.bytes_sent += size
        return out


# ---------------------------------------------------------------------------------------------
# Receiver


class PartialSnapshotDropped(msgspec.Struct, frozen=True):
    """A partial copy was dropped after ``idle_ticks`` without chunks (worth a log line)."""

    src: str
    index: int
    snap_term: int
    offset: int
    total: int


class ReceiveStatus(msgspec.Struct, frozen=True):
    src: str
    term: int
    index: int
    snap_term: int
    checksum: int
    offset: int
    total: int


class _Partial:
    __slots__ = (
        "checksum",
        "crc",
        "held",
        "idle",
        "index",
        "meta",
        "meta_raw",
        "parts",
        "snap_term",
        "src",
        "term",
        "total",
    )

    def __init__(self, chunk: SnapshotChunk, meta: SnapshotMeta) -> None:
        self.src = chunk.src
        self.term = chunk.term
        self.index = chunk.index
        self.snap_term = chunk.snap_term
        self.checksum = chunk.checksum
        self.total = chunk.total
        self.meta_raw = chunk.meta
        self.meta = meta
        # The received chunks themselves, joined once at the end: no copy while streaming, and
        # one copy (unavoidable: Snapshot.data is bytes) when complete.
        self.parts: list[bytes | memoryview] = []
        self.held = 0
        self.crc = 0  # running CRC-32 of the held prefix, so completion costs no second pass
        self.idle = 0


_MAX_CHECKSUM = 0xFFFFFFFF


class SnapshotReceiver:
    """Assembles one streamed snapshot at a time (a follower has one leader) and hands it over as
    the InstallSnapshot the core expects, once complete and verified."""

    def __init__(self, *, max_total_bytes: int = 4 << 30, idle_ticks: int = 600) -> None:
        if max_total_bytes < 0:
            raise ValueError(f"max_total_bytes must not be negative, got {max_total_bytes}")
        if idle_ticks < 1:
            raise ValueError(f"idle_ticks must be at least 1, got {idle_ticks}")
        self.max_total_bytes = max_total_bytes
        self.idle_ticks = idle_ticks
        self._partial: _Partial | None = None
        # (src, term, index, snap_term, checksum, total) of the last snapshot handed over: repeats
        # of its chunks (a lost final ack) are answered "complete" instead of starting over. Only
        # for the same leader and term: another leader sending it means our core may not have
        # taken it (it came from a deposed leader), so that stream starts from the beginning.
        self._done: tuple[str, int, int, int, int, int] | None = None

    def status(self) -> ReceiveStatus | None:
        p = self._partial
        if p is None:
            return None
        return ReceiveStatus(p.src, p.term, p.index, p.snap_term, p.checksum, p.held, p.total)

    def tick(self) -> list[PartialSnapshotDropped]:
        p = self._partial
        if p is None:
            return []
        p.idle += 1
        if p.idle < self.idle_ticks:
            return []
        self._partial = None
        return [PartialSnapshotDropped(p.src, p.index, p.snap_term, p.held, p.total)]

    def on_chunk(self, chunk: SnapshotChunk) -> tuple[list[SnapshotAck], InstallSnapshot | None]:
        """Returns the acks to send back and, when this chunk completes a verified snapshot, the
        InstallSnapshot to step the core with (term: this chunk's)."""
        p = self._partial
        same = (
            p is not None
            and p.index == chunk.index
            and p.snap_term == chunk.snap_term
            and p.checksum == chunk.checksum
            and p.total == chunk.total
        )
        reason = self._field_error(chunk)
        if reason:
            return [_ack(chunk, p.held if same and p is not None else 0, reason)], None
        if p is not None and chunk.term < p.term:
            return [
                _ack(
                    chunk,
                    p.held if same else 0,
                    f"term: {chunk.term} is older than term {p.term} of the snapshot "
                    f"being received from {p.src}",
                )
            ], None
        if self._done == (
            chunk.src,
            chunk.term,
            chunk.index,
            chunk.snap_term,
            chunk.checksum,
            chunk.total,
        ):
            return [_ack(chunk, chunk.total)], None
        if same and p is not None:
            if chunk.meta != p.meta_raw:
                meta, reason = _decode_meta(chunk)
                if meta is None:
                    return [_ack(chunk, p.held, reason)], None
            # A new leader (term or src) streaming the same snapshot resumes at the held offset.
            p.src = chunk.src
            p.term = chunk.term
        else:
            meta, reason = _decode_meta(chunk)
            if meta is None:
                return [_ack(chunk, 0, reason)], None
            p = self._partial = _Partial(chunk, meta)  # replaces any partial copy of another snapshot
        p.idle = 0
        offset = chunk.offset
        size = len(chunk.data)
        if offset <= p.held < offset + size:
            part = chunk.data if offset == p.held else memoryview(chunk.data)[p.held - offset :]
            p.parts.append(part)
            p.crc = zlib.crc32(part, p.crc)
            p.held += len(part)
        if p.held < p.total:
            return [_ack(chunk, p.held)], None
        self._partial = None
        if p.crc != p.checksum:
            return [
                _ack(
                    chunk,
                    0,
                    f"{CHECKSUM_REASON} CRC-32 of the {p.total} bytes received is {p.crc:#010x}, "
                    f"the sender's is {p.checksum:#010x}; discarded, start over",
                )
            ], None
        self._done = (p.src, p.term, p.index, p.snap_term, p.checksum, p.total)
        data = b"".join(p.parts)
        p.parts.clear()
        return [_ack(chunk, p.total)], InstallSnapshot(p.src, chunk.dst, p.term, Snapshot(p.meta, data))

    def _field_error(self, chunk: SnapshotChunk) -> str:
        if not chunk.src or not chunk.dst:
            return "src/dst: empty node id"
        for name in ("term", "index", "snap_term", "total", "offset"):
            if getattr(chunk, name) < 0:
                return f"{name}: negative ({getattr(chunk, name)})"
        if chunk.total > self.max_total_bytes:
            return f"total: {chunk.total} bytes exceeds max_total_bytes {self.max_total_bytes}"
        if chunk.offset + len(chunk.data) > chunk.total:
            return (
                f"offset: chunk [{chunk.offset}, {chunk.offset + len(chunk.data)}) "
                f"ends past total {chunk.total}"
            )
        if not 0 <= chunk.checksum <= _MAX_CHECKSUM:
            return f"checksum: {chunk.checksum} is not a CRC-32"
        return ""


def _decode_meta(chunk: SnapshotChunk) -> tuple[SnapshotMeta | None, str]:
    try:
        meta = msgspec.msgpack.decode(chunk.meta, type=SnapshotMeta)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        return None, f"meta: not an encoded SnapshotMeta ({exc})"
    if meta.index != chunk.index or meta.term != chunk.snap_term:
        return None, (
            f"meta: index {meta.index} / term {meta.term} differ from the chunk's "
            f"index {chunk.index} / snap_term {chunk.snap_term}"
        )
    return meta, ""


def _ack(chunk: SnapshotChunk, offset: int, reason: str = "") -> SnapshotAck:
    return SnapshotAck(
        chunk.dst, chunk.src, chunk.term, chunk.index, chunk.snap_term, offset, not reason, reason
    )
