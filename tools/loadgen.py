"""Load generator for a live Orion cluster: submit tasks, measure acknowledgement latency
(and with ``--wait-running`` submit-to-Running), count and classify every error.

    python -m tools.loadgen --local 3 --duration 10                # own 3-node cluster
    ORION_ENDPOINTS=127.0.0.1:7301,127.0.0.1:7302 python -m tools.loadgen -c 16 --count 5000
    python -m tools.loadgen --local 3 -c 10 --count 50 --wait-running --placeable --json

Loops: closed (default: each of ``--concurrency`` workers submits, waits for the answer,
submits again) or open (``--rate R``: requests are due at a fixed rate whatever the
answers; latency counts from when a request was due, so a stalled cluster shows up as
latency, not as a quietly lower rate).

Task shape: ``--image``, ``--memory``, ``--cpu``, ``--command``. Unless ``--placeable`` or
``--wait-running`` is given, every task carries a node selector that no node matches, so it
stays Pending: the run measures replicated writes, not Docker. With ``--wait-running`` the
tasks must be placed, reach Running, and a Docker container is started for each.

Workers: ``--mode threads`` (one blocking Client per thread: ZeroMQ sockets are not
thread-safe) or ``--mode asyncio`` (one event loop, one DEALER socket per in-flight
request, same wire protocol and retry rules as orion.client). The summary reports the
client's own CPU time per 1,000 requests so the two can be compared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from orion.api.protocol import (
    MAX_REPLY,
    ErrorCode,
    decode_reply,
    encode_request,
    validate_request,
)
from orion.client import Client, OrionError, default_endpoints, error_for, read_token_file
from orion.model import TaskState
from orion.security import client_credentials
from orion.units import parse_size
from tools.stats import percentile

UNPLACEABLE = {"orion.loadgen": "never-matches"}  # a selector no node's tags satisfy
RUNNING_POLL_S = 0.05


# ---------------------------------------------------------------------- results


def classify(exc: BaseException) -> str:
    """A short, stable error kind: the protocol code when the cluster gave one."""
    if isinstance(exc, OrionError):
        return exc.code
    return type(exc).__name__


@dataclass
class Recorder:
    """Shared by all workers (guarded by a lock): latencies, errors, ids to clean up."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    submitted: int = 0
    acked_latencies: list[float] = field(default_factory=list)
    running_latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    error_examples: dict[str, str] = field(default_factory=dict)
    acked_ids: list[str] = field(default_factory=list)

    def start(self) -> None:
        with self.lock:
            self.submitted += 1

    def ack(self, task_id: str, latency: float) -> None:
        with self.lock:
            self.acked_latencies.append(latency)
            self.acked_ids.append(task_id)

    def running(self, latency: float) -> None:
        with self.lock:
            self.running_latencies.append(latency)

    def error(self, kind: str, message: str) -> None:
        with self.lock:
            self.errors[kind] += 1
            self.error_examples.setdefault(kind, message[:300])


@dataclass(frozen=True)
class TaskShape:
    image: str
    memory: int
    cpu: float
    command: list[str] | None
    node_selectors: dict[str, str]

    def request(self, task_id: str) -> dict[str, Any]:
        return {
            "op": "SubmitTask",
            "id": task_id,
            "name": f"loadgen-{task_id[:8]}",
            "image": self.image,
            "memory": self.memory,
            "cpu": self.cpu,
            "node_selectors": self.node_selectors,
            "command": self.command,
        }


# ---------------------------------------------------------------------- pacing


class Pacer:
    """Hands out work: ``next()`` gives the time a request is due, or None when done.

    Closed loop: due now, until the count or the duration is used up. Open loop: due at
    ``start + k / rate``; the worker sleeps until then.
    """

    def __init__(self, count: int | None, duration: float | None, rate: float | None) -> None:
        self.count = count
        self.rate = rate
        self.start = time.perf_counter()
        self.deadline = self.start + duration if duration else None
        self._issued = itertools.count()
        self._lock = threading.Lock()

    def next(self) -> float | None:
        with self._lock:
            k = next(self._issued)
        if self.count is not None and k >= self.count:
            return None
        now = time.perf_counter()
        due = self.start + k / self.rate if self.rate else now
        if self.deadline is not None and max(due, now) >= self.deadline:
            return None
        return due


