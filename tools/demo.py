#!/usr/bin/env python3
"""Start the local 3-node cluster from config/, run a real web container on it, and say how
to reach it. ``--stop`` ends the nodes this demo started (by PID) and removes their containers.

Used by ``make demo``: the first command of the README on a fresh machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orion.client import Client, OrionError, read_token_file  # noqa: E402
from orion.config import load_config  # noqa: E402
from orion.localcluster import wait_for  # noqa: E402
from orion.security.keys import TOKEN_NAME, cluster_key_paths, write_cluster_key, write_token  # noqa: E402

CONFIGS = [ROOT / "config" / f"node{i}.toml" for i in (1, 2, 3)]
STATE = ROOT / "data" / "demo.json"
IMAGE = "orion-busybox:latest"
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
    if STATE.exists():
        sys.exit(f"demo: already running (see {STATE}); run `make demo-stop` first")
    configs = [load_config(path) for path in CONFIGS]
    token = ensure_secrets()
    (ROOT / "data").mkdir(exist_ok=True)
    pids = []
    for path, config in zip(CONFIGS, configs, strict=True):
        log = open(ROOT / "data" / f"{config.node_id}.log", "ab")  # noqa: SIM115 - the node's
        process = subprocess.Popen(
            [sys.executable, "-m", "orion", "node", "--config", str(path)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        pids.append(process.pid)
        print(f"demo: started {config.node_id} (pid {process.pid}), log data/{config.node_id}.log")
    STATE.write_text(json.dumps({"pids": pids, "nodes": [c.node_id for c in configs]}))
    endpoints = [f"127.0.0.1:{c.api_port}" for c in configs]
    client = Client(endpoints, timeout=3.0, retries=3, token=token)

    def formed() -> bool:
        raft = client.raft()
        return bool(raft.leader_id) and len(raft.voters) == 3

    wait_for(formed, 60, what="the cluster to form (see data/node*.log)")
    raft = client.raft()
    print(f"demo: cluster formed: leader {raft.leader_id}, voters {', '.join(raft.voters)}")
    existing = [
        t for t in client.tasks() if t.name == "web" and t.state in ("Pending", "Scheduled", "Running")
    ]
    task = (
        existing[0]
        if existing
        else client.submit(
            IMAGE,
            name="web",
            command=["httpd", "-f", "-p", "80", "-h", "/www"],
            ports={"80/tcp": WEB_PORT},
            memory="64MiB",
            cpu=0.25,
        )
    )
    task = client.wait(task.id, "Running", timeout=60)
    page = wait_for(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}/", timeout=2).read(), 20, what="the page"
    )
    print(f"demo: task {task.id} is Running on {task.node_id}; it serves: {page.decode().strip()}")
    print(
        f"""
  curl http://127.0.0.1:{WEB_PORT}/                      # the container, published on 127.0.0.1
  export ORION_ENDPOINTS={",".join(endpoints)}
  export ORION_TOKEN_FILE=secrets/{TOKEN_NAME}          # secured: clients need the token
  .venv/bin/orion task ls                               # or: orion nodes, orion raft
  .venv/bin/orion task inspect {task.id}
  curl -H "Authorization: Bearer $(cat secrets/{TOKEN_NAME})" http://127.0.0.1:{configs[0].http_port}/tasks
  make demo-stop                                        # stop the nodes and remove their containers
"""
    )


def stop() -> None:
    if not STATE.exists():
        print("demo: nothing to stop")
        return
    state = json.loads(STATE.read_text())
    for pid in state["pids"]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for pid in state["pids"]:
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        import docker

        engine = docker.from_env()
        for node_id in state["nodes"]:
            for container in engine.containers.list(all=True, filters={"label": f"orion.node.id={node_id}"}):
                container.remove(force=True)
    STATE.unlink()
    print("demo: stopped; state stays in data/ (remove it for a fresh cluster)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stop", action="store_true", help="stop the demo cluster")
    args = parser.parse_args()
    try:
        stop() if args.stop else start()
    except (OrionError, TimeoutError) as exc:
        sys.exit(f"demo: {exc}")


if __name__ == "__main__":
    main()
