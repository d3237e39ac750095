#!/usr/bin/env python3
"""Three real hosts in miniature on this machine: a bed of network namespaces on a private
LAN, each host with its own dockerd and its own ``orion node``; a web task on host 3, and how
to reach it. ``--stop`` tears the bed down (processes, namespaces, links, cgroups, dirs).

Used by ``make demo-hosts`` (needs root). The bed outlives this script: its owner, for
``cleanup_stale_beds``, is a small keeper process that ``--stop`` ends; the bed's id and the
keeper's pid are kept in data/demo-hosts.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from orion.testing.hosts import HostBed
from orion.testing.hosts.bed import RUNTIME_ROOT, process_start, remove_recorded_bed
from orion.testing.localcluster import wait_for

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / "data" / "demo-hosts.json"
BASE = ROOT / "data" / "demo-hosts"
WEB_IMAGE = "orion-web:v1"  # built by tools/docker_setup.py (make docker)
WEB_PORT = 8080


def start() -> None:
    if STATE.exists():
        recorded = STATE.relative_to(ROOT)
        sys.exit(f"demo-hosts: a bed is recorded in {recorded}; run `make demo-hosts-stop` first")
    if os.geteuid() != 0:
        sys.exit("demo-hosts: needs root (network namespaces, a dockerd per host)")
    shutil.rmtree(BASE, ignore_errors=True)  # a previous demo's logs
    keeper = subprocess.Popen(
        ["sleep", "infinity"],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,  # else a caller reading this script's output waits for the keeper
        stderr=subprocess.DEVNULL,
    )
    images = ("orion-busybox:latest", WEB_IMAGE)
    try:
        bed = HostBed(3, BASE, owner_pid=keeper.pid, images=images, per_node={3: {"tags": {"host": "h3"}}})
    except BaseException:
        keeper.kill()
        raise
    STATE.parent.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps({"bed": bed.id, "keeper": keeper.pid}) + "\n")
    try:
        print(f"demo-hosts: bed {bed.id} on {bed.subnet}: starting 3 dockerds and 3 nodes", flush=True)
        bed.start(timeout=120)
        with bed.cluster.client() as client:
            raft = client.raft()
            print(f"demo-hosts: cluster formed: leader {raft.leader_id}, voters {', '.join(raft.voters)}")
            task = client.submit(
                WEB_IMAGE,
                name="web",
                ports={"80/tcp": str(WEB_PORT)},
                memory="64MiB",
                node_selectors={"host": "h3"},
            )
            task = wait_for(
                lambda: (t := client.task(task.id)).state == "Running" and t, 60, what="the web task Running"
            )
        url = f"http://{task.host_ip}:{WEB_PORT}/"
        page = wait_for(lambda: urllib.request.urlopen(url, timeout=2).read().decode().strip(), 30, what=url)
    except BaseException:
        print(bed.logs(30), file=sys.stderr)
        stop()
        raise
    env = bed.cluster.client_env()
    lines = "\n".join(f"  export {k}={v}" for k, v in env.items())
    hosts = "\n".join(
        f"  {h.name}: {h.address}, namespace {h.netns}, engine: docker -H {h.engine.docker_host} ps"
        for h in bed.hosts
    )
    print(
        f"""demo-hosts: task {task.id} runs on {task.node_id}: {url} -> {page}

{hosts}
  the LAN: {bed.subnet} (this namespace is {bed.subnet.network_address + 1} on it, link {bed.id})

{lines}
  .venv/bin/orion nodes                                  # three hosts, each at its own address
  .venv/bin/orion task ls
  curl {url}
  ip netns exec {bed.hosts[0].netns} ip -br addr             # a host's own view of the network
  make demo-hosts-stop                                   # tear the bed down
"""
    )


def stop() -> None:
    if not STATE.exists():
        print("demo-hosts: no bed recorded; nothing to stop")
        return
    state = json.loads(STATE.read_text())
    keeper, bed_id = int(state["keeper"]), str(state["bed"])
    record = RUNTIME_ROOT / bed_id / "bed.json"
    if record.exists():
        owner_start = json.loads(record.read_text())["owner_start"]
        with contextlib.suppress(OSError):  # only the keeper this demo started (pid and start time)
            if process_start(keeper) == owner_start:
                os.kill(keeper, signal.SIGKILL)
        problems = remove_recorded_bed(bed_id)
        if problems:
            sys.exit(f"demo-hosts: bed {bed_id} not fully removed: {'; '.join(problems)}")
    STATE.unlink()
    print(f"demo-hosts: bed {bed_id} removed (logs stay in {BASE.relative_to(ROOT)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stop", action="store_true", help="tear the demo's bed down")
    if parser.parse_args().stop:
        stop()
    else:
        start()


if __name__ == "__main__":
    main()
