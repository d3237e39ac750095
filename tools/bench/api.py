"""Benchmark of the client API edges alone: Client -> ApiServer -> handler -> reply, and REST.

    .venv/bin/python -m tools.bench.api [--requests 2000] [--clients 4]

The handler answers at once from the server thread with a stored task, so the figures are
the cost of the edges (encode, ZeroMQ or HTTP, validation, decode), not of Raft: the
node's submit latency is this plus a commit.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.request
from collections.abc import Callable

from loguru import logger

from orion.api.http import HttpApi
from orion.api.protocol import Reply, Request, SubmitTask
from orion.api.server import ApiServer
from orion.client import Client
from orion.model import Task
from tools.stats import p50, p99


def handler(request: Request, reply: Callable[[Reply], None]) -> None:
    if isinstance(request, SubmitTask):
        reply(
            Reply.success(Task(id=request.id, name=request.name, image=request.image, memory=request.memory))
        )
    else:
        reply(Reply.success([]))


def percentiles(samples: list[float]) -> str:
    return f"p50 {p50(samples) * 1e6:.0f} us, p99 {p99(samples) * 1e6:.0f} us"


def zmq_latency(port: int, n: int) -> list[float]:
    samples = []
    with Client([f"127.0.0.1:{port}"], timeout=5.0) as client:
        for i in range(n + 50):
            start = time.perf_counter()
            client.submit("nginx", memory="256MiB", ports={"80/tcp": "8080"})
            if i >= 50:
                samples.append(time.perf_counter() - start)
    return samples


def zmq_throughput(port: int, n: int, clients: int) -> float:
    def worker() -> None:
        with Client([f"127.0.0.1:{port}"], timeout=5.0) as client:
            for _ in range(n // clients):
                client.submit("nginx")

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (n // clients * clients) / (time.perf_counter() - start)


def http_latency(port: int, n: int) -> list[float]:
    body = json.dumps({"image": "nginx", "memory": 1000, "portBindings": {"80/tcp": "8080"}}).encode()
    samples = []
    for i in range(n + 20):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/tasks", data=body, method="POST")
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
        if i >= 20:
            samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    logger.remove()  # per-request access lines would dominate the measurement
    api = ApiServer("127.0.0.1", 0, handler)
    http = HttpApi("127.0.0.1", 0, handler)
    api.start()
    http.start()
    try:
        print(f"zmq submit round trip, 1 client: {percentiles(zmq_latency(api.port, args.requests))}")
        rate = zmq_throughput(api.port, args.requests, args.clients)
        print(f"zmq submit throughput, {args.clients} clients: {rate:,.0f} requests/s")
        print(
            f"REST POST /tasks round trip (new connection each): {percentiles(http_latency(http.port, 500))}"
        )
    finally:
        api.stop()
        http.stop()


if __name__ == "__main__":
    main()
