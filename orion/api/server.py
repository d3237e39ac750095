"""The ZeroMQ client API: one thread owns a ROUTER that serves many REQ clients at once.

Each request is decoded and validated here; a bad one is answered at once with an
"invalid" Reply and never reaches the node. A good one goes to ``handler(request, reply)``,
which must return quickly (the node's callback tells an actor). The actor answers later,
from any thread, by calling ``reply(Reply)``: the reply is handed back to this thread
through a Mailbox and sent with the client's envelope (DESIGN rules 3 and 8).

Wire format: a REQ client sends ``[body]`` or ``[token, body]``. With ``tokens`` set (secure
clusters) a request without a token the TokenSet accepts is answered "unauthorized" and
never reaches the handler. The token travels beside the request, never inside it, so the
handler, forwarding to the leader and any log line only ever see requests without secrets.

Encryption: with ``curve`` (a key pair; the node's API key, by default the cluster key) the
ROUTER is a CURVE server: every request and reply is encrypted, a client proves it talks to
this cluster by expecting its public key, and a plain (non-CURVE) client cannot complete the
handshake. Any client key is admitted by the ZAP handler (clients have no keys of their own;
the token says who may act), and the ZAP domain is enforced, so with no handler answering
nobody gets in.

Limits, so one misbehaving client cannot starve the others: ``rate_limit_per_s`` is a token
bucket per client IP address (ZeroMQ's Peer-Address: reconnecting does not start a new one),
checked before anything is decoded; ``max_request`` bounds each frame (ZeroMQ drops a
connection sending a larger one before buffering it, so a token-less client can make the node
buffer at most that much per connection). Connections are bounded too (ConnectionTable): at
most ``max_connections`` open and ``max_connections_per_address`` from one address, a CURVE
handshake must finish within ``handshake_timeout``, and a connection silent for
``idle_timeout`` is closed.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import zmq
from loguru import logger
from zmq.utils.monitor import recv_monitor_message

from orion.api import auth
from orion.api.protocol import (
    MAX_REQUEST,
    ErrorCode,
    Reply,
    Request,
    RequestError,
    SubmitTask,
    checked_reply,
    decode_request,
    encode_reply,
)
from orion.security.connections import ConnectionTable, track_descriptor
from orion.security.keys import ClusterKey, TokenSet
from orion.security.zap import ANY_KEY, ZapHandler, secure_server
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

ReplyFn = Callable[[Reply], None]
Handler = Callable[[Request, ReplyFn], None]
# A front end's last step before the handler (the node's task policy): the request to pass on,
# or ValueError whose message is the "invalid" answer.
Prepare = Callable[[Request], Request]
RECV_BATCH = 256
MAX_BUCKETS = 10_000  # client addresses tracked by the rate limiter; the least recently seen go first
REFUSAL_LOG_EVERY_S = 30.0
FRAME_OVERHEAD = 64 * 1024  # a little over max_request is answered "too large"; more drops the connection
_CONNECTION_EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED
_domains = itertools.count(1)


@dataclass(frozen=True, slots=True)
class _Outgoing:
    envelope: tuple[bytes, ...]
    body: bytes


class _TokenBucket:
    def __init__(self, rate_per_s: float) -> None:
        self.rate = rate_per_s
        self.burst = max(1.0, rate_per_s)  # a one-second burst, and at least one request
        self.tokens = self.burst
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class _OneShotReply:
    """The ``reply`` callable given to the handler: thread-safe, answers at most once."""

    __slots__ = ("_envelope", "_lock", "_server", "_used")

    def __init__(self, server: ApiServer, envelope: tuple[bytes, ...]) -> None:
        self._server = server
        self._envelope = envelope
        self._used = False
        self._lock = threading.Lock()

    def __call__(self, reply: Reply) -> None:
        with self._lock:
            if self._used:
                return
            self._used = True
        self._server._post(self._envelope, reply)


class _SubmitReply:
    """Turns the answer to a submit into a ``conflict`` when the id belongs to another spec."""

    __slots__ = ("_reply", "_request")

    def __init__(self, request: SubmitTask, reply: ReplyFn) -> None:
        self._request = request
        self._reply = reply

    def __call__(self, reply: Reply) -> None:
        self._reply(checked_reply(self._request, reply))


class ApiServer(SocketThread[_Outgoing]):
    def __init__(
        self,
        bind_host: str,
        port: int,
        handler: Handler,
        *,
        max_request: int = MAX_REQUEST,
        rate_limit_per_s: float | None = None,
        tokens: TokenSet | None = None,
        name: str = "",
        curve: ClusterKey | None = None,
        on_zap_death: Callable[[str], None] | None = None,
        max_connections: int = 1024,
        max_connections_per_address: int = 64,
        handshake_timeout: float = 5.0,
        idle_timeout: float = 300.0,
        prepare: Prepare | None = None,
    ) -> None:
        """``port=0`` binds a random free port (read ``port`` after ``start``).

        ``rate_limit_per_s`` applies to each client address; ``tokens`` (None: no
        authentication) are the client tokens this server accepts; ``curve`` (None: plain
        TCP) the server's CURVE key pair. ``on_zap_death(reason)`` is called if the ZAP
        handler dies (no client can connect any more).
        """
        self.bind_host = bind_host
        self.port = port
        self.name = name or f"api-{port}"
        super().__init__(f"api-{self.name}")
        self._handler = handler
        self._max_request = max_request
        self._rate = rate_limit_per_s or 0.0
        self._buckets: OrderedDict[bytes, _TokenBucket] = OrderedDict()
        self._tokens = tokens
        self._curve = curve
        self._prepare = prepare
        self._on_zap_death = on_zap_death
        self._handshake_ms = max(1, int(handshake_timeout * 1000))
        self.connections = ConnectionTable(
            f"API {self.name}", max_connections, max_connections_per_address, idle_timeout
        )
        self._zap_domain = f"api-{self.name}#{next(_domains)}"
        self._refusals_logged_at = 0.0
        self._refusals_held = 0
        self.stats: dict[str, int] = {
            "requests": 0,
            "invalid": 0,
            "rate_limited": 0,
            "unauthorized": 0,
            "replies": 0,
            "lost": 0,
        }

    def _post(self, envelope: tuple[bytes, ...], reply: Reply) -> None:
        try:
            body = encode_reply(reply)
        except (TypeError, ValueError) as exc:  # a result msgspec cannot encode: a node bug
            logger.error("API {}: cannot encode reply: {}", self.name, exc)
            body = encode_reply(Reply.failure(ErrorCode.INTERNAL, f"cannot encode reply: {exc}"))
        if not self._mailbox.put(_Outgoing(envelope, body)):
            self.stats["lost"] += 1

    # ------------------------------------------------------------------ server thread

    def _run(self) -> None:
        context = zmq.Context.instance()
        router = context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a vanished client raises instead of blocking
        router.setsockopt(zmq.SNDHWM, 10_000)
        router.setsockopt(zmq.MAXMSGSIZE, self._max_request + FRAME_OVERHEAD)
        router.setsockopt(zmq.HANDSHAKE_IVL, self._handshake_ms)
        zap: ZapHandler | None = None
        if self._curve is not None:
            try:
                zap = ZapHandler.for_context(context)
            except RuntimeError as exc:
                router.close(0)
                self._ready(OSError(str(exc)))
                return
            zap.allow(self._zap_domain, ANY_KEY)  # the token, checked per request, says who may act
            if self._on_zap_death is not None:
                zap.watch(self._on_zap_death)
            secure_server(router, self._zap_domain, self._curve.public, self._curve.secret)
        endpoint = f"inproc://orion-api-monitor-{self._zap_domain}"
        router.monitor(endpoint, _CONNECTION_EVENTS)
        monitor = context.socket(zmq.PAIR)
        monitor.setsockopt(zmq.LINGER, 0)
        monitor.connect(endpoint)
        try:
            if self.port == 0:
                self.port = router.bind_to_random_port(f"tcp://{self.bind_host}")
            else:
                router.bind(f"tcp://{self.bind_host}:{self.port}")
        except zmq.ZMQError as exc:
            self._close(router, monitor, zap)
            self._ready(OSError(f"cannot bind API on {self.bind_host}:{self.port}: {exc}"))
            return
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        poller.register(self._mailbox.fileno(), zmq.POLLIN)
        self._ready()
        sweep_every = min(1.0, self.connections.idle_timeout / 4)
        next_sweep = time.monotonic() + sweep_every
        try:
            while self._running:
                events = dict(poller.poll(int(sweep_every * 1000)))
                if monitor in events:
                    self._connection_events(monitor)
                if router in events:
                    self._receive_batch(router)
                if self._mailbox.fileno() in events:
                    for out in self._mailbox.drain():
                        self._send(router, out)
                if time.monotonic() >= next_sweep:
                    self.connections.sweep()
                    next_sweep = time.monotonic() + sweep_every
        except Exception:
            logger.exception("API server {} crashed", self.name)
        finally:
            self._close(router, monitor, zap)

    def _close(self, router: zmq.Socket, monitor: zmq.Socket, zap: ZapHandler | None) -> None:
        # The monitor stops before the socket closes: closing a watched socket can hang
        # libzmq's I/O thread (see orion/transport/peer.py).
        router.disable_monitor()
        monitor.close(0)
        router.close(0)
        self.connections.close_all()
        if zap is not None:
            zap.forget(self._zap_domain)
            if self._on_zap_death is not None:
                zap.unwatch(self._on_zap_death)

    def _connection_events(self, monitor: zmq.Socket) -> None:
        now = time.monotonic()
        for _ in range(RECV_BATCH):
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            fd = event["value"]
            if event["event"] != zmq.EVENT_ACCEPTED:
                self.connections.release(fd)
                continue
            tracked = track_descriptor(fd)
            if tracked is not None and not self.connections.admit(fd, tracked, now):
                tracked.shutdown()  # libzmq sees the peer go and reports DISCONNECTED
                tracked.close()

    def _receive_batch(self, router: zmq.Socket) -> None:
        # Only the rate limiter needs the peer's address, a property of the first frame's
        # message: the other frames come straight as bytes (no Frame object per frame).
        want_address = bool(self._rate)
        for _ in range(RECV_BATCH):
            if not socket_option(router, EVENTS) & POLLIN:
                return  # read out: no zmq.Again raised (and built) at the end of every batch
            address = ""
            try:
                if want_address:
                    first = recv_frame(router, NOBLOCK, False)
                    try:
                        address = first.get("Peer-Address")
                    except zmq.ZMQError:
                        address = ""
                    parts = [first.bytes]
                else:
                    parts = [recv_frame(router, NOBLOCK)]
            except zmq.Again:
                return
            while socket_option(router, RCVMORE):
                parts.append(recv_frame(router, NOBLOCK))
            self._serve(router, parts, address)

    def _serve(self, router: zmq.Socket, parts: list[bytes], address: str = "") -> None:
        # A REQ client's message arrives as [identity, b"", (token,) body]; everything up to
        # the empty delimiter is the envelope the reply must carry back. Identities that
        # ROUTER sockets give connections are never empty.
        try:
            delimiter = parts.index(b"", 1)
        except ValueError:
            delimiter = -1
        content = parts[delimiter + 1 :] if delimiter > 0 else []
        if not 1 <= len(content) <= 2:
            self.stats["invalid"] += 1
            return  # not a REQ client: there is no envelope we could answer on
        envelope, body = tuple(parts[: delimiter + 1]), content[-1]
        token = content[0] if len(content) == 2 else b""
        self.stats["requests"] += 1
        if self._rate and not self._bucket(address.encode() or parts[0]).take():
            self.stats["rate_limited"] += 1
            self._refuse(router, envelope, ErrorCode.UNAVAILABLE, "rate limited: try again")
            return
        why = auth.refusal(self._tokens, token)
        if why is not None:
            self.stats["unauthorized"] += 1
            self._log_refusal()
            self._refuse(router, envelope, ErrorCode.UNAUTHORIZED, auth.refusal_message(auth.Front.ZMQ, why))
            return
        try:
            request = decode_request(body, self._max_request)
            if self._prepare is not None:
                request = self._prepare(request)
        except RequestError as exc:
            self.stats["invalid"] += 1
            self._send(router, _Outgoing(envelope, encode_reply(exc.reply())))
            return
        except ValueError as exc:  # refused by the node's policy: the message names the rule
            self.stats["invalid"] += 1
            self._refuse(router, envelope, ErrorCode.INVALID, str(exc))
            return
        reply: ReplyFn = _OneShotReply(self, envelope)
        if isinstance(request, SubmitTask):
            reply = _SubmitReply(request, reply)
        try:
            self._handler(request, reply)
        except Exception as exc:
            logger.exception("API {}: handler failed on {}", self.name, type(request).__name__)
            reply(Reply.failure(ErrorCode.INTERNAL, f"internal error: {exc}"))

    def _bucket(self, client: bytes) -> _TokenBucket:
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._buckets.popitem(last=False)
            bucket = self._buckets[client] = _TokenBucket(self._rate)
        else:
            self._buckets.move_to_end(client)
        return bucket

    def _refuse(self, router: zmq.Socket, envelope: tuple[bytes, ...], code: str, message: str) -> None:
        self._send(router, _Outgoing(envelope, encode_reply(Reply.failure(code, message))))

    def _log_refusal(self) -> None:
        # Never the token itself; and at most one line per interval, with a count.
        now = time.monotonic()
        if self._refusals_logged_at and now - self._refusals_logged_at < REFUSAL_LOG_EVERY_S:
            self._refusals_held += 1
            return
        more = f" ({self._refusals_held} more since the last report)" if self._refusals_held else ""
        logger.warning("API {}: refused a request without a valid client token{}", self.name, more)
        self._refusals_logged_at, self._refusals_held = now, 0

    def _send(self, router: zmq.Socket, out: _Outgoing) -> None:
        try:
            for part in out.envelope:
                send_frame(router, part, NOBLOCK_MORE)
            send_frame(router, out.body, NOBLOCK)
            self.stats["replies"] += 1
        except zmq.ZMQError:
            self.stats["lost"] += 1  # the client went away (or its queue is full): it will retry
