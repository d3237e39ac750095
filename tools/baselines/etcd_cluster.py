"""A 3-member etcd 3.4 cluster on 127.0.0.1 (Debian's ``etcd-server``) and a light asyncio
client for its JSON gateway (``/v3/kv/put``), used by the side-by-side benchmarks.

Durability: etcd fsyncs its WAL before a put is acknowledged (the same promise as Orion's
DuckDB log). aiohttp is a benchmark-only dependency (the ``bench`` extra).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orion.testing.localcluster import free_ports, wait_for
from tools.baselines.processes import kill_process


def ensure_etcd() -> str:
    """The path of Debian's etcd 3.4 server, installing ``etcd-server`` with apt-get if missing."""
    found = shutil.which("etcd")
    if found:
        return found
    sys.stderr.write("etcd not found: apt-get install etcd-server\n")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "etcd-server"], check=True, env=env, stdout=subprocess.DEVNULL
    )
    found = shutil.which("etcd")
    if not found:
        raise RuntimeError("etcd-server installed but no etcd binary on PATH")
    return found


@dataclass
class EtcdMember:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class EtcdCluster:
    base_dir: Path
    size: int = 3
    members: list[EtcdMember] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.binary = ensure_etcd()
        self.base_dir = Path(self.base_dir)
        shutil.rmtree(self.base_dir, ignore_errors=True)
        self.base_dir.mkdir(parents=True)
        ports = free_ports(2 * self.size)
        for i in range(self.size):
            name = f"e{i + 1}"
            self.members.append(
                EtcdMember(
                    name,
                    ports[2 * i],
                    ports[2 * i + 1],
                    self.base_dir / name,
                    self.base_dir / f"{name}.log",
                )
            )

    def _command(self, m: EtcdMember) -> list[str]:
        initial = ",".join(f"{x.name}=http://127.0.0.1:{x.peer_port}" for x in self.members)
        return [
            self.binary,
            "--name", m.name,
            "--data-dir", str(m.data_dir),
            "--listen-client-urls", m.url,
            "--advertise-client-urls", m.url,
            "--listen-peer-urls", f"http://127.0.0.1:{m.peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{m.peer_port}",
            "--initial-cluster", initial,
            "--initial-cluster-state", "new",
            "--initial-cluster-token", "orion-bench",
            "--log-level", "warn",
        ]  # fmt: skip

    def start_member(self, index: int) -> None:
        m = self.members[index]
        log = open(m.log_path, "ab")  # noqa: SIM115 - owned by the child
        m.process = subprocess.Popen(
            self._command(m), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def start(self, timeout: float = 30.0) -> EtcdCluster:
        for i in range(self.size):
            self.start_member(i)
        wait_for(lambda: self.leader_index() is not None, timeout, what="an etcd leader")
        return self

    def kill(self, index: int) -> None:
        member = self.members[index]
        if member.process is not None:
            kill_process(member.process)

    def close(self) -> None:
        for m in self.members:
            if m.process is not None:
                kill_process(m.process, 15)

    def __enter__(self) -> EtcdCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _status(self, m: EtcdMember) -> dict[str, Any]:
        request = urllib.request.Request(f"{m.url}/v3/maintenance/status", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=1.0) as response:
            return json.loads(response.read())

    def leader_index(self) -> int | None:
        """Index of the member every running member names as leader, if they agree."""
        ids: dict[str, int] = {}
        leaders = set()
        for i, m in enumerate(self.members):
            if not m.running:
                continue
            with contextlib.suppress(Exception):
                status = self._status(m)
                ids[status["header"]["member_id"]] = i
                leaders.add(status.get("leader"))
        if len(leaders) != 1:
            return None
        return ids.get(leaders.pop())


def put_body(key: str, value: bytes) -> bytes:
    return json.dumps(
        {"key": base64.b64encode(key.encode()).decode(), "value": base64.b64encode(value).decode()}
    ).encode()


async def put_load(url: str, concurrency: int, duration: float, value_size: int = 200) -> dict[str, Any]:
    """Closed loop: ``concurrency`` coroutines put 200-byte values for ``duration`` seconds."""
    import aiohttp

    value = os.urandom(value_size // 2).hex().encode()[:value_size]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + duration

        async def worker(w: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                body = put_body(f"bench/{w}/{n % 1000}", value)
                n += 1
                start = time.perf_counter()
                try:
                    async with session.post(f"{url}/v3/kv/put", data=body) as response:
                        await response.read()
                        if response.status != 200:
                            errors[f"http {response.status}"] = errors.get(f"http {response.status}", 0) + 1
                            continue
                except Exception as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - start
    return {"latencies": latencies, "errors": errors, "elapsed": elapsed}


def _put_request(host: str, key: str, value: bytes) -> bytes:
    body = put_body(key, value)
    head = f"POST /v3/kv/put HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def _read_response(sock: socket.socket, buffer: bytearray) -> int:
    """Read one HTTP/1.1 response with a Content-Length body off a keep-alive socket (what is
    read past it stays in ``buffer``); its status code."""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("etcd closed the connection")
        buffer += chunk
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in head if line.lower().startswith("content-length:"))
    total = end + 4 + length
    while len(buffer) < total:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("etcd closed the connection")
        buffer += chunk
    del buffer[:total]
    return int(head[0].split(" ", 2)[1])


def put_load_raw(url: str, concurrency: int, duration: float, value_size: int = 200) -> dict[str, Any]:
    """Closed loop, as the issue 16 baseline asks: ``concurrency`` threads, each with its own
    keep-alive connection, put 200-byte values for ``duration`` seconds. Requests are written
    as bytes and responses read by Content-Length: next to etcd's work the client costs little
    (aiohttp cost etcd about 35% of its rate at c >= 16 on two cores, which flattered Orion).
    ``client_cpu_s``: this process's CPU time over the run."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    value = os.urandom(value_size // 2).hex().encode()[:value_size]
    requests = [[_put_request(host, f"bench/{w}/{n}", value) for n in range(100)] for w in range(concurrency)]
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: dict[str, int] = {}
    deadline = 0.0

    def worker(w: int) -> None:
        mine, sent = latencies[w], requests[w]
        buffer = bytearray()
        n = 0
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    sock.sendall(sent[n % 100])
                    status = _read_response(sock, buffer)
                except OSError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    return
                n += 1
                if status != 200:
                    errors[f"http {status}"] = errors.get(f"http {status}", 0) + 1
                    continue
                mine.append(time.perf_counter() - start)

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(concurrency)]
    cpu = time.process_time()
    start = time.perf_counter()
    deadline = start + duration
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return {
        "latencies": [x for mine in latencies for x in mine],
        "errors": errors,
        "elapsed": elapsed,
        "client_cpu_s": time.process_time() - cpu,
    }


def put_once(url: str, key: str, timeout: float) -> bool:
    """One blocking put (for the failover probe); True when etcd accepted it."""
    request = urllib.request.Request(f"{url}/v3/kv/put", data=put_body(key, b"x"), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status == 200 and "header" in json.loads(response.read())
    except Exception:
        return False
