"""Node-to-node transport: one thread owns a ROUTER for inbound frames and DEALERs for outbound.

Inbound: peers connect DEALERs to our ROUTER and send ``[header, payload]``; the thread
checks the header and size, then calls ``on_frame(channel, payload)`` (in this thread:
the callback must be cheap, e.g. decode and ``tell`` an actor).

Outbound: ``send`` may be called from any thread. It puts the frame in a Mailbox; the
transport thread drains it in batches and writes each frame with NOBLOCK to a DEALER it
creates lazily per destination and kind:

- gossip: IMMEDIATE=1, low SNDHWM. Nothing queues for a peer that is not connected, so a
  probe to a dead peer is dropped instead of arriving late (DESIGN rule 4).
- raft and forward: IMMEDIATE=0, moderate SNDHWM. Frames wait briefly while ZeroMQ
  reconnects; when the queue is full the frame is dropped (Raft retries on its own).

Security: given the cluster key (``curve=``), every socket uses CURVE. Our ROUTER is a CURVE
server holding the cluster key pair and admits, through the ZAP handler, only clients that
present the cluster public key; our DEALERs are CURVE clients with that same key pair. A
process without the cluster secret key can neither complete a handshake (it cannot decrypt
or forge the key exchange) nor read the traffic. Socket monitors report failed handshakes
on both sides (orion.security.handshake). Without ``curve`` the sockets are plain TCP.
The ROUTER enforces its ZAP domain: with no ZAP handler answering, every connection is
refused (never admitted), and a handler that dies calls ``on_zap_death`` (the node stops).

Hosted: instead of ``start`` (a thread of its own), ``bind`` opens the sockets and an actor's
thread runs the loop's turns while it waits for messages (``serve``; orion/actors/hosted_inbox.py).
A frame then reaches that actor, and its sends leave, with no hand-off between two threads:
on an idle node each hand-off is a wakeup, which costs more than the work it carries. The
sockets are made on the thread that calls ``bind`` and then used by the host's thread only (a
single hand-over, under a lock: ZeroMQ allows a socket to move between threads behind a full
memory barrier); ``send`` from any other thread still goes through the mailbox, which the host
polls with the sockets.
"""

from __future__ import annotations

import itertools
import math
import select
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import zmq
from loguru import logger
from zmq.backend import zmq_poll
from zmq.utils.monitor import recv_monitor_message

from orion.security.handshake import MONITORED_EVENTS, HandshakeLog
from orion.security.keys import ClusterKey
from orion.security.zap import ZapHandler, secure_server
from orion.transport.frames import Channel, FrameError, decode_header, encode_header
from orion.transport.socket_thread import SocketThread
from orion.transport.zmq_calls import (
    EVENTS,
    NOBLOCK,
    NOBLOCK_MORE,
    POLLIN,
    RCVMORE,
    recv_frame,
    send_frame,
    socket_option,
)

__all__ = ["Channel", "PeerTransport"]

GOSSIP_SNDHWM = 16
RELIABLE_SNDHWM = 1000
RECONNECT_IVL_MS = 100
RECONNECT_IVL_MAX_MS = 1000
RECV_BATCH = 256  # frames read per poll wake-up before looking at the outbound mailbox again
_zap_domains = itertools.count(1)
_monitor_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class _Outbound:
    address: str
    channel: Channel
    payloads: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class _Disconnect:
    address: str


_Command = _Outbound | _Disconnect


def _runs_by_address(frames: Sequence[tuple[str, bytes]]) -> list[tuple[str, list[bytes]]]:
    """Consecutive frames to one address grouped, order kept (one address's frames stay in
    the order they were sent; different addresses are independent streams anyway)."""
    runs: list[tuple[str, list[bytes]]] = []
    for address, payload in frames:
        if runs and runs[-1][0] == address:
            runs[-1][1].append(payload)
        else:
            runs.append((address, [payload]))
    return runs


