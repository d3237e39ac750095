"""The client edge's costs (issue 15): client CURVE per request, and a node under an idle flood.

    .venv/bin/python -m tools.bench.client_edge [--requests 2000] [--rounds 3] [--flood 1000] [--seconds 10]

1. CURVE per request: two in-process ZeroMQ API servers with the same trivial handler (it answers
   ListTasks with an empty list, so the figure is the API's own cost), one plain and one CURVE,
   measured in the same run, in blocks of ``--requests`` sequential requests, alternating plain,
   CURVE, CURVE, plain ... so drift in the machine's load hits both alike. Reported: p50 and p99
   per request of each mode and the p50 difference.
2. Idle flood: one real node (LocalCluster); its CPU (utime+stime from /proc) over ``--seconds``
   at rest, then over ``--seconds`` while ``--flood`` raw TCP connections from 127.0.0.200 are
   kept open (a connection the node closes is opened again at once, so the flood never lets up);
   meanwhile an authenticated client sends a request every 50 ms from 127.0.0.1: its p50/p99
   and failures. The load average is printed with every figure (the machine is shared).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import selectors
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from orion.api.protocol import Reply, Request
from orion.api.server import ApiServer
from orion.client import Client
from orion.security.keys import ClusterKey, TokenSet
from orion.testing.localcluster import LocalCluster
from tools.bench.common import loadavg, log, save_result
from tools.stats import p50, p99, summary

TOKEN = "bench-token-0123456789"
FLOOD_SOURCE = "127.0.0.200"


def _empty_list(_request: Request, reply: Any) -> None:
    reply(Reply.success([]))


def curve_cost(requests: int, rounds: int) -> dict[str, Any]:
    key = ClusterKey.generate()
    servers = {
        "plain": ApiServer("127.0.0.1", 0, _empty_list, tokens=TokenSet([TOKEN])),
        "curve": ApiServer("127.0.0.1", 0, _empty_list, tokens=TokenSet([TOKEN]), curve=key),
    }
    for server in servers.values():
        server.start()
    samples: dict[str, list[float]] = {"plain": [], "curve": []}
    try:
        clients = {
            "plain": Client([f"127.0.0.1:{servers['plain'].port}"], token=TOKEN, server_key=""),
            "curve": Client([f"127.0.0.1:{servers['curve'].port}"], token=TOKEN, server_key=key.public),
        }
        for client in clients.values():
            client.tasks()  # connected and warm before timing
        for round_number in range(rounds):
            order = ("plain", "curve") if round_number % 2 == 0 else ("curve", "plain")
            for mode in order:
                for _ in range(requests):
                    started = time.perf_counter()
                    clients[mode].tasks()
                    samples[mode].append(time.perf_counter() - started)
            log(
                f"round {round_number + 1}: plain p50 {p50(samples['plain']) * 1e6:.0f} us, "
                f"curve p50 {p50(samples['curve']) * 1e6:.0f} us"
            )
        for client in clients.values():
            client.close()
    finally:
        for server in servers.values():
            server.stop()
    return {
        "requests_per_mode": len(samples["plain"]),
        "plain_us": summary(samples["plain"], 1e6, 1),
        "curve_us": summary(samples["curve"], 1e6, 1),
        "p50_cost_us": round((p50(samples["curve"]) - p50(samples["plain"])) * 1e6, 1),
        "p99_cost_us": round((p99(samples["curve"]) - p99(samples["plain"])) * 1e6, 1),
        "loadavg": loadavg(),
    }


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _open_flood_socket(address: tuple[str, int], selector: selectors.BaseSelector) -> None:
    sock = socket.socket()
    sock.bind((FLOOD_SOURCE, 0))
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        sock.connect(address)
    selector.register(sock, selectors.EVENT_READ)


def _measure(
    pid: int, seconds: float, client: Client, flood: tuple[selectors.BaseSelector, tuple[str, int]] | None
):
    latencies: list[float] = []
    failures = reopened = 0
    cpu_before, started = _cpu_seconds(pid), time.monotonic()
    next_request = started
    while time.monotonic() - started < seconds:
        if flood is not None:
            selector, address = flood
            for event, _ in selector.select(timeout=0.01):
                sock = event.fileobj
                try:
                    data = sock.recv(4096)  # type: ignore[union-attr]
                except OSError as exc:
                    data = b"" if exc.errno in (errno.ECONNRESET, errno.ENOTCONN, errno.EPIPE) else b"?"
                if not data:  # closed by the node: open another, the flood never lets up
                    selector.unregister(sock)
                    sock.close()  # type: ignore[union-attr]
                    _open_flood_socket(address, selector)
                    reopened += 1
        else:
            time.sleep(0.01)
        if time.monotonic() >= next_request:
            next_request += 0.05
            at = time.perf_counter()
            try:
                client.raft()
                latencies.append(time.perf_counter() - at)
            except Exception:
                failures += 1
    cpu = _cpu_seconds(pid) - cpu_before
    elapsed = time.monotonic() - started
    return {
        "node_cpu_percent": round(100 * cpu / elapsed, 1),
        "client_ms": summary(latencies, 1e3, 2),
        "client_failures": failures,
        "flood_reconnects": reopened,
        "loadavg": loadavg(),
    }


def idle_flood(connections: int, seconds: float) -> dict[str, Any]:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, connections * 2 + 512)), hard))
    base = Path(tempfile.mkdtemp(prefix="orion-bench-edge-"))
    with LocalCluster(1, base) as cluster:
        cluster.start()
        node = cluster.node(1)
        address = (getattr(node, "address", "127.0.0.1"), node.api_port)
        with cluster.client(timeout=2.0, retries=1) as client:
            client.raft()
            rest = _measure(node.pid, seconds, client, None)
            log(f"at rest: node CPU {rest['node_cpu_percent']}%")
            selector = selectors.DefaultSelector()
            for _ in range(connections):
                _open_flood_socket(address, selector)
            flooded = _measure(node.pid, seconds, client, (selector, address))
            log(f"flood of {connections}: node CPU {flooded['node_cpu_percent']}%")
            open_fds = len(os.listdir(f"/proc/{node.pid}/fd"))
            for key in list(selector.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
            selector.close()
    return {
        "connections": connections,
        "seconds": seconds,
        "at_rest": rest,
        "flooded": flooded,
        "node_open_fds_during_flood": open_fds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per mode and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--flood", type=int, default=1000, help="idle connections kept open")
    parser.add_argument("--seconds", type=float, default=10.0, help="each CPU measurement")
    args = parser.parse_args()
    result = {"curve": curve_cost(args.requests, args.rounds), "flood": idle_flood(args.flood, args.seconds)}
    path = save_result("client_edge", result)
    log(f"wrote {path}")
    import json

    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
