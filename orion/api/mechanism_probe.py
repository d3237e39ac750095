"""Ask a ZeroMQ listener which security mechanism it speaks (NULL or CURVE) before using it.

A REQ socket whose mechanism differs from the server's never completes its handshake: the
request just times out. A client sends the start of a ZMTP 3.0 greeting (signature and major
version: 11 bytes; libzmq answers with its whole 64-byte greeting then, while a complete
greeting with another mechanism makes it hang up first) and reads the server's greeting,
whose bytes 12-31 name the server's mechanism, so it
can say at once "this cluster's API is encrypted and you gave no key" (or refuse to send a
token in the clear to a server that does not encrypt) instead of timing out.
"""

from __future__ import annotations

import socket
import time

from orion.api.endpoints import parse_endpoint

GREETING_START = b"\xff" + bytes(8) + b"\x7f" + bytes([3])
GREETING_SIZE = 64


def server_mechanism(endpoint: str, timeout: float) -> str | None:
    """ "NULL", "CURVE" (or another mechanism name), or None if the listener did not say."""
    host, port = parse_endpoint(endpoint)
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(GREETING_START)
            answer = b""
            while len(answer) < GREETING_SIZE:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = sock.recv(GREETING_SIZE - len(answer))
                if not chunk:
                    break
                answer += chunk
    except OSError:
        return None
    if len(answer) < 32 or answer[:1] != b"\xff" or answer[10] < 3:
        return None
    return answer[12:32].rstrip(b"\0").decode("ascii", "replace")
