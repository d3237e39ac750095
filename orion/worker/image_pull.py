"""Pull an image over a connection of our own to the Docker engine, so that a pull can be cancelled.

The Docker SDK streams a pull over a pooled connection it never hands out: a caller that gives up
can only stop reading, and dockerd goes on downloading (and a retry starts a second pull beside
it). dockerd cancels a pull when the client connection that asked for it goes away, so each pull
here opens its own socket to the engine (the unix socket or TCP address, with TLS, that the
worker's client uses) and sends ``POST /images/create`` itself. When the time is up a watchdog
shuts that socket down: shutdown wakes the thread blocked reading the progress stream (close
alone would not), the caller then closes it, and dockerd sees its client go and stops.

The progress stream is JSON objects, one per line. A pull can fail after the engine answered 200
(a layer the registry lacks, a digest that does not match): the failure is then an
``errorDetail`` line in the stream, so a 200 alone never means the image arrived.
"""

from __future__ import annotations

import enum
import http.client
import json
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import docker.errors
from docker import auth
from docker.utils import parse_repository_tag

_READ_SIZE = 64 * 1024
_ERROR_BODY_LIMIT = 64 * 1024  # an error answer is a short JSON object; never buffer more
_QUOTED_LIMIT = 200  # characters of an unreadable line quoted in the failure


class PullOutcome(enum.Enum):
    PULLED = "pulled"
    FAILED = "failed"
    TIMED_OUT = "timed out"


@dataclass(frozen=True)
class PullResult:
    """``message``: the engine's or registry's words when FAILED, the last status when PULLED,
    "no result within N s; the pull was cancelled" when TIMED_OUT."""

    outcome: PullOutcome
    message: str = ""


def timed_out(timeout: float) -> PullResult:
    return PullResult(PullOutcome.TIMED_OUT, f"no result within {timeout:g} s; the pull was cancelled")


class PullProgress:
    """The engine's progress stream, fed in pieces of any size as they arrive."""

    def __init__(self) -> None:
        self._pending = b""
        self.error: str | None = None
        self.last_status = ""

    def feed(self, data: bytes) -> None:
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            self._line(line)

    def end(self) -> PullResult:
        """The stream ended cleanly: the result is whatever it said."""
        if self._pending.strip():
            self._line(self._pending)
        self._pending = b""
        if self.error is not None:
            return PullResult(PullOutcome.FAILED, self.error)
        return PullResult(PullOutcome.PULLED, self.last_status)

    def _line(self, raw: bytes) -> None:
        text = raw.strip()
        if not text:
            return
        try:
            event = json.loads(text)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            quoted = text[:_QUOTED_LIMIT].decode("utf-8", "replace")
            self._fail(f"unreadable progress line from the Docker engine: {quoted!r}")
            return
        if event.get("errorDetail") or event.get("error"):
            self._fail(_error_text(event))
        elif isinstance(event.get("status"), str):
            self.last_status = event["status"]

    def _fail(self, message: str) -> None:
        # The first error is the cause; anything after it is the engine winding down.
        if self.error is None:
            self.error = message.strip() or "the Docker engine reported an error without a message"


def _error_text(event: dict[str, Any]) -> str:
    detail = event.get("errorDetail")
    if isinstance(detail, dict) and detail.get("message"):
        return str(detail["message"])
    if event.get("error"):
        return str(event["error"])
    return str(detail)


def error_answer(status: int, body: bytes) -> str:
    """The message of a non-200 answer: dockerd sends {"message": "..."}."""
    try:
        decoded = json.loads(body)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and decoded.get("message"):
        return str(decoded["message"])
    text = body[:_QUOTED_LIMIT].decode("utf-8", "replace").strip()
    return f"the Docker engine answered {status}" + (f": {text}" if text else "")


# -- the connection to the engine ------------------------------------------------------------


@dataclass(frozen=True)
class EngineAddress:
    """Where the engine listens: a unix socket path, or a TCP host and port (TLS when set)."""

    socket_path: str = ""
    host: str = ""
    port: int = 0
    tls: ssl.SSLContext | None = None

    def open(self, timeout: float) -> socket.socket:
        if self.socket_path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(self.socket_path)
            except BaseException:
                sock.close()
                raise
            return sock
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        if self.tls is None:
            return sock
        try:
            return self.tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


class UnsupportedEngine(ValueError):
    pass


