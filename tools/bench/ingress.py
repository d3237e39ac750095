"""The ingress's added latency: short HTTP requests (a new connection each, as the service tests'
client loop makes) to a busybox httpd container, straight to its published port and through a
node's HAProxy (started by orion/ingress/supervisor.py with the configuration the ingress
renders), interleaved one for one in the same run so both see the same machine.

    python -m tools.bench.ingress [--requests 2000]

Prints and saves (benchmarks/results/ingress.json) p50/p99 of each path, their ratio and the
difference (and the median of the per-pair differences), with the load average.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import docker

from orion.ingress.haproxy_config import render_config
from orion.ingress.routing import Endpoint
from orion.ingress.supervisor import HAProxySupervisor
from orion.testing.localcluster import wait_for
from tools.bench.common import log, save_result
from tools.stats import p50, p99, summary

IMAGE = "orion-busybox:latest"
TASK_IP = "127.0.0.2"  # the node running the task ([docker] host_ip)
INGRESS_IP = "127.0.0.3"  # another node's ingress
LABEL = "orion.bench.ingress"
REQUEST = b"GET / HTTP/1.0\r\nHost: bench\r\nConnection: close\r\n\r\n"


def get(address: str, port: int) -> float:
    """Seconds from connect to the whole answer read; raises if it is not a 200."""
    began = time.perf_counter()
    with socket.create_connection((address, port), timeout=5) as sock:
        sock.sendall(REQUEST)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    elapsed = time.perf_counter() - began
    answer = b"".join(chunks)
    if not answer.startswith(b"HTTP/1.0 200") and not answer.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"{address}:{port} answered {answer[:60]!r}")
    return elapsed


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def run(requests: int, warmup: int) -> dict[str, Any]:
    engine = docker.from_env()
    supervisor: HAProxySupervisor | None = None
    run_dir = Path(tempfile.mkdtemp(prefix="orion-bench-ingress-"))
    try:
        container = engine.containers.run(
            IMAGE,
            ["sh", "-c", "mkdir -p /www && echo bench > /www/index.html && exec httpd -f -p 80 -h /www"],
            detach=True,
            labels={LABEL: "1"},
            ports={"80/tcp": (TASK_IP, None)},
        )
        container.reload()
        task_port = int(container.ports["80/tcp"][0]["HostPort"])
        wait_for(lambda: _answers(TASK_IP, task_port), 20, what="the container serving")
        published = free_port(INGRESS_IP)
        supervisor = HAProxySupervisor("haproxy", run_dir)
        table = {published: (Endpoint(TASK_IP, task_port),)}
        supervisor.start(render_config(INGRESS_IP, supervisor.admin_socket, table))
        wait_for(lambda: _answers(INGRESS_IP, published), 20, what="the ingress serving")
        log(f"direct {TASK_IP}:{task_port}, ingress {INGRESS_IP}:{published}; {warmup} warm-up requests each")
        for _ in range(warmup):
            get(TASK_IP, task_port)
            get(INGRESS_IP, published)
        direct: list[float] = []
        ingress: list[float] = []
        log(f"{requests} requests each, interleaved")
        for i in range(requests):
            # Alternate which goes first, so neither always follows the other's cache effects.
            order = ((direct, TASK_IP, task_port), (ingress, INGRESS_IP, published))
            for samples, address, port in order if i % 2 == 0 else reversed(order):
                samples.append(get(address, port))
        return {
            "requests": requests,
            "direct_ms": summary(direct, scale=1e3),
            "ingress_ms": summary(ingress, scale=1e3),
            "ratio_p50": round(p50(ingress) / p50(direct), 2),
            "ratio_p99": round(p99(ingress) / p99(direct), 2),
            "added_p50_ms": round((p50(ingress) - p50(direct)) * 1e3, 3),
            "added_p99_ms": round((p99(ingress) - p99(direct)) * 1e3, 3),
            # Each pair ran back to back: the median of their differences is the least disturbed
            # by a busy machine's stalls, which hit both paths alike.
            "paired_added_p50_ms": round(p50([i - d for i, d in zip(ingress, direct, strict=True)]) * 1e3, 3),
        }
    finally:
        if supervisor is not None:
            supervisor.stop(timeout=1.0)
        shutil.rmtree(run_dir, ignore_errors=True)
        for leftover in engine.containers.list(all=True, filters={"label": LABEL}):
            leftover.remove(force=True)
        engine.close()


def _answers(address: str, port: int) -> bool:
    try:
        get(address, port)
    except OSError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests through each path")
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    save_result("ingress", run(args.requests, args.warmup))


if __name__ == "__main__":
    main()
