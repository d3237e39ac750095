"""The ZeroMQ client API: one thread owns a ROUTER that serves many REQ clients at once.

Each request is decoded and validated here; a bad one is answered at once with an
"invalid" Reply and never reaches the node. A good one goes to ``handler(request, reply)``,
which must return quickly (the node's callback tells an actor). The actor answers later,
from any thread, by calling ``reply(Reply)``: the reply is handed back to this thread
through a Mailbox and sent with the client's envelope (DESIGN rules 3 and 8).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import zmq
from loguru import logger

from orion.api.protocol import (
    MAX_REQUEST,
    ErrorCode,
    Reply,
    Request,
    RequestError,
    decode_request,
    encode_reply,
)
from orion.transport.mailbox import Mailbox

ReplyFn = Callable[[Reply], None]
Handler = Callable[[Request, ReplyFn], None]
RECV_BATCH = 256


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


class ApiServer:
    def __init__(
        self,
        bind_host: str,
        port: int,
        handler: Handler,
        *,
        max_request: int = MAX_REQUEST,
        rate_limit_per_s: float | None = None,
        name: str = "",
    ) -> None:
        """``port=0`` binds a random free port (read ``port`` after ``start``)."""
        self.bind_host = bind_host
        self.port = port
        self.name = name or f"api-{port}"
        self._handler = handler
        self._max_request = max_request
        self._bucket = _TokenBucket(rate_limit_per_s) if rate_limit_per_s else None
        self._mailbox: Mailbox[_Outgoing] = Mailbox()
        self._thread: threading.Thread | None = None
        self._running = False
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self.stats: dict[str, int] = {"requests": 0, "invalid": 0, "rate_limited": 0, "replies": 0, "lost": 0}

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("API server already started")
        self._running = True
        self._thread = threading.Thread(target=self._run, name=f"api-{self.name}", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            self._thread.join()
            raise self._start_error

    def stop(self) -> None:
        thread = self._thread
        if thread is None or not self._running:
            return
        self._running = False
        self._mailbox.wake()
        thread.join()
        self._mailbox.close()

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
        router = zmq.Context.instance().socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a vanished client raises instead of blocking
        router.setsockopt(zmq.SNDHWM, 10_000)
        router.setsockopt(zmq.MAXMSGSIZE, 4 * self._max_request + 4096)
        try:
            if self.port == 0:
                self.port = router.bind_to_random_port(f"tcp://{self.bind_host}")
            else:
                router.bind(f"tcp://{self.bind_host}:{self.port}")
        except zmq.ZMQError as exc:
            router.close(0)
            self._start_error = OSError(f"cannot bind API on {self.bind_host}:{self.port}: {exc}")
            self._started.set()
            return
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(self._mailbox.fileno(), zmq.POLLIN)
        self._started.set()
        try:
            while self._running:
                events = dict(poller.poll(1000))
                if router in events:
                    self._receive_batch(router)
                if self._mailbox.fileno() in events:
                    for out in self._mailbox.drain():
                        self._send(router, out)
        except Exception:
            logger.exception("API server {} crashed", self.name)
        finally:
            router.close(0)

    def _receive_batch(self, router: zmq.Socket) -> None:
        for _ in range(RECV_BATCH):
            try:
                parts = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._serve(router, parts)

    def _serve(self, router: zmq.Socket, parts: list[bytes]) -> None:
        # A REQ client's message arrives as [identity, b"", body]; keep everything before
        # the body as the envelope so the reply finds its way back.
        if len(parts) < 3 or parts[-2] != b"":
            self.stats["invalid"] += 1
            return  # not a REQ client: there is no envelope we could answer on
        envelope, body = tuple(parts[:-1]), parts[-1]
        self.stats["requests"] += 1
        if self._bucket is not None and not self._bucket.take():
            self.stats["rate_limited"] += 1
            self._send(
                router,
                _Outgoing(
                    envelope, encode_reply(Reply.failure(ErrorCode.UNAVAILABLE, "rate limited: try again"))
                ),
            )
            return
        try:
            request = decode_request(body, self._max_request)
        except RequestError as exc:
            self.stats["invalid"] += 1
            self._send(router, _Outgoing(envelope, encode_reply(exc.reply())))
            return
        reply = _OneShotReply(self, envelope)
        try:
            self._handler(request, reply)
        except Exception as exc:
            logger.exception("API {}: handler failed on {}", self.name, type(request).__name__)
            reply(Reply.failure(ErrorCode.INTERNAL, f"internal error: {exc}"))

    def _send(self, router: zmq.Socket, out: _Outgoing) -> None:
        try:
            router.send_multipart((*out.envelope, out.body), zmq.NOBLOCK)
            self.stats["replies"] += 1
        except zmq.ZMQError:
            self.stats["lost"] += 1  # the client went away (or its queue is full): it will retry
