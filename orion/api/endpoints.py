"""Client-side endpoints: parse "host:port", check what listens there, remember what answered.

``parse_endpoints`` refuses what cannot be an API endpoint (``127.0.0.1``, ``http://...``) at
once, naming it. ``probe`` opens one TCP connection before a ZeroMQ socket is pointed at an
endpoint: a closed port is refused by the kernel at once (a killed node costs no timeout), a
ZeroMQ peer sends its ZMTP signature (first byte 0xFF) as soon as it accepts, whatever it
receives, and an HTTP server (the REST mirror, a common mix-up) answers the short request the
probe sends with "HTTP/". Without the probe, a REQ socket pointed at a REST port or a closed
port just waits for its timeout, on every attempt.

``EndpointMemory`` keeps, per endpoint list, the endpoint that answered last in a small file
under the user's cache directory, so the next ``orion`` command starts there: a dead host
first in ORION_ENDPOINTS costs one timeout once, not on every command. Trying all endpoints
in parallel would avoid even that one timeout, but sends every request (writes included)
to several nodes, or needs a probe round to all of them on every command; the remembered
endpoint costs nothing while it stays up. The file is a hint: unreadable or unwritable, it
is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Short enough that a ZMTP peer reading it as a ZMTP 1.0 frame (length 0x47 = 'G') never
# completes one; a complete request line, so HTTP servers answer it.
HTTP_PROBE = b"GET /health HTTP/1.0\r\n\r\n"
ZMTP_SIGNATURE_START = 0xFF
MAX_PROBE_ANSWER = 4096
MAX_REMEMBERED = 64  # endpoint lists kept in the memory file
ENDPOINT_HINT = "expected host:port, e.g. 127.0.0.1:7301 (the node's [ports] api)"


class InvalidEndpointText(ValueError):
    """An endpoint that is not "host:port"; the message names it and says what is wrong."""


def parse_endpoint(text: str) -> tuple[str, int]:
    """("127.0.0.1", 7301) from "127.0.0.1:7301" (IPv6 as "[::1]:7301")."""
    value = text.strip()
    if "://" in value:
        scheme = value.split("://", 1)[0]
        raise InvalidEndpointText(f"{value}: {ENDPOINT_HINT}; not a URL (drop '{scheme}://')")
    host, sep, port_text = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise InvalidEndpointText(f"{value}: {ENDPOINT_HINT}; write an IPv6 address as [addr]:port")
    if not sep or not host or any(c.isspace() or c in "/?#@" for c in host):
        raise InvalidEndpointText(f"{value}: {ENDPOINT_HINT}")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise InvalidEndpointText(f"{value}: {ENDPOINT_HINT}; the port must be a number in 1-65535")
    return host, int(port_text)


def parse_endpoints(endpoints: list[str] | str) -> list[str]:
    """The endpoints, stripped and checked (a string is split at commas); empty ones dropped."""
    items = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
    result = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidEndpointText(f"{item!r}: {ENDPOINT_HINT}")
        if item.strip():
            parse_endpoint(item)
            result.append(item.strip())
    return result


def zmq_address(endpoint: str) -> str:
    return f"tcp://{endpoint.strip()}"


# ---------------------------------------------------------------------- probe


@dataclass(frozen=True, slots=True)
class Probe:
    """What listens at an endpoint. ``usable``: a ZeroMQ peer answered. ``wrong``: something
    else answered, for good (``reason`` says what). Otherwise the endpoint is down for now."""

    usable: bool
    wrong: bool = False
    reason: str = ""


def probe(endpoint: str, timeout: float) -> Probe:
    """Connect, send a short HTTP request, and look at the first bytes of the answer."""
    host, port = parse_endpoint(endpoint)
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:  # may be a typo, or a name server that is down: not final
        return Probe(False, reason=f"{endpoint} (cannot resolve {host!r}: {exc.strerror})")
    except TimeoutError:
        return Probe(False, reason=f"{endpoint} (no answer in {timeout:g}s)")
    except ConnectionRefusedError:
        return Probe(False, reason=f"{endpoint} (connection refused: nothing listens there)")
    except OSError as exc:
        return Probe(False, reason=f"{endpoint} ({exc.strerror or exc})")
    with sock:
        answer = b""
        try:
            sock.sendall(HTTP_PROBE)
            while len(answer) < MAX_PROBE_ANSWER:
                if answer[:1] == bytes([ZMTP_SIGNATURE_START]):
                    return Probe(True)
                if answer and not b"HTTP/".startswith(answer[:5]):
                    break  # neither ZMTP nor HTTP: what came so far says enough
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = sock.recv(MAX_PROBE_ANSWER - len(answer))
                if not chunk:
                    break
                answer += chunk
        except TimeoutError:
            if not answer:
                return Probe(False, reason=f"{endpoint} (no answer in {timeout:g}s)")
        except OSError as exc:
            if not answer:
                return Probe(False, reason=f"{endpoint} ({exc.strerror or exc})")
    if answer[:1] == bytes([ZMTP_SIGNATURE_START]):
        return Probe(True)
    if not answer:
        return Probe(False, reason=f"{endpoint} (closed the connection without a word)")
    if answer.startswith(b"HTTP/"):
        return Probe(False, wrong=True, reason=_rest_port_message(endpoint, answer))
    shown = answer[:40].decode("ascii", "replace").splitlines()[0] if answer.strip() else repr(answer[:16])
    return Probe(False, wrong=True, reason=f"{endpoint} is not an Orion API port (it answered {shown!r})")


def _rest_port_message(endpoint: str, answer: bytes) -> str:
    """Names the API port when the answer is Orion's /health and says it."""
    _, _, body = answer.partition(b"\r\n\r\n")
    health: dict[str, object] = {}
    with contextlib.suppress(ValueError):
        decoded = json.loads(body.decode() or "{}")
        health = decoded if isinstance(decoded, dict) else {}
    api_port = health.get("apiPort")
    node = health.get("node")
    if isinstance(api_port, int) and api_port:
        host = endpoint.rpartition(":")[0]
        of_node = f" of {node}" if isinstance(node, str) and node else ""
        return f"{endpoint} is the REST port{of_node}; the API port is {host}:{api_port}"
    return (
        f"{endpoint} is a REST (HTTP) port; the CLI and the client need the API port "
        "(the node's [ports] api, e.g. 7301)"
    )


# ---------------------------------------------------------------------- memory


def cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "orion" / "endpoint"


class EndpointMemory:
    """The endpoint that answered last, per endpoint list, kept across processes in a file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else cache_file()

    @staticmethod
    def key(endpoints: list[str]) -> str:
        # The same set in another order is the same cluster.
        return ",".join(sorted(endpoints))

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}

    def recall(self, endpoints: list[str]) -> str | None:
        remembered = self._load().get(self.key(endpoints))
        return remembered if remembered in endpoints else None

    def remember(self, endpoints: list[str], endpoint: str) -> None:
        """Never raises: a read-only or missing cache directory only loses the hint."""
        entries = self._load()
        key = self.key(endpoints)
        if entries.get(key) == endpoint:
            return
        entries.pop(key, None)
        entries[key] = endpoint  # newest last: the oldest lists go first past the cap
        while len(entries) > MAX_REMEMBERED:
            entries.pop(next(iter(entries)))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix=".endpoint-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w") as out:
                    json.dump(entries, out)
                os.replace(temporary, self.path)  # atomic: concurrent commands never read half a file
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError:
            pass