class PeerTransport(SocketThread[_Command]):
    def __init__(
        self,
        bind_host: str,
        port: int,
        on_frame: Callable[[Channel, bytes], None],
        *,
        max_frame: int = 8 * 1024 * 1024,
        name: str = "",
        advertise: str | None = None,
        allow_fault_injection: bool = False,
        curve: ClusterKey | None = None,
        on_zap_death: Callable[[str], None] | None = None,
    ) -> None:
        """``port=0`` binds a random free port (read ``port`` after ``start``).

        ``advertise`` is how peers reach us, written in every frame header: a host (our
        port is appended, e.g. "10.0.0.5") or a full "host:port". Defaults to ``bind_host``.
        ``curve`` is the cluster key pair: when given, all traffic is CURVE-encrypted and
        only holders of that key can connect to us or accept our connections.
        """
        self.bind_host = bind_host
        self.port = port
        self.name = name or f"peer-{port}"
        super().__init__(f"transport-{self.name}")
        self._advertise = advertise
        self._on_frame = on_frame
        self._max_frame = max_frame
        self._allow_fault_injection = allow_fault_injection
        self._curve = curve
        self._on_zap_death = on_zap_death
        self._zap_domain = f"{self.name}#{next(_zap_domains)}"
        self.handshakes = HandshakeLog(self.name)
        # monitor socket -> (peer address, "" for our ROUTER; the socket it watches)
        self._monitors: dict[zmq.Socket, tuple[str, zmq.Socket]] = {}
        self._blocked: frozenset[str] = frozenset()
        self._stats: dict[str, int] = dict.fromkeys(
            (
                "sent",
                "received",
                "dropped_full",
                "dropped_oversized",
                "dropped_malformed",
                "dropped_blocked",
                "dropped_send_error",
                "callback_errors",
            ),
            0,
        )
        self._stats_lock = threading.Lock()
        self._oversize_warned = -1e9
        self._headers: dict[Channel, bytes] = {}
        self._header_cache: dict[bytes, tuple[Channel, str]] = {}
        # Frames read in this turn of the loop, handed to ``on_frame`` at its end, right
        # before the poll: the receiver (an actor) then wakes while this thread sleeps
        # rather than waiting for the interpreter lock this thread still holds.
        self._inbound: list[tuple[Channel, bytes]] = []
        # The loop's sockets, between _open and _close (on the transport's thread, or the host's).
        self._context: zmq.Context | None = None
        self._router: zmq.Socket | None = None
        self._poller = zmq.Poller()
        self._mailbox_fd = -1  # polled with the sockets once they are open (_open)
        self._zap: ZapHandler | None = None
        self._dealers: dict[tuple[str, bool], zmq.Socket] = {}
        # Hosted (``bind``): the thread that runs ``serve``, and a lock that keeps ``stop`` from
        # closing the sockets under a turn or a direct send.
        self.hosted = False
        self._host: int | None = None
        self._host_lock = threading.RLock()
        self._closed = False
        self._wake_fds: set[int] = set()

    # ----------------------------------------------------------------- lifecycle

    @property
    def address(self) -> str:
        """Our listen address as written in frame headers."""
        host = self._advertise or self.bind_host
        _, sep, port = host.rpartition(":")
        return host if sep and port.isdigit() else f"{host}:{self.port}"

    # ----------------------------------------------------------------- any thread

    def send(self, address: str, channel: Channel, payload: bytes) -> None:
        """Queue one frame for ``address`` ("host:port"); never blocks, drops when full."""
        self.send_many(address, channel, [payload])

    def send_many(self, address: str, channel: Channel, payloads: list[bytes]) -> None:
        outbound = self._outbound(address, channel, payloads)
        if outbound is None:
            return
        if self._host is not None and threading.get_ident() == self._host:
            self._write_hosted([outbound])
        elif not self._mailbox.put(outbound):
            self._count("dropped_full", len(outbound.payloads))

    def send_batch(self, channel: Channel, frames: Sequence[tuple[str, bytes]]) -> None:
        """Queue ``(address, payload)`` frames, in order, with one wake-up of the transport
        thread: a Raft Ready's messages to all peers cost one pipe write, not one each."""
        batch: list[_Outbound] = []
        for address, payloads in _runs_by_address(frames):
            outbound = self._outbound(address, channel, payloads)
            if outbound is not None:
                batch.append(outbound)
        if self._host is not None and threading.get_ident() == self._host:
            self._write_hosted(batch)
            return
        accepted = self._mailbox.put_many(batch)
        if accepted < len(batch):
            self._count("dropped_full", sum(len(out.payloads) for out in batch[accepted:]))

    def _outbound(self, address: str, channel: Channel, payloads: list[bytes]) -> _Outbound | None:
        """The frames that may go, as one mailbox item (None: none may)."""
        if not payloads:
            return None
        if address in self._blocked:
            self._count("dropped_blocked", len(payloads))
            return None
        limit = self._max_frame
        if type(channel) is not Channel:
            channel = Channel(channel)
        if max(map(len, payloads)) <= limit:  # every frame fits (always, in practice): no filter
            return _Outbound(address, channel, tuple(payloads))
        fitting = tuple(p for p in payloads if len(p) <= limit)
        if len(fitting) != len(payloads):
            # The senders' own limits (Raft's max_size_per_msg, snapshot chunks, gossip's
            # packet budget) make this impossible; if it happens anyway it must be heard of.
            self._count("dropped_oversized", len(payloads) - len(fitting))
            self._warn_oversize(
                f"dropped {len(payloads) - len(fitting)} outgoing {channel.name} frame(s) to "
                f"{address} over the {self._max_frame}-byte frame limit"
            )
        return _Outbound(address, channel, fitting) if fitting else None

    def disconnect(self, address: str) -> None:
        """Close our sockets to a peer that left the cluster."""
        self._mailbox.put(_Disconnect(address))

    def block(self, addresses: set[str]) -> None:
        """Fault injection (nemesis partitions): drop all traffic to and from ``addresses``.

        Replaces the previous set; ``block(set())`` heals. Only allowed when the transport
        was built with ``allow_fault_injection=True`` so production nodes cannot be cut off
        by accident.
        """
        if not self._allow_fault_injection:
            raise RuntimeError("fault injection is disabled on this transport")
        self._blocked = frozenset(addresses)

    @property
    def stats(self) -> dict[str, int]:
        with self._stats_lock:
            return dict(self._stats)

    # ----------------------------------------------------------------- the loop's thread

    def _warn_oversize(self, text: str) -> None:
        """At most one warning per 30 s: an oversize frame repeats on every retry."""
        now = time.monotonic()
        if now - self._oversize_warned >= 30.0:
            self._oversize_warned = now
            logger.warning("transport {}: {}", self.name, text)

    def _count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self._stats[key] += n

    # ----------------------------------------------------------------- hosted

    def bind(self) -> None:
        """Open and bind the sockets here, with no thread of their own: an actor's thread runs
        the loop through ``serve`` (raises OSError, as ``start`` does, if it cannot bind)."""
        if self._thread is not None or self.hosted:
            raise RuntimeError(f"transport {self.name} already started")
        self._running = True
        self._open()
        self.hosted = True

    def serve(self, timeout: float, wake_fd: int | None = None) -> bool:
        """One turn of the loop on the host's thread: wait up to ``timeout`` seconds for a frame,
        a send from another thread or ``wake_fd`` (the host's own mailbox) to be readable, and
        handle what came (frames go to ``on_frame`` on this thread). The first call names the
        host: from then on its sends are written at once, without the mailbox. False when the
        wait ended with nothing readable (its timeout passed)."""
        with self._host_lock:
            if self._closed:
                if wake_fd is not None:  # stopped under its host: wait as asked, on the fd only
                    return bool(select.select([wake_fd], [], [], max(0.0, timeout))[0])
                return False
            if self._host is None:
                self._host = threading.get_ident()
            if wake_fd is not None and wake_fd not in self._wake_fds:
                self._wake_fds.add(wake_fd)
                self._poller.register(wake_fd, zmq.POLLIN)
            # Rounded up: a turn that ends a hair before the host's deadline is a wakeup for nothing.
            return self._turn(math.ceil(max(0.0, timeout) * 1000))

    def stop(self) -> None:
        if not self.hosted:
            super().stop()
            return
        self._running = False
        self._mailbox.wake()  # ends a turn the host may be waiting in
        with self._host_lock:
            if not self._closed:
                self._closed = True
                self._close()
                self._mailbox.close()

    def _write_hosted(self, batch: list[_Outbound]) -> None:
        with self._host_lock:
            if self._closed:
                return
            for out in batch:
                self._write(out)

    # ----------------------------------------------------------------- transport thread

    def _run(self) -> None:
        try:
            self._open()
        except OSError as exc:
            self._ready(exc)
            return
        self._ready()
        try:
            while self._running:
                self._turn(1000)
        except Exception:
            logger.exception("transport {} crashed", self.name)
        finally:
            self._close()

    def _open(self) -> None:
        """Make and bind the ROUTER (raises OSError when it cannot), set up CURVE if asked."""
        context = self._context = zmq.Context.instance()
        router = context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.RCVHWM, 10_000)
        # A memory guard only: frames between max_frame and this limit are counted and
        # dropped by us; beyond it ZeroMQ drops the connection before buffering the frame.
        router.setsockopt(zmq.MAXMSGSIZE, 4 * self._max_frame + 4096)
        poller = self._poller
        if self._curve is not None:
            try:
                zap = ZapHandler.for_context(context)
                zap.allow(self._zap_domain, [self._curve.public])
            except RuntimeError as exc:  # another ZAP handler owns this context
                router.close(0)
                raise OSError(str(exc)) from exc
            self._zap = zap
            if self._on_zap_death is not None:
                zap.watch(self._on_zap_death)
            secure_server(router, self._zap_domain, self._curve.public, self._curve.secret)
            self._watch(poller, router, "")
        try:
            if self.port == 0:
                self.port = router.bind_to_random_port(f"tcp://{self.bind_host}")
            else:
                router.bind(f"tcp://{self.bind_host}:{self.port}")
        except zmq.ZMQError as exc:
            self._close_monitors()
            router.close(0)
            self._forget_zap()
            raise OSError(f"cannot bind {self.bind_host}:{self.port}: {exc}") from exc
        self._router = router
        self._headers = {c: encode_header(c, self.address) for c in Channel}
        poller.register(router, zmq.POLLIN)
        self._mailbox_fd = self._mailbox.fileno()
        poller.register(self._mailbox_fd, zmq.POLLIN)

    def _turn(self, timeout_ms: int) -> bool:
        """Poll once, then read frames, write what other threads queued, read the monitors,
        and hand the frames read to ``on_frame``. False when the poll found nothing readable."""
        router = self._router
        # zmq_poll itself, not Poller.poll's wrapper (the same call on the same list): every
        # wake-up of an idle node goes through here.
        events = dict(zmq_poll(self._poller.sockets, timeout_ms))
        if router in events:
            self._receive_batch(router)
        if self._mailbox_fd in events:
            for command in self._mailbox.drain():
                if isinstance(command, _Outbound):
                    self._write(command)
                else:
                    self._close_peer(command.address)
        if self._monitors:
            for monitor in [m for m in self._monitors if m in events]:
                self._read_monitor(monitor)
        if self._inbound:
            self._deliver()
        return bool(events)

    def _close(self) -> None:
        self._close_monitors()
        for sock in self._dealers.values():
            sock.close(0)
        self._dealers.clear()
        if self._router is not None:
            self._router.close(0)
            self._router = None
        self._forget_zap()

    def _forget_zap(self) -> None:
        zap, self._zap = self._zap, None
        if zap is not None:
            zap.forget(self._zap_domain)
            if self._on_zap_death is not None:
                zap.unwatch(self._on_zap_death)

    # ----------------------------------------------------------------- handshake reports

    def _watch(self, poller: zmq.Poller, sock: zmq.Socket, address: str) -> None:
        # A unique address of our own: pyzmq's default names the endpoint after the socket's
        # file descriptor, which a new socket can reuse before the old one is fully closed.
        endpoint = f"inproc://orion-monitor-{next(_monitor_ids)}"
        sock.monitor(endpoint, MONITORED_EVENTS)
        monitor = sock.context.socket(zmq.PAIR)
        monitor.setsockopt(zmq.LINGER, 0)
        monitor.connect(endpoint)
        self._monitors[monitor] = (address, sock)
        poller.register(monitor, zmq.POLLIN)

    def _read_monitor(self, monitor: zmq.Socket) -> None:
        address = self._monitors[monitor][0]
        while True:
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if address:
                self.handshakes.dealer_event(address, event)
            else:
                self.handshakes.listener_event(event)

    def _unwatch(self, poller: zmq.Poller, address: str) -> None:
        for monitor in [m for m, (a, _) in self._monitors.items() if a == address]:
            poller.unregister(monitor)
            self._stop_monitor(monitor)
        self.handshakes.forget(address)

    def _close_monitors(self) -> None:
        for monitor in list(self._monitors):
            self._stop_monitor(monitor)

    def _stop_monitor(self, monitor: zmq.Socket) -> None:
        # Stop the monitor from this thread before either socket closes: closing a watched
        # socket with its monitor still on can hang the context's I/O thread (libzmq 4.3),
        # which stalls every socket of the process.
        _, watched = self._monitors.pop(monitor)
        if not watched.closed:
            watched.disable_monitor()
        monitor.close(0)

    def _receive_batch(self, router: zmq.Socket) -> None:
        accepted = 0
        try:
            for _ in range(RECV_BATCH):
                if not socket_option(router, EVENTS) & POLLIN:
                    return
                try:
                    parts = [recv_frame(router, NOBLOCK)]
                    while socket_option(router, RCVMORE):
                        parts.append(recv_frame(router, NOBLOCK))
                except zmq.Again:
                    return
                accepted += self._accept(parts)
        finally:
            if accepted:
                self._count("received", accepted)  # one lock per batch, not one per frame

    def _decode_header(self, header: bytes) -> tuple[Channel, str]:
        # A peer sends the same few headers over and over: remember the parsed ones.
        known = self._header_cache.get(header)
        if known is None:
            known = decode_header(header)
            if len(self._header_cache) >= 4096:
                self._header_cache.clear()
            self._header_cache[header] = known
        return known

    def _accept(self, parts: list[bytes]) -> int:
        """1 when the frame is kept for ``on_frame`` (counted as received by the caller), else 0."""
        # parts[0] is the ROUTER's identity of the connection; then header and payload.
        if len(parts) != 3:
            self._count("dropped_malformed")
            return 0
        _, header, payload = parts
        try:
            channel, sender = self._decode_header(header)
        except FrameError:
            self._count("dropped_malformed")
            return 0
        if len(payload) > self._max_frame:
            self._count("dropped_oversized")
            self._warn_oversize(
                f"dropped a {len(payload)}-byte {channel.name} frame from {sender}: over the "
                f"{self._max_frame}-byte frame limit"
            )
            return 0
        if sender in self._blocked:
            self._count("dropped_blocked")
            return 0
        self._inbound.append((channel, payload))
        return 1

    def _deliver(self) -> None:
        inbound, self._inbound = self._inbound, []
        for channel, payload in inbound:
            try:
                self._on_frame(channel, payload)
            except Exception:
                # The callback belongs to the node; its bug must not take the transport down.
                self._count("callback_errors")
                logger.exception("transport {}: on_frame failed for a {} frame", self.name, channel.name)

    def _dealer(self, address: str, gossip: bool) -> zmq.Socket:
        assert self._context is not None
        key = (address, gossip)
        sock = self._dealers.get(key)
        if sock is None:
            sock = self._context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
            sock.setsockopt(zmq.IMMEDIATE, 1 if gossip else 0)
            sock.setsockopt(zmq.SNDHWM, GOSSIP_SNDHWM if gossip else RELIABLE_SNDHWM)
            if self._curve is not None:
                sock.setsockopt(zmq.CURVE_SERVERKEY, self._curve.public)
                sock.setsockopt(zmq.CURVE_PUBLICKEY, self._curve.public)
                sock.setsockopt(zmq.CURVE_SECRETKEY, self._curve.secret)
                self._watch(self._poller, sock, address)
            sock.connect(f"tcp://{address}")
            self._dealers[key] = sock
        return sock

    def _write(self, out: _Outbound) -> None:
        if out.address in self._blocked:
            self._count("dropped_blocked", len(out.payloads))
            return
        try:
            sock = self._dealer(out.address, out.channel is Channel.GOSSIP)
        except zmq.ZMQError as exc:  # e.g. an address that does not parse
            logger.warning("transport {}: cannot connect to {!r}: {}", self.name, out.address, exc)
            self._count("dropped_send_error", len(out.payloads))
            return
        header = self._headers[out.channel]
        sent = 0
        try:
            for payload in out.payloads:
                # ZeroMQ queues a message's parts together or not at all: a full queue refuses
                # the header, never the payload after it.
                send_frame(sock, header, NOBLOCK_MORE)
                send_frame(sock, payload, NOBLOCK, len(payload) < 65536)
                sent += 1
        except zmq.Again:
            self._count("dropped_full", len(out.payloads) - sent)
        except zmq.ZMQError:
            self._count("dropped_send_error", len(out.payloads) - sent)
        if sent:
            self._count("sent", sent)

    def _close_peer(self, address: str) -> None:
        self._unwatch(self._poller, address)
        for gossip in (True, False):
            sock = self._dealers.pop((address, gossip), None)
            if sock is not None:
                sock.close(0)
