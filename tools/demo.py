#!/usr/bin/env python3
"""Start the local 3-node cluster from config/, run a real web container on it, and say how
to reach it. ``--stop`` ends every node of the demo cluster, whoever started it, and removes
the cluster's containers.

Used by ``make demo``: the first command of the README on a fresh machine.

The nodes are found through their data dirs, not through a list of PIDs this script kept: a
running node holds an exclusive lock on ``node.lock`` in its data dir and wrote its pid there
(orion/raft/data_dir.py), so a node restarted by hand is found as well, and a stale pid file
(the lock is free) is never signalled. Containers are removed by the labels ``orion.cluster.id``
(read from the nodes' Raft stores once they stopped) and ``orion.node.id``, so another cluster
on the same Docker engine, even one with the same node ids, keeps its containers.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from orion.client import Client, NotFound, OrionError, read_token_file
from orion.config import ConfigError, NodeConfig, load_config
from orion.raft.data_dir import LOCK_FILE
from orion.security.keys import TOKEN_NAME, cluster_key_paths, write_cluster_key, write_token
from orion.services.spec import Service
from orion.testing.localcluster import wait_for

ROOT = Path(__file__).resolve().parent.parent

CONFIGS = [ROOT / "config" / f"node{i}.toml" for i in (1, 2, 3)]
STATE = ROOT / "data" / "demo.json"  # written by earlier versions (the PIDs they started); removed on stop
STOP_WAIT_S = 20.0  # a node hands leadership over and says goodbye before it exits
WEB_IMAGE = "orion-web:v1"  # built by tools/docker_setup.py (make docker)
SERVICE = "web"
WEB_PORT = "8080"
SECRETS = ROOT / "secrets"  # where config/node*.toml's [security] defaults point (nodes run in ROOT)


def ensure_secrets() -> str:
    """Secure by default: make the cluster key and client token once (as `orion keygen` does)."""
    if not cluster_key_paths(SECRETS)[0].exists():
        write_cluster_key(SECRETS)
        print("demo: created the cluster key in secrets/ (as `orion keygen` does)")
    if not (SECRETS / TOKEN_NAME).exists():
        write_token(SECRETS / TOKEN_NAME)
        print(f"demo: created the client token secrets/{TOKEN_NAME}")
    return read_token_file(SECRETS / TOKEN_NAME)


def start() -> None:
    configs = [load_config(path) for path in CONFIGS]
    running = running_nodes(configs)
    if running:
        listed = ", ".join(f"{node} (pid {pid})" for node, pid in running.items())
        sys.exit(f"demo: already running: {listed}; run `make demo-stop` first")
    token = ensure_secrets()
    (ROOT / "data").mkdir(exist_ok=True)
    for path, config in zip(CONFIGS, configs, strict=True):
        log = open(ROOT / "data" / f"{config.node_id}.log", "ab")  # noqa: SIM115 - the node's
        process = subprocess.Popen(
            [sys.executable, "-m", "orion", "node", "--config", str(path)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        print(f"demo: started {config.node_id} (pid {process.pid}), log data/{config.node_id}.log")
    endpoints = [api_endpoint(c) for c in configs]
    # The client API is encrypted (CURVE): the client checks the server by the cluster's public key.
    client = Client(endpoints, timeout=3.0, retries=3, token=token, server_key=cluster_key_paths(SECRETS)[1])

    def formed() -> bool:
        raft = client.raft()
        return bool(raft.leader_id) and len(raft.voters) == 3

    wait_for(formed, 60, what="the cluster to form (see data/node*.log)")
    raft = client.raft()
    print(f"demo: cluster formed: leader {raft.leader_id}, voters {', '.join(raft.voters)}")
    service = run_web_service(client)
    addresses = [c.ingress_address for c in configs]  # 127.0.0.N: as if on N hosts
    pages = {
        address: wait_for(
            lambda address=address: fetch(f"http://{address}:{WEB_PORT}/"), 60, what=f"{address}:{WEB_PORT}"
        )
        for address in addresses
    }
    placed = sorted(t.node_id for t in client.service_tasks(SERVICE) if t.state == "Running")
    print(
        f"demo: service {SERVICE} v{service.template_version} runs {len(placed)} replicas "
        f"(on {', '.join(placed)}); every node's ingress serves it:"
    )
    for address, page in pages.items():
        print(f"demo:   http://{address}:{WEB_PORT}/ -> {page}")
    print(
        f"""
  export ORION_ENDPOINTS={",".join(endpoints)}
  export ORION_TOKEN_FILE=secrets/{TOKEN_NAME}          # secured: the token, and the cluster key
                                                        # beside it (secrets/cluster.key) for CURVE
  .venv/bin/orion service ps {SERVICE}                          # its replicas, their nodes and health
  while true; do curl -s http://127.0.0.2:{WEB_PORT}/; sleep 0.2; done   # in another shell
  .venv/bin/orion service update {SERVICE} --image orion-web:v2   # rolling update, no failed request
  .venv/bin/orion service rollback {SERVICE}                      # and back
  .venv/bin/orion nodes                                         # or: orion task ls, orion raft
  curl -H "Authorization: Bearer $(cat secrets/{TOKEN_NAME})" http://127.0.0.1:{configs[0].http_port}/services
  make demo-stop                                        # stop the nodes and remove their containers
