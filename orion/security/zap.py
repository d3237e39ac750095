"""The ZeroMQ authentication (ZAP, RFC 27) handler: admits CURVE clients by public key.

libzmq asks the handler bound at ``inproc://zeromq.zap.01`` of a socket's context about
every incoming CURVE connection that completed its cryptographic handshake. There is one
handler per context (the address is fixed), so sockets register a ZAP domain with the
public keys they admit (or any key: the client API, whose clients prove themselves with a
token), and the handler answers per domain. An unknown domain is refused.

Every CURVE server socket sets ``ZMQ_ZAP_ENFORCE_DOMAIN`` (``secure_server``): without it,
libzmq admits every client that completes the handshake when no handler is bound, e.g. after
the handler thread died. A handler that dies tells whoever ``watch``es it (a node stops).

The handler owns its REP socket on its own thread (DESIGN rule 3). Refusals are logged with
the peer's address, at most once per address and domain every ``LOG_EVERY_S`` seconds with a
count, so a misconfigured node retrying every second cannot flood the log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

import zmq
from loguru import logger
from zmq.utils import z85

from orion.security.keys import fingerprint

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_VERSION = b"1.0"
LOG_EVERY_S = 30.0

_handlers: dict[int, ZapHandler] = {}
_handlers_lock = threading.Lock()
ANY_KEY = None  # allow(domain, ANY_KEY): any CURVE client that completes the handshake


def secure_server(sock: zmq.Socket, domain: str, public: bytes, secret: bytes) -> None:
    """Make ``sock`` a CURVE server whose every connection must be admitted by the ZAP handler."""
    sock.setsockopt(zmq.ZAP_DOMAIN, domain.encode())
    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)


class ZapHandler:
    def __init__(self, context: zmq.Context) -> None:
        self._context = context
        self._domains: dict[bytes, frozenset[bytes] | None] = {}
        self._watchers: list[Callable[[str], None]] = []
        self.alive = False
        self._lock = threading.Lock()
        self._last_logged: dict[tuple[bytes, bytes], tuple[float, int]] = {}
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.refused = 0
        self.admitted = 0
        self._thread = threading.Thread(target=self._run, name="zap-handler", daemon=True)

    @classmethod
    def for_context(cls, context: zmq.Context) -> ZapHandler:
        """The running handler of ``context``, started on first use."""
        with _handlers_lock:
            handler = _handlers.get(id(context))
            if handler is None:
                handler = cls(context)
                handler._start()
                _handlers[id(context)] = handler
            return handler

    def allow(self, domain: str, public_keys: Iterable[bytes] | None) -> None:
        """Admit these Z85 public keys (None: any key) on sockets whose ZAP_DOMAIN is ``domain``."""
        raw = None if public_keys is None else frozenset(z85.decode(k) for k in public_keys)
        with self._lock:
            self._domains[domain.encode()] = raw

    def watch(self, on_death: Callable[[str], None]) -> None:
        """Call ``on_death(reason)`` (from the handler's thread) if the handler dies; at once
        if it is dead already."""
        with self._lock:
            if self.alive:
                self._watchers.append(on_death)
                return
        on_death("the ZAP handler is not running: CURVE connections are refused")

    def unwatch(self, on_death: Callable[[str], None]) -> None:
        with self._lock:
            if on_death in self._watchers:
                self._watchers.remove(on_death)

    def forget(self, domain: str) -> None:
        with self._lock:
            self._domains.pop(domain.encode(), None)

    # ------------------------------------------------------------------ handler thread

    def _start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        sock = self._context.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.bind(ZAP_ENDPOINT)
        except zmq.ZMQError as exc:
            sock.close(0)
            self._error = RuntimeError(f"cannot start the ZAP handler: {exc}")
            self._ready.set()
            return
        self.alive = True
        self._ready.set()
        death = ""
        try:
            while True:
                try:
                    request = sock.recv_multipart()
                except zmq.ContextTerminated:
                    return
                sock.send_multipart(self._answer(request))
        except zmq.ContextTerminated:
            return
        except Exception as exc:
            logger.exception("ZAP handler crashed: new CURVE connections will be refused")
            death = f"the ZAP handler crashed ({type(exc).__name__}: {exc}): CURVE connections are refused"
        finally:
            self.alive = False
            sock.close(0)  # first: a new handler can bind the address once it is told
            if death:
                self._died(death)

    def _died(self, reason: str) -> None:
        with _handlers_lock:  # the next for_context starts a new handler
            if _handlers.get(id(self._context)) is self:
                del _handlers[id(self._context)]
        with self._lock:
            self.alive = False
            watchers, self._watchers = self._watchers, []
        for on_death in watchers:
            try:
                on_death(reason)
            except Exception:
                logger.exception("ZAP handler: a death watcher failed")

    def _answer(self, request: list[bytes]) -> list[bytes]:
        if len(request) < 6 or request[0] != ZAP_VERSION:
            request_id = request[1] if len(request) > 1 else b""
            return [ZAP_VERSION, request_id, b"500", b"malformed ZAP request", b"", b""]
        _, request_id, domain, address, _identity, mechanism, *credentials = request
        with self._lock:
            known, allowed = domain in self._domains, self._domains.get(domain)
        key = credentials[0] if mechanism == b"CURVE" and credentials else b""
        if known and mechanism == b"CURVE" and len(key) == 32 and (allowed is None or key in allowed):
            self.admitted += 1
            return [ZAP_VERSION, request_id, b"200", b"OK", b"cluster", b""]
        self.refused += 1
        self._log_refusal(domain, address, mechanism, key)
        return [ZAP_VERSION, request_id, b"400", b"key not admitted", b"", b""]

    def _log_refusal(self, domain: bytes, address: bytes, mechanism: bytes, key: bytes) -> None:
        now = time.monotonic()
        slot = (domain, address)
        last, suppressed = self._last_logged.get(slot, (0.0, 0))
        if last and now - last < LOG_EVERY_S:
            self._last_logged[slot] = (last, suppressed + 1)
            return
        if len(self._last_logged) > 4096:
            self._last_logged.clear()
        self._last_logged[slot] = (now, 0)
        who = (
            f"key {fingerprint(z85.encode(key))}"
            if len(key) == 32
            else f"mechanism {mechanism.decode(errors='replace')}"
        )
        more = f" ({suppressed} more refusals since the last report)" if suppressed else ""
        logger.warning(
            "refused a connection from {} on {}: its {} is not this cluster's key{}",
            address.decode(errors="replace") or "?",
            domain.decode(errors="replace"),
            who,
            more,
        )
