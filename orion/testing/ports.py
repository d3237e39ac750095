"""Ports for local nodes, claimed across every process on this machine that runs them.

Node ports come from below the kernel's ephemeral range (32768-60999 here) and below Orion's
dynamic host ports (20000-32000): a port the kernel hands out for ``bind(0)`` and the caller
releases can be taken, before the node binds it, as the local port of any outgoing connection
(another test worker's traffic loop makes thousands). Below both, only an explicit bind takes it.

A free port is not enough: between the check and the node's own bind, a cluster built in another
process (a parallel test worker, a benchmark) can pick the same port at random, and one of the two
nodes fails with "address already in use" (CI failed that way with three workers). So each port is
also claimed with an exclusive ``flock`` on a file named after it in a directory every such process
shares; the claim is held until ``release`` or the process's end (the kernel drops the lock with
its last descriptor, so a crashed process leaves no stale claim).

A port is only taken if TCP and UDP both bind on the node's address and on 127.0.0.1: gossip is
UDP, and the REST mirror listens on 127.0.0.1 whatever the node's address.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
from pathlib import Path

NODE_PORT_RANGE = (10000, 19999)
CLAIMS_DIR = Path(tempfile.gettempdir()) / "orion-node-ports"

_held: dict[int, int] = {}  # port -> descriptor of its locked claim file, in this process


def claim(count: int, address: str = "127.0.0.1") -> list[int]:
    """``count`` different ports of NODE_PORT_RANGE, free on ``address`` and claimed for this
    process until ``release`` (or its end)."""
    CLAIMS_DIR.mkdir(parents=True, exist_ok=True)
    rng = random.Random()
    ports: list[int] = []
    for _ in range(count * 200):
        if len(ports) == count:
            return ports
        port = rng.randint(*NODE_PORT_RANGE)
        if port in _held:
            continue
        descriptor = _lock(port)
        if descriptor is None:
            continue
        if not _binds(port, address):
            os.close(descriptor)
            continue
        _held[port] = descriptor
        ports.append(port)
    release(ports)
    raise RuntimeError(f"no {count} free ports in {NODE_PORT_RANGE} on {address}")


def release(ports: list[int]) -> None:
    """Give up this process's claims on ``ports`` (ports it does not hold are ignored)."""
    for port in ports:
        descriptor = _held.pop(port, None)
        if descriptor is not None:
            os.close(descriptor)


def _lock(port: int) -> int | None:
    descriptor = os.open(CLAIMS_DIR / str(port), os.O_CREAT | os.O_RDWR, 0o666)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


def _binds(port: int, address: str) -> bool:
    for host in {address, "127.0.0.1"}:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as probe:
                try:
                    probe.bind((host, port))
                except OSError:
                    return False
    return True