"""
    )


def run_web_service(client: Client) -> Service:
    """The demo's service: three web replicas behind every node's ingress, health-checked,
    updated one replica at a time with the new one healthy before the old one drains. A
    service already there (a demo started again) is kept."""
    try:
        service = client.service(SERVICE)
    except NotFound:
        service = client.create_service(
            SERVICE,
            WEB_IMAGE,
            replicas=3,
            ports=[f"{WEB_PORT}:80"],
            memory="64MiB",
            cpu=0.25,
            health={"kind": "http", "port": 80, "path": "/health", "interval": "1s"},
        )

    def available() -> bool:
        tasks = client.service_tasks(SERVICE)
        healthy = [t for t in tasks if t.state == "Running" and t.health == "healthy" and not t.drain_at]
        return len(healthy) >= service.spec.replicas

    wait_for(available, 90, what=f"{service.spec.replicas} healthy replicas of {SERVICE}")
    return client.service(SERVICE)


def fetch(url: str) -> str:
    return urllib.request.urlopen(url, timeout=2).read().decode().strip()


def api_endpoint(config: NodeConfig) -> str:
    return f"{config.api_bind}:{config.api_port}"


def lock_holder(data_dir: Path) -> int | None:
    """The pid of the live process holding ``data_dir`` (its ``node.lock``), else None.

    The lock, not the file, says whether a node runs there: the kernel drops it when the node
    dies, while the pid stays written. A free lock is taken for a moment to find that out.
    """
    try:
        fd = os.open(data_dir / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def running_nodes(configs: list[NodeConfig]) -> dict[str, int]:
    """Node id -> pid of each node of ``configs`` running now, whoever started it."""
    holders = {config.node_id: lock_holder(config.data_dir) for config in configs}
    return {node: pid for node, pid in holders.items() if pid is not None}


def _released(data_dir: Path, pid: int) -> bool:
    return lock_holder(data_dir) != pid


def stored_cluster_id(data_dir: Path) -> str:
    """The cluster id in a stopped node's Raft store ("" when it has none or cannot be read)."""
    from orion.raft.duckdb_store import DuckDBStore
    from orion.raft.types import EntryKind, decode_membership

    path = data_dir / "raft.duckdb"
    if not path.exists():
        return ""
    previous_umask = os.umask(0o077)  # files DuckDB makes here stay private, as the node's own
    try:
        store = DuckDBStore(path)
        try:
            stored = store.load()
        finally:
            store.close()
    except Exception as exc:  # a damaged store: its containers are left for the operator
        print(f"demo: cannot read {path} ({exc}); its node's containers are left in place")
        return ""
    finally:
        os.umask(previous_umask)
    configs = [entry for entry in stored.entries if entry.kind == EntryKind.CONFIG]
    if configs:
        return decode_membership(configs[-1].data).cluster_id
    return stored.snapshot.meta.membership.cluster_id if stored.snapshot is not None else ""


def stop(config_paths: list[Path]) -> None:
    configs = [load_config(path) for path in config_paths]
    running = running_nodes(configs)
    for node, pid in running.items():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            print(f"demo: stopping {node} (pid {pid})")
    deadline = time.monotonic() + STOP_WAIT_S
    by_dir = {config.node_id: config.data_dir for config in configs}
    for node, pid in running.items():
        released = functools.partial(_released, by_dir[node], pid)
        try:
            wait_for(released, max(0.0, deadline - time.monotonic()), what=f"{node} to exit")
        except TimeoutError:
            print(f"demo: {node} (pid {pid}) did not stop within {STOP_WAIT_S:.0f} s: killing it")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_for(released, 10, what=f"{node} to exit")
    removed = remove_containers(configs)
    STATE.unlink(missing_ok=True)
    if not running and not removed:
        print("demo: nothing to stop")
        return
    print(
        f"demo: stopped {len(running)} node(s), removed {removed} container(s); state stays in the data dirs"
    )


def remove_containers(configs: list[NodeConfig]) -> int:
    """Remove the containers of these nodes in their cluster(s), by both labels; how many."""
    import docker

    clusters = {stored_cluster_id(config.data_dir) for config in configs} - {""}
    if not clusters:
        return 0
    engine = docker.from_env()
    removed = 0
    try:
        for cluster_id in sorted(clusters):
            for config in configs:
                labels = [f"orion.cluster.id={cluster_id}", f"orion.node.id={config.node_id}"]
                for container in engine.containers.list(all=True, filters={"label": labels}):
                    with contextlib.suppress(docker.errors.NotFound):
                        container.remove(force=True)
                        removed += 1
    finally:
        engine.close()
    return removed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stop", action="store_true", help="stop the demo cluster")
    parser.add_argument(
        "--config",
        action="append",
        type=Path,
        help="with --stop: the node configs of the cluster to stop (default: config/node1-3.toml)",
    )
    args = parser.parse_args()
    configs = [path.resolve() for path in args.config] if args.config else CONFIGS
    # The demo's nodes run in the repository root, where config/'s relative data dirs point.
    os.chdir(ROOT)
    try:
        stop(configs) if args.stop else start()
    except (OrionError, TimeoutError, ConfigError) as exc:
        sys.exit(f"demo: {exc}")


if __name__ == "__main__":
    main()