def engine_address(api: Any) -> EngineAddress:
    """The address a docker.APIClient talks to. Its unix socket path is only kept by the
    SDK's adapter (``_custom_adapter.socket_path``): reading it there is what makes the pull go
    to the same engine as every other call, whatever DOCKER_HOST or base_url chose it."""
    base_url = str(api.base_url)
    if base_url == "http+docker://localhost":
        path = getattr(getattr(api, "_custom_adapter", None), "socket_path", "")
        if path:
            return EngineAddress(socket_path=str(path))
    parsed = urllib.parse.urlsplit(base_url)
    if parsed.scheme in ("http", "https") and parsed.hostname:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        tls = _tls_context(api.verify, api.cert) if parsed.scheme == "https" else None
        return EngineAddress(host=parsed.hostname, port=port, tls=tls)
    raise UnsupportedEngine(
        f"docker base_url {base_url!r}: image pulls need a unix socket or an http(s) address "
        "of the engine (ssh:// and npipe:// are not supported)"
    )


def _tls_context(verify: bool | str, cert: str | tuple[str, str] | None) -> ssl.SSLContext:
    """The TLS the SDK's requests session uses: ``verify`` a flag or a CA file, ``cert`` the
    client certificate (one file, or certificate and key)."""
    context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    if verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if isinstance(cert, tuple):
        context.load_cert_chain(cert[0], cert[1])
    elif cert:
        context.load_cert_chain(cert)
    return context


class _Watchdog:
    """Shuts ``sock`` down at the deadline unless disarmed first."""

    def __init__(self, sock: socket.socket, delay: float) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self._disarmed = False
        self.fired = False
        self._timer = threading.Timer(max(0.0, delay), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._disarmed:
                return
            self.fired = True
            try:
                # The plain socket's shutdown even on TLS: SSLSocket.shutdown would first drop
                # its TLS state under the reading thread's feet.
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
            except OSError:
                pass  # already gone: dockerd hung up first

    def disarm(self) -> bool:
        """Whether it fired; once this returns it never will."""
        with self._lock:
            self._disarmed = True
        self._timer.cancel()
        return self.fired


def pull_image(api: Any, image: str, timeout: float) -> PullResult:
    """Pull ``image`` through the engine ``api`` (a docker.APIClient) talks to, within
    ``timeout`` seconds; on timeout the engine's pull is cancelled, not left running."""
    if timeout <= 0:  # a pull_timeout of 0 s: no pull could finish, so none is started
        return PullResult(PullOutcome.TIMED_OUT, f"no result within {timeout:g} s; no pull was started")
    deadline = time.monotonic() + timeout
    repository, tag = parse_repository_tag(image)
    registry, _name = auth.resolve_repository_name(repository)
    headers = {"Content-Length": "0"}
    try:
        credentials = auth.get_config_header(api, registry)  # as the SDK's pull: ~/.docker/config.json
    except docker.errors.DockerException as exc:  # a credential helper that failed
        return PullResult(PullOutcome.FAILED, f"credentials for {registry}: {exc}")
    if credentials:
        headers["X-Registry-Auth"] = credentials
    query = urllib.parse.urlencode({"fromImage": repository, "tag": tag or "latest"})
    try:
        address = engine_address(api)
    except (UnsupportedEngine, OSError) as exc:  # OSError: the client's TLS files
        return PullResult(PullOutcome.FAILED, str(exc))
    # The Host header is all HTTPConnection's own address is used for: the socket is ours.
    connection = http.client.HTTPConnection(
        address.host or "localhost", address.port or None, timeout=timeout
    )
    watchdog: _Watchdog | None = None
    try:
        try:
            sock = address.open(timeout)
            connection.sock = sock
            watchdog = _Watchdog(sock, deadline - time.monotonic())
            connection.request("POST", f"/v{api.api_version}/images/create?{query}", headers=headers)
            result = _read_answer(connection.getresponse())
        except TimeoutError:
            return timed_out(timeout)
        except (OSError, http.client.HTTPException) as exc:
            result = PullResult(PullOutcome.FAILED, f"connection to the Docker engine: {exc}")
        # Fired: the answer (an error or a cut stream) is the watchdog's doing, not the engine's.
        if watchdog is not None and watchdog.disarm():
            return timed_out(timeout)
        return result
    finally:
        if watchdog is not None:
            watchdog.disarm()
        connection.close()


def _read_answer(response: http.client.HTTPResponse) -> PullResult:
    if response.status != 200:
        return PullResult(PullOutcome.FAILED, error_answer(response.status, response.read(_ERROR_BODY_LIMIT)))
    progress = PullProgress()
    while chunk := response.read1(_READ_SIZE):
        progress.feed(chunk)
    return progress.end()
