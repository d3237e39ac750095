"""Say clearly, on both sides, why a secured peer connection failed its CURVE handshake.

A node holding another cluster's key never reaches the ZAP handler: the listener cannot
decrypt its HELLO and drops the connection. libzmq reports that only through socket monitor
events, so the peer transport watches its sockets and hands the events to a HandshakeLog:

- listener side: ``HANDSHAKE_FAILED_*`` events (libzmq gives no peer address here);
- connecting side: a connection that closes before its handshake succeeded, or an explicit
  refusal (ZAP status 400), means the peer does not accept our key.

Each kind of report is logged at most once every ``LOG_EVERY_S`` seconds per peer, with a
count of what was held back, so a node retrying every second cannot flood the log.
"""

from __future__ import annotations

import time
from typing import Any

import zmq
from loguru import logger

LOG_EVERY_S = 30.0
MONITORED_EVENTS = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


def describe_failure(event: int, value: int) -> str:
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return "the other side's key was refused by the authenticator"
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        if value == zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
            return "it does not hold this cluster's key (CURVE decryption failed)"
        if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            return "it does not use CURVE (an insecure node, or another program?)"
        return f"ZeroMQ protocol error 0x{value:08x} (not an Orion peer?)"
    return "no detail from ZeroMQ"


class HandshakeLog:
    """Turns monitor events of one transport's sockets into rate-limited log lines."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failures = 0
        self._handshaken: dict[str, bool] = {}  # per outbound address: did this connection succeed?
        self._last: dict[str, tuple[float, int]] = {}

    def listener_event(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind & _FAILED:
            self.failures += 1
            self._report("listener", "refused an incoming connection", describe_failure(kind, event["value"]))

    def dealer_event(self, address: str, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == zmq.EVENT_CONNECTED:
            self._handshaken[address] = False
        elif kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self._handshaken[address] = True
        elif kind & _FAILED or (kind == zmq.EVENT_DISCONNECTED and self._handshaken.get(address) is False):
            # Whether libzmq reports a failed handshake or just a closed connection depends
            # on timing; both mean the same thing for an Orion peer.
            self.failures += 1
            self._handshaken.pop(address, None)
            reason = (
                "its authenticator refused our key"
                if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH
                else "it does not accept our cluster key (another cluster, or an insecure node)"
            )
            self._report(address, f"peer {address} refused our connection during the CURVE handshake", reason)

    def forget(self, address: str) -> None:
        self._handshaken.pop(address, None)

    def _report(self, slot: str, what: str, reason: str) -> None:
        now = time.monotonic()
        last, held = self._last.get(slot, (0.0, 0))
        if last and now - last < LOG_EVERY_S:
            self._last[slot] = (last, held + 1)
            return
        self._last[slot] = (now, 0)
        more = f" ({held} more since the last report)" if held else ""
        logger.warning("transport {}: {}: {}{}", self.name, what, reason, more)
