"""Benchmark of the peer transport on 127.0.0.1: one-way frames/s and round-trip latency.

    .venv/bin/python -m tools.bench.transport [--frames 200000] [--size 128] [--pings 2000]

One-way: transport A streams RAFT frames to B with at most ``--window`` frames in flight
(so nothing is dropped at the high-water mark); the rate is frames received per second.
Round trip: A sends a frame, B's callback echoes it back, A waits for it; sequential.
Both take a cluster key to measure CURVE's cost (tools/bench/security.py does).
"""

from __future__ import annotations

import argparse
import threading
import time

from orion.security.keys import ClusterKey
from orion.transport.frames import Channel
from orion.transport.peer import PeerTransport
from tools.stats import p50, p99


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.cond = threading.Condition()

    def __call__(self, channel: Channel, payload: bytes) -> None:
        with self.cond:
            self.count += 1
            self.cond.notify_all()

    def wait_for(self, n: int, timeout: float = 30.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.count >= n, timeout)


def one_way(
    frames: int, size: int, window: int, batch: int, curve: ClusterKey | None = None
) -> tuple[float, dict[str, int]]:
    received = Counter()
    limit = max(size, 1024)
    a = PeerTransport("127.0.0.1", 0, lambda c, p: None, name="a", max_frame=limit, curve=curve)
    b = PeerTransport("127.0.0.1", 0, received, name="b", max_frame=limit, curve=curve)
    a.start()
    b.start()
    try:
        payload = b"x" * size
        a.send(b.address, Channel.RAFT, payload)  # connect first: not part of the measurement
        received.wait_for(1)
        start = time.perf_counter()
        sent = 0
        while sent < frames:
            received.wait_for(1 + sent + batch - window)
            n = min(batch, frames - sent)
            a.send_many(b.address, Channel.RAFT, [payload] * n)
            sent += n
        if not received.wait_for(1 + frames):
            raise SystemExit(f"lost frames: {received.count - 1} of {frames} arrived; {a.stats}")
        elapsed = time.perf_counter() - start
        return frames / elapsed, a.stats
    finally:
        a.stop()
        b.stop()


def round_trip(pings: int, size: int, curve: ClusterKey | None = None) -> list[float]:
    echoed = threading.Event()
    holder: dict[str, PeerTransport] = {}

    def echo(channel: Channel, payload: bytes) -> None:
        holder["b"].send(holder["a"].address, channel, payload)

    a = PeerTransport("127.0.0.1", 0, lambda c, p: echoed.set(), name="a", curve=curve)
    b = PeerTransport("127.0.0.1", 0, echo, name="b", curve=curve)
    holder.update(a=a, b=b)
    a.start()
    b.start()
    try:
        payload = b"p" * size
        latencies: list[float] = []
        for i in range(pings + 50):
            echoed.clear()
            start = time.perf_counter()
            a.send(b.address, Channel.RAFT, payload)
            if not echoed.wait(5):
                raise SystemExit("echo lost")
            if i >= 50:  # the first round trips include connection setup
                latencies.append(time.perf_counter() - start)
        return latencies
    finally:
        a.stop()
        b.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--window", type=int, default=400)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--pings", type=int, default=2000)
    args = parser.parse_args()
    rate, stats = one_way(args.frames, args.size, args.window, args.batch)
    print(
        f"one-way: {args.frames} frames of {args.size} B: {rate:,.0f} frames/s "
        f"({rate * args.size / 1e6:.1f} MB/s)"
    )
    print(f"  sender stats: {stats}")
    latencies = round_trip(args.pings, args.size)
    print(
        f"round trip: {args.pings} pings of {args.size} B: "
        f"p50 {p50(latencies) * 1e6:.0f} us, p99 {p99(latencies) * 1e6:.0f} us"
    )


if __name__ == "__main__":
    main()
