"""A 10-replica rolling update (parallelism 2, start-first, http health check every second):
Orion (3 local nodes, node N on 127.0.0.N, each with its HAProxy ingress) vs ``docker service
update`` on a one-node swarm on the same engine, with an HTTP client looping on the published
port on 127.0.0.1 during each update.

    .venv/bin/python -m tools.bench.service_update [--runs 2] [--replicas 10] [--parallelism 2]

Both run the local images orion-web:v1 and orion-web:v2 (``python -m tools.docker_setup``;
Swarm gets them by ID, a tag would make it try to pull) and each update swaps one for the
other. Time to finish: from the update request until the system reports it done (Orion: the
service's update completed and every replica runs the new template, healthy, not draining;
Swarm: ``UpdateStatus.State`` completed). Failed requests: requests of the client loop
(orion/testing/traffic.py: a new connection each, 2 s timeout) that failed from just before
the request until the answers settled on the new content. Runs are interleaved (Orion, then
Swarm) so other load on the machine falls on both alike. If this script initialised the
swarm, it leaves it afterwards. Swarm's routing mesh needs IPVS in the kernel: where nothing
answers on its published port, only its time to finish is measured (failed requests n/a).
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median
from typing import Any

from orion.client import Client
from orion.model import Desired, Health, TaskState
from orion.testing.localcluster import LocalCluster
from orion.testing.traffic import TrafficLoop
from tools.bench.common import log, save_result, wait_for

IMAGES = ("orion-web:v1", "orion-web:v2")
BODY = {"orion-web:v1": "v1", "orion-web:v2": "v2"}
HOST = "127.0.0.1"
POLL_S = 0.1
DEADLINE_S = 600.0


def docker(*args: str, check: bool = True) -> str:
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True).stdout.strip()


def free_port() -> int:
    """A port free on 127.0.0.1-3 (Orion's nodes) outside Orion's dynamic range."""
    for port in range(24700, 24900):
        try:
            for index in (1, 2, 3):
                with socket.socket() as sock:
                    sock.bind((f"127.0.0.{index}", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port in 24700-24899")


def measured_update(port: int, new_body: str, start_update: Any, finished: Any) -> dict[str, Any]:
    """Run ``start_update()`` under a client loop on HOST:port; time until ``finished()``; count
    failed requests until the answers settled on ``new_body``."""
    with TrafficLoop([(HOST, port)]) as traffic:
        traffic.wait_for_requests(20, timeout=60)
        mark = traffic.mark()
        start = time.perf_counter()
        start_update()
        wait_for(finished, DEADLINE_S, interval=POLL_S, what="the update to finish")
        seconds = time.perf_counter() - start
        traffic.wait_for_content(new_body, timeout=60, settle=20)
    return {
        "seconds": round(seconds, 2),
        "requests": traffic.ok_since(mark) + traffic.failed,
        "failed": traffic.failed,
        "failures": [f"{f.address} {f.error}" for f in traffic.failures[:5]],
    }


def serves(port: int, body: str) -> bool:
    try:
        return TrafficLoop([(HOST, port)]).request(HOST, port) == body
    except Exception:
        return False


# ---------------------------------------------------------------------- Orion


def orion_converged(client: Client, name: str, replicas: int, image: str) -> bool:
    service = client.service(name)
    if service.update.state != "completed" or service.spec.template.image != image:
        return False
    active = [
        t
        for t in client.service_tasks(name)
        if t.desired == Desired.RUN and t.state not in (TaskState.FAILED, TaskState.STOPPED)
    ]
    return len(active) == replicas and all(
        t.state == TaskState.RUNNING
        and t.version == service.template_version
        and t.health == Health.HEALTHY
        and not t.drain_at
        for t in active
    )


class OrionSide:
    name = "web"

    def __init__(self, replicas: int, parallelism: int) -> None:
        self.replicas = replicas
        self.cluster = LocalCluster(3, Path(tempfile.mkdtemp(prefix="orion-bench-service-")))
        try:
            self._start(parallelism)
        except BaseException:
            self.close()
            raise

    def _start(self, parallelism: int) -> None:
        self.cluster.start()
        self.client = self.cluster.client(timeout=10.0, retries=2)
        self.port = free_port()
        self.client.create_service(
            self.name,
            IMAGES[0],
            replicas=self.replicas,
            ports=[f"{self.port}:80"],
            health={"kind": "http", "port": 80, "path": "/health", "interval": 1.0},
            update={"parallelism": parallelism, "delay": 0.0, "order": "start-first"},
        )
        self.image = IMAGES[0]
        wait_for(
            lambda: orion_converged(self.client, self.name, self.replicas, self.image),
            DEADLINE_S,
            what="Orion",
        )
        wait_for(lambda: serves(self.port, BODY[self.image]), 60, what="Orion's ingress")

    def update(self) -> dict[str, Any]:
        new = IMAGES[1] if self.image == IMAGES[0] else IMAGES[0]
        result = measured_update(
            self.port,
            BODY[new],
            lambda: self.client.update_service(self.name, image=new),
            lambda: orion_converged(self.client, self.name, self.replicas, new),
        )
        self.image = new
        return result

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        self.cluster.close()


# ---------------------------------------------------------------------- Swarm


class SwarmSide:
    def __init__(self, replicas: int, parallelism: int) -> None:
        self.name = f"orion-bench-{uuid.uuid4().hex[:8]}"
        self.ids = {image: docker("image", "inspect", "--format", "{{.Id}}", image) for image in IMAGES}
        self.port = free_port()
        self.replicas = replicas
        self.mesh = True  # whether the routing mesh answers on the published port
        try:
            self._start(parallelism)
        except BaseException:
            self.close()
            raise

    def _start(self, parallelism: int) -> None:
        replicas = self.replicas
        docker(
            "service", "create", "--detach", "--quiet", "--name", self.name, "--replicas", str(replicas),
            "--publish", f"published={self.port},target=80", "--stop-grace-period", "10s",
            "--health-cmd", "wget -q -O /dev/null http://127.0.0.1/health", "--health-interval", "1s",
            "--health-timeout", "2s", "--health-retries", "3",
            "--update-parallelism", str(parallelism), "--update-delay", "0s", "--update-order", "start-first",
            "--no-resolve-image", self.ids[IMAGES[0]],
        )  # fmt: skip
        self.image = IMAGES[0]
        wait_for(lambda: self.running() >= replicas, DEADLINE_S, interval=0.5, what="Swarm's replicas")
        try:
            wait_for(lambda: serves(self.port, BODY[self.image]), 30, what="Swarm's routing mesh")
        except TimeoutError:
            # The routing mesh is IPVS in the kernel; where the kernel has none (no
            # /proc/sys/net/ipv4/vs), nothing answers on the published port at all.
            self.mesh = False
            log(f"Swarm's routing mesh does not answer on {HOST}:{self.port}: time to finish only")

    def running(self) -> int:
        states = docker(
            "service", "ps", self.name, "--filter", "desired-state=running", "--format", "{{.CurrentState}}"
        )
        return sum(1 for line in states.splitlines() if line.startswith("Running"))

    def finished(self) -> bool:
        state = docker(
            "service", "inspect", "--format", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}", self.name
        )
        return state == "completed"

    def update(self) -> dict[str, Any]:
        new = IMAGES[1] if self.image == IMAGES[0] else IMAGES[0]

        def start_update() -> None:
            docker(
                "service",
                "update",
                "--detach",
                "--quiet",
                "--no-resolve-image",
                "--image",
                self.ids[new],
                self.name,
            )

        if self.mesh:
            result = measured_update(self.port, BODY[new], start_update, self.finished)
        else:
            start = time.perf_counter()
            start_update()
            wait_for(self.finished, DEADLINE_S, interval=POLL_S, what="the update to finish")
            result = {"seconds": round(time.perf_counter() - start, 2), "requests": None, "failed": None}
        self.image = new
        return result

    def close(self) -> None:
        docker("service", "rm", self.name, check=False)
        with contextlib.suppress(TimeoutError):
            wait_for(
                lambda: (
                    not docker("ps", "-aq", "--filter", f"label=com.docker.swarm.service.name={self.name}")
                ),
                120,
                interval=0.5,
                what="Swarm's containers to be removed",
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--parallelism", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, list[dict[str, Any]]] = {"orion": [], "swarm": []}
    we_started_swarm = False
    if docker("info", "--format", "{{.Swarm.LocalNodeState}}") != "active":
        docker("swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377")
        we_started_swarm = True
    orion: OrionSide | None = None
    swarm: SwarmSide | None = None
    try:
        orion = OrionSide(args.replicas, args.parallelism)
        swarm = SwarmSide(args.replicas, args.parallelism)
        for run in range(args.runs):
            for system, side in (("orion", orion), ("swarm", swarm)):
                outcome = side.update()
                results[system].append(outcome)
                failed = (
                    f"{outcome['failed']}/{outcome['requests']}" if outcome["failed"] is not None else "n/a"
                )
                log(f"run {run + 1} {system}: {outcome['seconds']} s, {failed} requests failed")
    finally:
        if orion is not None:
            orion.close()
        if swarm is not None:
            swarm.close()
        if we_started_swarm:
            docker("swarm", "leave", "--force", check=False)
    save_result(
        "service_update",
        {"replicas": args.replicas, "parallelism": args.parallelism, "runs": args.runs, "updates": results},
    )
    print("| system | time to finish, s (median; each run) | failed requests (each run) | requests per run |")
    print("|---|---|---|---|")
    for system, runs in results.items():
        seconds = ", ".join(str(r["seconds"]) for r in runs)
        failed = ", ".join("n/a" if r["failed"] is None else str(r["failed"]) for r in runs)
        requests = ", ".join("n/a" if r["requests"] is None else str(r["requests"]) for r in runs)
        print(f"| {system} | {median(r['seconds'] for r in runs):.1f} ({seconds}) | {failed} | {requests} |")


if __name__ == "__main__":
    main()