# ---------------------------------------------------------------------- thread workers


def thread_worker(
    index: int,
    endpoints: list[str],
    shape: TaskShape,
    pacer: Pacer,
    recorder: Recorder,
    wait_running: bool,
    timeout: float,
    running_timeout: float,
) -> None:
    rotated = endpoints[index % len(endpoints) :] + endpoints[: index % len(endpoints)]
    with Client(rotated, timeout=timeout, retries=2) as client:
        while (due := pacer.next()) is not None:
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            task_id = uuid.uuid4().hex
            recorder.start()
            try:
                fields = shape.request(task_id)
                client.submit(
                    fields["image"],
                    id=task_id,
                    name=fields["name"],
                    memory=shape.memory,
                    cpu=shape.cpu,
                    command=shape.command,
                    node_selectors=shape.node_selectors,
                )
            except Exception as exc:
                recorder.error(classify(exc), str(exc))
                continue
            recorder.ack(task_id, time.perf_counter() - due)
            if wait_running:
                try:
                    client.wait(task_id, TaskState.RUNNING, timeout=running_timeout, interval=RUNNING_POLL_S)
                    recorder.running(time.perf_counter() - due)
                except Exception as exc:
                    recorder.error("running:" + classify(exc), str(exc))


def run_threads(args: argparse.Namespace, shape: TaskShape, pacer: Pacer, recorder: Recorder) -> None:
    workers = [
        threading.Thread(
            target=thread_worker,
            args=(
                i,
                args.endpoints,
                shape,
                pacer,
                recorder,
                args.wait_running,
                args.timeout,
                args.running_timeout,
            ),
            name=f"loadgen-{i}",
            daemon=True,
        )
        for i in range(args.concurrency)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


# ---------------------------------------------------------------------- asyncio workers


class AsyncCaller:
    """One request at a time on a DEALER socket, with orion.client's Lazy Pirate rules:
    on silence the socket is dropped and the same request (same task id) goes to the next
    endpoint; an ``unavailable`` answer also moves on, with a short back-off per round."""

    def __init__(
        self, context: zmq.asyncio.Context, endpoints: list[str], timeout: float, retries: int
    ) -> None:
        self.context = context
        self.endpoints = endpoints
        self.timeout = timeout
        self.retries = retries
        self.current = 0
        self.sock: zmq.asyncio.Socket | None = None
        # The same credentials the Python client finds: the token travels as its own frame,
        # inside CURVE when the cluster's API key is known (a secured API refuses plain TCP).
        credentials = client_credentials.resolve()
        self.auth = [credentials.token.encode()] if credentials.token else []
        self.server_key = credentials.server_key
        self.client_keys = zmq.curve_keypair() if self.server_key else None

    def _open(self) -> zmq.asyncio.Socket:
        if self.sock is None:
            sock = self.context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, MAX_REPLY)
            if self.server_key is not None and self.client_keys is not None:
                sock.setsockopt(zmq.CURVE_SERVERKEY, self.server_key)
                sock.setsockopt(zmq.CURVE_PUBLICKEY, self.client_keys[0])
                sock.setsockopt(zmq.CURVE_SECRETKEY, self.client_keys[1])
            sock.connect(f"tcp://{self.endpoints[self.current]}")
            self.sock = sock
        return self.sock

    def _rotate(self) -> None:
        self.close()
        self.current = (self.current + 1) % len(self.endpoints)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(0)
            self.sock = None

    async def call(self, fields: dict[str, Any]) -> Any:
        body = encode_request(validate_request(fields))
        failures: list[str] = []
        attempts = self.retries * len(self.endpoints)
        for attempt in range(attempts):
            endpoint = self.endpoints[self.current]
            sock = self._open()
            await sock.send_multipart([b"", *self.auth, body])  # b"": the delimiter REQ would add
            if not await sock.poll(int(self.timeout * 1000), zmq.POLLIN):
                failures.append(f"{endpoint} (no answer in {self.timeout:g}s)")
                self._rotate()
                continue
            frames = await sock.recv_multipart()
            reply = decode_reply(frames[-1])
            if reply.ok:
                return reply.result
            error = reply.error
            code, message = (error.code, error.message) if error else (ErrorCode.INTERNAL, "no details")
            if code != ErrorCode.UNAVAILABLE:
                raise error_for(code, message)
            failures.append(f"{endpoint} ({message})")
            self._rotate()
            if (attempt + 1) % len(self.endpoints) == 0 and attempt + 1 < attempts:
                await asyncio.sleep(min(1.0, 0.1 * 2 ** ((attempt + 1) // len(self.endpoints) - 1)))
        raise error_for(ErrorCode.UNAVAILABLE, "no endpoint answered: " + "; ".join(dict.fromkeys(failures)))


async def async_worker(
    index: int,
    context: zmq.asyncio.Context,
    args: argparse.Namespace,
    shape: TaskShape,
    pacer: Pacer,
    recorder: Recorder,
) -> None:
    endpoints = args.endpoints
    rotated = endpoints[index % len(endpoints) :] + endpoints[: index % len(endpoints)]
    caller = AsyncCaller(context, rotated, args.timeout, retries=2)
    try:
        while (due := pacer.next()) is not None:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task_id = uuid.uuid4().hex
            recorder.start()
            try:
                await caller.call(shape.request(task_id))
            except Exception as exc:
                recorder.error(classify(exc), str(exc))
                continue
            recorder.ack(task_id, time.perf_counter() - due)
            if args.wait_running:
                await async_wait_running(caller, task_id, due, args.running_timeout, recorder)
    finally:
        caller.close()


async def async_wait_running(
    caller: AsyncCaller, task_id: str, due: float, timeout: float, recorder: Recorder
) -> None:
    deadline = time.perf_counter() + timeout
    while True:
        try:
            task = await caller.call({"op": "GetTask", "id": task_id})
        except Exception as exc:
            recorder.error("running:" + classify(exc), str(exc))
            return
        state = task.get("state") if isinstance(task, dict) else None
        if state == TaskState.RUNNING:
            recorder.running(time.perf_counter() - due)
            return
        if state in (TaskState.FAILED, TaskState.STOPPED):
            recorder.error("running:unexpected_state", f"task {task_id} is {state}: {task.get('reason')}")
            return
        if time.perf_counter() >= deadline:
            recorder.error("running:timeout", f"task {task_id} still {state} after {timeout:g}s")
            return
        await asyncio.sleep(RUNNING_POLL_S)


def run_asyncio(args: argparse.Namespace, shape: TaskShape, pacer: Pacer, recorder: Recorder) -> None:
    async def main() -> None:
        context = zmq.asyncio.Context()
        try:
            await asyncio.gather(
                *(async_worker(i, context, args, shape, pacer, recorder) for i in range(args.concurrency))
            )
        finally:
            context.term()

    asyncio.run(main())


# ---------------------------------------------------------------------- progress and summary


def progress_loop(recorder: Recorder, started: float, stop: threading.Event, out: Any) -> None:
    """A live line every second: elapsed, acked, rate over the last second, percentiles."""
    tty = out.isatty()
    last_acked = 0
    last_at = started
    while not stop.wait(1.0):
        with recorder.lock:
            latencies = list(recorder.acked_latencies)
            errors = sum(recorder.errors.values())
        now = time.perf_counter()
        rate = (len(latencies) - last_acked) / max(1e-9, now - last_at)
        last_acked, last_at = len(latencies), now
        recent = sorted(latencies[-2000:])
        line = (
            f"[{now - started:6.1f}s] acked {len(latencies):>8}  {rate:>8.0f}/s  "
            f"p50 {percentile(recent, 50) * 1e3:7.2f} ms  p99 {percentile(recent, 99) * 1e3:7.2f} ms  "
            f"errors {errors}"
        )
        out.write(("\r" + line) if tty else (line + "\n"))
        out.flush()
    if tty:
        out.write("\n")


def summarize(args: argparse.Namespace, recorder: Recorder, elapsed: float, cpu_s: float) -> dict[str, Any]:
    acked = sorted(recorder.acked_latencies)
    running = sorted(recorder.running_latencies)
    result: dict[str, Any] = {
        "endpoints": args.endpoints,
        "mode": args.mode,
        "concurrency": args.concurrency,
        "loop": f"open {args.rate:g}/s" if args.rate else "closed",
        "elapsed_s": round(elapsed, 3),
        "submitted": recorder.submitted,
        "acked": len(acked),
        "errors": sum(recorder.errors.values()),
        "errors_by_kind": dict(recorder.errors),
        "error_examples": dict(recorder.error_examples),
        "throughput_per_s": round(len(acked) / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": round(percentile(acked, 50) * 1e3, 3),
        "p90_ms": round(percentile(acked, 90) * 1e3, 3),
        "p99_ms": round(percentile(acked, 99) * 1e3, 3),
        "max_ms": round((acked[-1] if acked else 0.0) * 1e3, 3),
        "client_cpu_ms_per_1k": round(cpu_s * 1e3 / max(1, recorder.submitted) * 1000, 1),
    }
    if args.wait_running:
        result.update(
            running=len(running),
            running_p50_ms=round(percentile(running, 50) * 1e3, 1),
            running_p90_ms=round(percentile(running, 90) * 1e3, 1),
            running_p99_ms=round(percentile(running, 99) * 1e3, 1),
            running_max_ms=round((running[-1] if running else 0.0) * 1e3, 1),
            all_running_s=round(elapsed, 3),
        )
    return result


def print_table(result: dict[str, Any]) -> None:
    rows = [
        ("endpoints", ",".join(result["endpoints"])),
        ("workers", f"{result['concurrency']} ({result['mode']}, {result['loop']} loop)"),
        ("elapsed", f"{result['elapsed_s']:.2f} s"),
        ("submitted / acked", f"{result['submitted']} / {result['acked']}"),
        ("throughput", f"{result['throughput_per_s']:.1f} acked/s"),
        (
            "ack latency",
            f"p50 {result['p50_ms']:.2f}  p90 {result['p90_ms']:.2f}  p99 {result['p99_ms']:.2f}  "
            f"max {result['max_ms']:.2f} ms",
        ),
    ]
    if "running" in result:
        rows.append(
            (
                "submit to Running",
                f"{result['running']} running; p50 {result['running_p50_ms']:.0f}  "
                f"p90 {result['running_p90_ms']:.0f}  p99 {result['running_p99_ms']:.0f}  "
                f"max {result['running_max_ms']:.0f} ms",
            )
        )
    rows.append(("client CPU", f"{result['client_cpu_ms_per_1k']:.0f} ms per 1,000 requests"))
    rows.append(("errors", str(result["errors"])))
    rows.extend(
        (f"  {kind}", f"{n}  e.g. {result['error_examples'][kind]}")
        for kind, n in result["errors_by_kind"].items()
    )
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


# ---------------------------------------------------------------------- cleanup and main


def cleanup(endpoints: list[str], ids: list[str], concurrency: int, timeout: float) -> Counter[str]:
    """Stop every acknowledged task (several threads, one Client each); errors by kind."""
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    queue = iter(list(ids))

    def stopper() -> None:
        with Client(endpoints, timeout=timeout, retries=2) as client:
            while True:
                with lock:
                    task_id = next(queue, None)
                if task_id is None:
                    return
                try:
                    client.stop(task_id)
                except Exception as exc:
                    with lock:
                        errors[classify(exc)] += 1

    threads = [threading.Thread(target=stopper, daemon=True) for _ in range(max(1, min(concurrency, 16)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--endpoints", default=None, help="host:port,... (default: $ORION_ENDPOINTS)")
    parser.add_argument(
        "--token-file",
        default=None,
        help="client token of a secured cluster (default: $ORION_TOKEN, $ORION_TOKEN_FILE)",
    )
    parser.add_argument("--local", type=int, metavar="N", default=0, help="start an N-node local cluster")
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--duration", type=float, help="seconds (default 10 unless --count)")
    group.add_argument("--count", type=int, help="number of submits")
    parser.add_argument("--rate", type=float, default=None, help="open loop: submits per second")
    parser.add_argument("--image", default="orion-busybox:latest")
    parser.add_argument("--memory", default="0", help='e.g. "16MiB"')
    parser.add_argument("--cpu", type=float, default=0.0)
    parser.add_argument("--command", default="sleep 3600", help="container command (split on spaces)")
    parser.add_argument(
        "--placeable",
        action="store_true",
        help="let tasks be scheduled (and containers started); default: they stay Pending",
    )
    parser.add_argument("--wait-running", action="store_true", help="also measure submit to Running")
    parser.add_argument("--running-timeout", type=float, default=120.0)
    parser.add_argument("--cleanup", action="store_true", help="stop every submitted task afterwards")
    parser.add_argument("--mode", choices=("threads", "asyncio"), default="threads")
    parser.add_argument("--timeout", type=float, default=5.0, help="per-attempt request timeout (s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--quiet", action="store_true", help="no live progress line")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error("--concurrency must be >= 1")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be > 0")
    if args.duration is None and args.count is None:
        args.duration = 10.0
    return args


def run(args: argparse.Namespace, progress_out: Any = sys.stderr) -> dict[str, Any]:
    """Run one load test against ``args.endpoints``; the summary as a dict."""
    placeable = args.placeable or args.wait_running
    shape = TaskShape(
        image=args.image,
        memory=parse_size(args.memory, "memory"),
        cpu=args.cpu,
        command=args.command.split() if args.command else None,
        node_selectors={} if placeable else dict(UNPLACEABLE),
    )
    recorder = Recorder()
    pacer = Pacer(args.count, args.duration, args.rate)
    stop = threading.Event()
    progress: threading.Thread | None = None
    if not args.quiet:
        progress = threading.Thread(
            target=progress_loop, args=(recorder, pacer.start, stop, progress_out), daemon=True
        )
        progress.start()
    cpu_before = _cpu_seconds()
    runner: Callable[..., None] = run_asyncio if args.mode == "asyncio" else run_threads
    try:
        runner(args, shape, pacer, recorder)
    finally:
        elapsed = time.perf_counter() - pacer.start
        cpu_s = _cpu_seconds() - cpu_before
        stop.set()
        if progress is not None:
            progress.join()
    result = summarize(args, recorder, elapsed, cpu_s)
    if args.cleanup:
        result["cleanup_errors"] = dict(
            cleanup(args.endpoints, recorder.acked_ids, args.concurrency, args.timeout)
        )
    return result


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.token_file:  # every client below (threads or asyncio) reads it from here
        os.environ["ORION_TOKEN"] = read_token_file(args.token_file)
    cluster = None
    try:
        if args.local:
            from orion.testing.localcluster import LocalCluster

            base = Path(tempfile.mkdtemp(prefix="orion-loadgen-"))
            sys.stderr.write(f"starting a {args.local}-node local cluster in {base} ...\n")
            cluster = LocalCluster(args.local, base)  # assigned first: closed even if start fails
            cluster.start()
            args.endpoints = cluster.endpoints
        else:
            args.endpoints = (
                [e.strip() for e in args.endpoints.split(",") if e.strip()]
                if args.endpoints
                else default_endpoints()
            )
        result = run(args)
    finally:
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()
            shutil.rmtree(cluster.base_dir, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
