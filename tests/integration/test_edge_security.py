"""The client edge and the files of real nodes (issue 15): the token never crosses loopback in
the clear, 1,000 idle connections do not lock an authenticated client out, data files are
private whatever the umask, and a node refuses a token file others may read."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import stat
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orion.testing.localcluster import wait_for

pytestmark = pytest.mark.cluster
ETH_P_ALL = 0x0003


@contextlib.contextmanager
def loopback_capture(port: int) -> Iterator[list[bytes]]:
    """Every TCP payload to or from ``port`` on the loopback interface while the block runs
    (a raw AF_PACKET socket: the test runs as root)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind(("lo", 0))
    sock.settimeout(0.1)
    payloads: list[bytes] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                frame = sock.recv(65535)
            except TimeoutError:
                continue
            ip = frame[14:]  # loopback frames carry an Ethernet header
            if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_TCP:
                continue
            tcp = ip[(ip[0] & 0x0F) * 4 :]
            source, destination = struct.unpack("!HH", tcp[:4])
            if port in (source, destination):
                payloads.append(tcp[(tcp[12] >> 4) * 4 :])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield payloads
    finally:
        time.sleep(0.3)  # frames already sent are still being read (a short, bounded tail)
        done.set()
        reader.join()
        sock.close()


def test_the_token_never_crosses_loopback_in_the_clear(make_cluster) -> None:
    cluster = make_cluster(1)
    node = cluster.node(1)
    token = cluster.token.encode()
    with loopback_capture(node.api_port) as payloads, cluster.client() as client:
        client.submit(
            "orion-busybox:latest", node_selectors={"role": "nowhere"}, env={"DB_PASSWORD": "hunter2"}
        )
        assert client.tasks()
    seen = b"".join(payloads)
    assert len(seen) > 200  # the capture saw the request and the answer
    assert token not in seen and b"hunter2" not in seen and b"SubmitTask" not in seen


def _raise_open_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_thousand_idle_connections_do_not_lock_a_client_out(make_cluster) -> None:
    """1,000 unauthenticated connections from 127.0.0.200 that never speak: the node keeps only
    its per-address share open, closes the rest at once, and answers a client from 127.0.0.1."""
    cluster = make_cluster(1)
    node = cluster.node(1)
    _raise_open_files(4096)
    before = _open_fds(node.pid)
    flood: list[socket.socket] = []
    try:
        for _ in range(1000):
            sock = socket.socket()
            sock.bind(("127.0.0.200", 0))
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.connect((getattr(node, "address", "127.0.0.1"), node.api_port))
            flood.append(sock)
        with cluster.client(timeout=3.0, retries=1) as client:
            assert client.raft().leader_id  # answered while the flood is connected
        # The node holds at most its per-address cap (64) of the flood, not 1,000 descriptors.
        assert _open_fds(node.pid) < before + 64 + 100
    finally:
        for sock in flood:
            sock.close()
    assert node.running


def test_data_files_are_private_whatever_the_umask(make_cluster) -> None:
    old = os.umask(0o022)  # the node process inherits it
    try:
        cluster = make_cluster(1)
    finally:
        os.umask(old)
    node = cluster.node(1)
    with cluster.client() as client:
        client.submit("orion-busybox:latest", node_selectors={"role": "nowhere"}, env={"DB_PASSWORD": "x"})
    assert stat.S_IMODE(node.data_dir.stat().st_mode) == 0o700
    files = [p for p in node.data_dir.rglob("*") if p.is_file()]
    assert any(p.name.startswith("raft.duckdb") for p in files)
    loose = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in files if p.stat().st_mode & 0o077}
    assert loose == {}


def test_a_token_file_others_may_read_is_refused_unless_allowed(make_cluster) -> None:
    cluster = make_cluster(1, start=False)
    Path(cluster.token_path).chmod(0o644)
    try:
        node = cluster.start_node(1)
        wait_for(lambda: not node.running, 30, what="the node to refuse to start")
        assert node.process is not None and node.process.returncode == 1
        log = node.log_path.read_text()
        assert "token file" in log and "readable by other users (mode 0644)" in log
        assert "allow_loose_permissions" in log
        cluster.settings["security"] = {"allow_loose_permissions": True}
        cluster._write_config(node)
        cluster.start(timeout=60)
        assert "accepted: [security] allow_loose_permissions = true" in node.log_path.read_text()
    finally:
        Path(cluster.token_path).chmod(0o600)
