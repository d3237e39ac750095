"""The node-to-node transport of many hollow nodes, owned by the one thread that drives them.

Same wire as ``orion.transport.peer.PeerTransport``: two-part frames ``[header, payload]``
whose header names the channel and the sender's listen address (``orion.transport.frames``),
the same socket options (gossip: IMMEDIATE, low SNDHWM, dropped when not connected; Raft and
forwarded requests: queued briefly) and, given the cluster key, CURVE with a ZAP check.

What differs is the sharing, so a thousand nodes fit in one process: each hollow node has its
own ROUTER on its own address (so a frame's destination is known by the socket it arrived on,
and real nodes reach it as they reach any node), but the outbound DEALERs are shared by all
hollow nodes: one per destination and kind, and the header says which hollow node sent the
frame. Raft and gossip of a hollow node share its one port (its meta names it for both).
A frame from one hollow node to another of the same pool does not go through ZeroMQ at all:
it waits in a queue in memory and ``poll`` hands it over first (the same bytes; what it saves
is the simulation's cost, two socket calls and CURVE on loopback, not the nodes' work).
There is no thread here: ``poll`` is called by the pool's loop, which also sends.
"""

from __future__ import annotations

import select
from collections import defaultdict, deque

import zmq
from loguru import logger

from orion.security.keys import ClusterKey
from orion.security.zap import ZapHandler, secure_server
from orion.transport.frames import Channel, FrameError, decode_header, encode_header
from orion.transport.peer import GOSSIP_SNDHWM, RECONNECT_IVL_MAX_MS, RECONNECT_IVL_MS, RELIABLE_SNDHWM
from orion.transport.zmq_calls import NOBLOCK, NOBLOCK_MORE, RCVMORE, recv_frame, send_frame, socket_option

MAX_FRAME = 8 * 1024 * 1024
RECV_BATCH = 64  # frames read from one ROUTER per poll, so one busy node cannot starve the rest
ZAP_DOMAIN = "orion-hollow"


# A gossip message is a MessagePack array whose first item is its tag: these are the first two
# bytes after the array's header of a ping, an ack, a ping-req and a nack (orion.gossip.messages).
_PROBE_TAGS = frozenset((b"\xa4p", b"\xa3a", b"\xa8p", b"\xa4n"))


def is_probe(channel: Channel, payload: bytes) -> bool:
    return channel is Channel.GOSSIP and payload[1:3] in _PROBE_TAGS


