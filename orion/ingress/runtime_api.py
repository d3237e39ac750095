"""A client of HAProxy's runtime API over its unix sockets.

The stats socket (``RuntimeApi``) speaks to the worker that serves traffic: it reads the
servers' state and changes them. The master socket (``MasterApi``) speaks to the master
process of master-worker mode: it lists the processes and reloads the configuration.
Each command is one connection (HAProxy's non-interactive mode): send the line and close our
side, read the answer to EOF.
"""

from __future__ import annotations

import socket
from pathlib import Path

from orion.ingress.routing import ServerSlot, haproxy_table, parse_servers_state

DEFAULT_TIMEOUT_S = 5.0
# Answers of ``set server`` / ``add server`` that mean it worked (anything else is an error).
_SUCCESS = ("", "New server registered.")


class RuntimeApiError(RuntimeError):
    """HAProxy did not answer, or refused a command (the message holds its answer)."""


def command(path: Path, line: str, timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """Send one command line to the unix socket ``path`` and return the whole answer."""
    if "\n" in line or ";" in line:
        raise ValueError(f"runtime API command: one command without ';' or newlines, got {line!r}")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(line.encode() + b"\n")
            # The master socket keeps a connection open after answering unless it saw our end.
            sock.shutdown(socket.SHUT_WR)
            chunks: list[bytes] = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        raise RuntimeApiError(f"{path}: {line!r}: {exc}") from exc
    return b"".join(chunks).decode(errors="replace")


class RuntimeApi:
    def __init__(self, path: Path, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.path = path
        self.timeout = timeout

    def execute(self, line: str) -> str:
        return command(self.path, line, self.timeout)

    def apply(self, line: str) -> None:
        """Run a state-changing command; raise when HAProxy answers with anything but success."""
        answer = self.execute(line).strip()
        # ``set server ... addr`` says what changed ("IP changed from ..."): that is success too.
        if answer in _SUCCESS or answer.startswith(("IP changed from", "no need to change")):
            return
        raise RuntimeApiError(f"{line!r}: {answer}")

    def servers(self) -> dict[int, list[ServerSlot]]:
        """The ingress's backends and their server slots, by published port."""
        answer = self.execute("show servers state")
        try:
            return haproxy_table(parse_servers_state(answer))
        except (ValueError, KeyError) as exc:
            raise RuntimeApiError(f"show servers state: cannot read the answer: {exc}") from exc

    def worker_pid(self) -> int:
        """The pid of the process answering (``show info``): a reload is done when it changed."""
        for line in self.execute("show info").splitlines():
            key, _, value = line.partition(":")
            if key == "Pid" and value.strip().isdigit():
                return int(value)
        raise RuntimeApiError("show info: no Pid in the answer")


class MasterApi:
    def __init__(self, path: Path, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.path = path
        self.timeout = timeout

    def reload(self) -> None:
        """Ask the master to load the configuration again: it starts a new worker that takes the
        listening sockets over; the old one finishes its connections (up to hard-stop-after)."""
        command(self.path, "reload", self.timeout)

    def processes(self) -> str:
        return command(self.path, "show proc", self.timeout)
