"""Node ports are claimed across processes: a port another process holds is never handed out,
and it is free again once that process releases it or ends."""

from __future__ import annotations

import subprocess
import sys

import pytest

from orion.testing import ports

# A narrow range below the real one, so the test can exhaust it while clusters in other
# workers claim from the real range.
NARROW = (9990, 9992)

HOLDER = f"""
import sys
from orion.testing import ports
ports.NODE_PORT_RANGE = {NARROW!r}
held = ports.claim({NARROW[1] - NARROW[0] + 1})
print(" ".join(map(str, sorted(held))), flush=True)
sys.stdin.readline()
"""


def test_claimed_ports_are_distinct_free_and_released(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "NODE_PORT_RANGE", NARROW)
    first = ports.claim(3)
    try:
        assert sorted(first) == list(range(NARROW[0], NARROW[1] + 1))
        with pytest.raises(RuntimeError, match="no 1 free ports"):
            ports.claim(1)  # this process holds every one
    finally:
        ports.release(first)
    again = ports.claim(3)
    ports.release(again)
    assert sorted(again) == sorted(first)


def test_another_process_claim_is_not_handed_out_until_it_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "NODE_PORT_RANGE", NARROW)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        held = [int(port) for port in holder.stdout.readline().split()]
        assert held == list(range(NARROW[0], NARROW[1] + 1))
        with pytest.raises(RuntimeError, match="no 1 free ports"):
            ports.claim(1)
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
    mine = ports.claim(1)  # the holder ended: its claims went with it
    ports.release(mine)
    assert mine[0] in held


def test_a_port_bound_by_someone_else_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.setattr(ports, "NODE_PORT_RANGE", (NARROW[0], NARROW[0]))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind(("127.0.0.1", NARROW[0]))  # UDP only: gossip's kind of socket
        with pytest.raises(RuntimeError):
            ports.claim(1)
    port = ports.claim(1)
    ports.release(port)
    assert port == [NARROW[0]]