class HollowTransport:
    def __init__(self, curve: ClusterKey | None, max_frame: int = MAX_FRAME) -> None:
        self._context = zmq.Context.instance()
        # ZeroMQ's default of 1,023 sockets per context is a few hundred hollow nodes.
        self._context.set(zmq.MAX_SOCKETS, self._context.get(zmq.SOCKET_LIMIT))
        self._curve = curve
        self._max_frame = max_frame
        self._zap: ZapHandler | None = None
        if curve is not None:
            self._zap = ZapHandler.for_context(self._context)
            self._zap.allow(ZAP_DOMAIN, [curve.public])
        # epoll on the ROUTERs' ZeroMQ descriptors: a wait costs what is ready, not what is bound
        # (zmq_poll over 1,000 sockets took ~1 ms per pass of the loop, however idle they were).
        # A ZeroMQ descriptor is edge-triggered: it fires when events may have changed, so a
        # ROUTER stays in _ready until a read finds it empty.
        self._epoll = select.epoll()
        self._routers: list[zmq.Socket] = []
        self._slot_of_fd: dict[int, int] = {}
        self._ready: set[int] = set()  # slots that may hold frames not read yet
        self._headers: list[dict[Channel, bytes]] = []
        self._addresses: list[str] = []  # each slot's listen address, as frame headers name it
        self._local: dict[str, int] = {}  # listen address -> slot: destinations in this pool
        self._queued: deque[tuple[int, Channel, bytes, str]] = deque()  # in-pool frames not yet polled
        self.local_frames = 0
        self._dealers: dict[tuple[str, bool], zmq.Socket] = {}
        self._header_cache: dict[bytes, tuple[Channel, str]] = {}
        # Bytes and frames received, by sender address: what the real nodes cost the hollow ones.
        self.bytes_from: dict[str, int] = defaultdict(int)
        self.frames_from: dict[str, int] = defaultdict(int)
        self.sent = 0
        self.dropped = 0

    def bind(self, host: str, port: int) -> int:
        """A ROUTER for one more hollow node at ``host:port``; returns its slot."""
        router = self._context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.RCVHWM, 10_000)
        router.setsockopt(zmq.MAXMSGSIZE, 4 * self._max_frame + 4096)
        if self._curve is not None:
            secure_server(router, ZAP_DOMAIN, self._curve.public, self._curve.secret)
        try:
            router.bind(f"tcp://{host}:{port}")
        except zmq.ZMQError as exc:
            router.close(0)
            raise OSError(f"cannot bind {host}:{port}: {exc}") from exc
        slot = len(self._routers)
        self._routers.append(router)
        fd = router.getsockopt(zmq.FD)
        self._slot_of_fd[fd] = slot
        self._epoll.register(fd, select.EPOLLIN)
        self._ready.add(slot)  # whatever came before the registration
        self._headers.append({c: encode_header(c, f"{host}:{port}") for c in Channel})
        self._addresses.append(f"{host}:{port}")
        self._local[f"{host}:{port}"] = slot
        return slot

    def send(self, slot: int, address: str, channel: Channel, payload: bytes) -> None:
        """One frame from hollow node ``slot``; dropped (and counted) when it cannot go now."""
        if len(payload) > self._max_frame:
            self.dropped += 1
            return
        local = self._local.get(address)
        if local is not None:
            self._queued.append((local, channel, payload, self._addresses[slot]))
            self.sent += 1
            self.local_frames += 1
            return
        gossip = channel is Channel.GOSSIP
        sock = self._dealers.get((address, gossip))
        if sock is None:
            try:
                sock = self._dealer(address, gossip)
            except zmq.ZMQError as exc:
                logger.warning("hollow transport: cannot connect to {!r}: {}", address, exc)
                self.dropped += 1
                return
        try:
            header = self._headers[slot][channel]
            # Copied, whatever the size: a zero-copy frame is freed by pyzmq's garbage thread,
            # which cost 15 % of a 300-node pool's join (push-pulls of ~100 KB) for a memcpy saved.
            # Both parts or neither: once the first is queued the second cannot be refused.
            send_frame(sock, header, NOBLOCK_MORE)
            send_frame(sock, payload, NOBLOCK)
            self.sent += 1
        except zmq.ZMQError:  # Again (full, or not connected for gossip) or a send error
            self.dropped += 1

    def connect(self, address: str) -> None:
        """Open the gossip connection to a member as soon as it is heard of, not on the first
        frame: gossip does not queue for a peer that is not connected yet (IMMEDIATE), so that
        frame (often the ack to the member's first probe) was dropped, and the member suspected
        the hollow node that sent it: a join of 300 saw hundreds of suspicions that way."""
        if (address, True) not in self._dealers and address not in self._local:
            try:
                self._dealer(address, True)
            except zmq.ZMQError as exc:
                logger.warning("hollow transport: cannot connect to {!r}: {}", address, exc)

    def _dealer(self, address: str, gossip: bool) -> zmq.Socket:
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
        sock.setsockopt(zmq.IMMEDIATE, 1 if gossip else 0)
        # Shared by every hollow node: room for each of them to have a few frames queued.
        sock.setsockopt(zmq.SNDHWM, (GOSSIP_SNDHWM if gossip else RELIABLE_SNDHWM) * 8)
        if self._curve is not None:
            sock.setsockopt(zmq.CURVE_SERVERKEY, self._curve.public)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, self._curve.public)
            sock.setsockopt(zmq.CURVE_SECRETKEY, self._curve.secret)
        sock.connect(f"tcp://{address}")
        self._dealers[(address, gossip)] = sock
        return sock

    def poll(self, timeout_s: float) -> list[tuple[int, Channel, bytes]]:
        """Frames that arrived (waiting up to ``timeout_s`` for the first, not at all while
        frames between this pool's own nodes wait): (slot, channel, payload), probes first.

        Probes, their acks and nacks go before the rest of what arrived: a real node answers
        a ping within microseconds whatever gossip it has to read, while here it waits its
        turn behind its pool's other nodes, and a late ack makes a live node suspect."""
        urgent: list[tuple[int, Channel, bytes]] = []
        rest: list[tuple[int, Channel, bytes]] = []
        queued = self._queued
        if queued:
            timeout_s = 0.0
            bytes_from, frames_from = self.bytes_from, self.frames_from
            # Only those queued so far: what their handling sends is for the next poll.
            for _ in range(len(queued)):
                slot, channel, payload, sender = queued.popleft()
                bytes_from[sender] += len(payload)
                frames_from[sender] += 1
                (urgent if is_probe(channel, payload) else rest).append((slot, channel, payload))
        ready = self._ready
        if ready:
            timeout_s = 0.0
        slot_of_fd = self._slot_of_fd
        for fd, _ in self._epoll.poll(max(0.0, timeout_s)):
            slot = slot_of_fd.get(fd)
            if slot is not None:
                ready.add(slot)
        routers = self._routers
        for slot in list(ready):
            router = routers[slot]
            for _ in range(RECV_BATCH):
                try:
                    parts = [recv_frame(router, NOBLOCK)]
                except zmq.Again:
                    ready.discard(slot)  # empty: its descriptor fires again when frames come
                    break
                while socket_option(router, RCVMORE):  # the rest of a message that has come is there already
                    parts.append(recv_frame(router, NOBLOCK))
                accepted = self._accept(parts)
                if accepted is not None:
                    channel, payload = accepted
                    (urgent if is_probe(channel, payload) else rest).append((slot, channel, payload))
        return urgent + rest

    def _accept(self, parts: list[bytes]) -> tuple[Channel, bytes] | None:
        if len(parts) != 3:
            return None
        _, header, payload = parts
        known = self._header_cache.get(header)
        if known is None:
            try:
                known = decode_header(header)
            except FrameError:
                return None
            self._header_cache[header] = known
        channel, sender = known
        if len(payload) > self._max_frame:
            return None
        self.bytes_from[sender] += len(payload) + len(header)
        self.frames_from[sender] += 1
        return channel, payload

    def disconnect(self, address: str) -> None:
        for gossip in (True, False):
            sock = self._dealers.pop((address, gossip), None)
            if sock is not None:
                sock.close(0)

    def close(self) -> None:
        for sock in self._dealers.values():
            sock.close(0)
        self._dealers.clear()
        for router in self._routers:
            router.close(0)
        self._routers.clear()
        self._slot_of_fd.clear()
        self._ready.clear()
        self._epoll.close()
        if self._zap is not None:
            self._zap.forget(ZAP_DOMAIN)

    @property
    def socket_count(self) -> int:
        return len(self._routers) + len(self._dealers)
