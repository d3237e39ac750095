"""Overlay vs underlay between two hosts: TCP throughput and request/response latency.

    .venv/bin/python -m tools.bench.overlay [--seconds 3] [--round-trips 5000] [--rounds 3]

Two network namespaces made for the run (deleted afterwards) are the two hosts, joined by a
veth pair: the underlay, 10.99.0.1 and 10.99.0.2. Each runs Orion's VXLAN shell
(orion/network/vxlan.py) on its own /24 (10.42.0.0/24, 10.42.1.0/24) with the other as its peer,
as the node's network actor would, and holds a "task address" in its /24. The same Python
client and server then measure, in the same run and alternating, to the peer's underlay
address and to its overlay address:

- stream: one TCP connection sending 64 KiB writes for ``--seconds`` (MB/s received);
- rr: ``--round-trips`` 1-byte request/response exchanges on one connection (p50/p99 µs).

The load average (``uptime``) is recorded with every figure: other work on this machine moves
them. Results go to benchmarks/results/overlay.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pyroute2 import NetNS

from orion.network.overlay_plan import Peer, diff, plan, vtep_mac_for
from orion.network.vxlan import VxlanShell, find_underlay
from tools.stats import p50, p99

UNDERLAY = {"a": "10.99.0.1", "b": "10.99.0.2"}
SUBNET = {"a": "10.42.0.0/24", "b": "10.42.1.0/24"}
TASK_IP = {"a": "10.42.0.5", "b": "10.42.1.5"}
PORT = 5201
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "overlay.json"

SERVER = textwrap.dedent("""
    import socket, sys
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", int(sys.argv[1])))
    listener.listen()
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        mode = conn.recv(1)
        if mode == b"s":  # stream: count until the client closes, then say how much
            total = 0
            while chunk := conn.recv(1 << 16):
                total += len(chunk)
        elif mode == b"r":  # request/response: echo one byte per byte
            while conn.recv(1):
                conn.sendall(b"x")
        conn.close()
""")

CLIENT = textwrap.dedent("""
    import json, socket, sys, time
    target, port, mode, amount = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    conn = socket.create_connection((target, port), timeout=10)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if mode == "s":
        conn.sendall(b"s")
        block = b"\\0" * (1 << 16)
        sent, start = 0, time.perf_counter()
        while time.perf_counter() - start < amount:
            conn.sendall(block)
            sent += len(block)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)
        elapsed = time.perf_counter() - start
        print(json.dumps({"bytes": sent, "seconds": elapsed}))
    else:
        conn.sendall(b"r")
        samples = []
        for _ in range(int(amount)):
            start = time.perf_counter()
            conn.sendall(b"x")
            conn.recv(1)
            samples.append(time.perf_counter() - start)
        print(json.dumps({"samples": samples}))
    conn.close()
""")


def run(*args: str) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def uptime() -> str:
    return run("uptime").strip()


@contextmanager
def two_hosts() -> Iterator[tuple[str, str]]:
    tag = os.getpid() % 100000
    names = (f"orxbench{tag}a", f"orxbench{tag}b")
    made: list[str] = []
    try:
        for name in names:
            run("ip", "netns", "add", name)
            made.append(name)
            run("ip", "-n", name, "link", "set", "lo", "up")
        run("ip", "link", "add", f"ub{tag}a", "netns", names[0], "type", "veth", "peer", "name", f"ub{tag}b",
            "netns", names[1])  # fmt: skip
        for ns, side in zip(names, "ab", strict=True):
            run("ip", "-n", ns, "addr", "add", f"{UNDERLAY[side]}/24", "dev", f"ub{tag}{side}")
            run("ip", "-n", ns, "link", "set", f"ub{tag}{side}", "up")
            run("ip", "-n", ns, "addr", "add", f"{TASK_IP[side]}/32", "dev", "lo")
        yield names
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def converge(ns: str, me: str, other: str) -> None:
    handle = NetNS(ns)
    try:
        shell = VxlanShell(handle)
        underlay = find_underlay(handle, UNDERLAY[me])
        peer = Peer(other, SUBNET[other], UNDERLAY[other], vtep_mac_for(other))
        desired = plan(SUBNET[me], UNDERLAY[me], underlay.mtu, [peer])
        shell.ensure_device(underlay, vtep_mac_for(me), desired.mtu)
        shell.set_address(desired.address)
        shell.apply(diff(desired, shell.read()))
    finally:
        handle.close()


def measure(ns: str, target: str, mode: str, amount: float) -> dict[str, Any]:
    out = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, target, str(PORT), mode, str(amount)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each stream measurement")
    parser.add_argument("--round-trips", type=int, default=5000, help="exchanges per rr measurement")
    parser.add_argument("--rounds", type=int, default=3, help="underlay/overlay pairs, alternating")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    with two_hosts() as (ns_a, ns_b):
        converge(ns_a, "a", "b")
        converge(ns_b, "b", "a")
        server = subprocess.Popen(
            ["ip", "netns", "exec", ns_b, sys.executable, "-c", SERVER, str(PORT)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            if server.stdout.readline().strip() != "ready":
                raise RuntimeError("the benchmark server did not start")
            for round_no in range(1, args.rounds + 1):
                for path, target in (("underlay", UNDERLAY["b"]), ("overlay", TASK_IP["b"])):
                    load = uptime()
                    stream = measure(ns_a, target, "s", args.seconds)
                    rr = measure(ns_a, target, "r", args.round_trips)
                    row = {
                        "round": round_no,
                        "path": path,
                        "target": target,
                        "stream_mb_s": round(stream["bytes"] / stream["seconds"] / 1e6, 1),
                        "rr_p50_us": round(p50(rr["samples"]) * 1e6, 1),
                        "rr_p99_us": round(p99(rr["samples"]) * 1e6, 1),
                        "uptime": load,
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        finally:
            server.kill()
            server.wait(timeout=10)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"at": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": rows}, indent=2) + "\n")
    print("\n| round | path | stream MB/s | rr p50 µs | rr p99 µs | load (uptime) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        load = row["uptime"].split("load average:")[-1].strip()
        print(
            f"| {row['round']} | {row['path']} | {row['stream_mb_s']} | {row['rr_p50_us']} | "
            f"{row['rr_p99_us']} | {load} |"
        )


if __name__ == "__main__":
    main()
