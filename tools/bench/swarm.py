"""N tasks submitted at once until all are Running: Orion (3 local nodes sharing this
machine's Docker engine) vs Docker Swarm (a single-node swarm on the same engine).

    .venv/bin/python -m tools.bench.swarm [--sizes 10,50] [--runs 2]

Orion, once per scheduler strategy (binpack, the default, puts every task on one node;
spread uses all three): N submits issued concurrently (N threads, one Client each) to a
3-node LocalCluster, then ``tasks()`` polled every 50 ms until all N are Running; the clock starts before the
first submit. Swarm: ``docker service create --replicas N`` of the same image referenced by
its ID (a tag makes Swarm try to pull), polled with ``docker service ps`` every 50 ms until N
tasks are Running. Both run ``sleep 3600`` with a 1 s stop grace period. If this script
initialised the swarm it leaves it afterwards; a swarm that was already active is left alone.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from statistics import median
from typing import Any

from orion.client import Client
from orion.testing.localcluster import LocalCluster
from tools.bench.common import log, save_result, wait_for

IMAGE = "orion-busybox:latest"
POLL_S = 0.05


def docker(*args: str, check: bool = True) -> str:
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True).stdout.strip()


def image_id(image: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", image)


def orion_run(cluster: LocalCluster, n: int) -> float:
    ids = [uuid.uuid4().hex for _ in range(n)]
    errors: list[str] = []
    start = time.perf_counter()

    def submit(task_id: str, endpoint_index: int) -> None:
        endpoints = cluster.endpoints[endpoint_index:] + cluster.endpoints[:endpoint_index]
        try:
            with Client(endpoints, timeout=10.0) as client:
                client.submit(IMAGE, id=task_id, command=["sleep", "3600"], memory="16MiB")
        except Exception as exc:
            errors.append(repr(exc))

    threads = [
        threading.Thread(target=submit, args=(task_id, i % len(cluster.endpoints)))
        for i, task_id in enumerate(ids)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} submits failed: {errors[:3]}")
    wanted = set(ids)
    with Client(cluster.endpoints, timeout=10.0) as client:
        while True:
            running = {t.id for t in client.tasks(stale=True) if t.id in wanted and t.state == "Running"}
            if len(running) == n:
                elapsed = time.perf_counter() - start
                break
            if time.perf_counter() - start > 300:
                raise TimeoutError(f"only {len(running)}/{n} Orion tasks Running after 300 s")
            time.sleep(POLL_S)
        for task_id in ids:
            with contextlib.suppress(Exception):
                client.stop(task_id)
    return elapsed


def wait_orion_containers_gone(cluster: LocalCluster) -> None:
    def gone() -> bool:
        return not any(
            docker("ps", "-aq", "--filter", f"label=orion.node.id={node.node_id}") for node in cluster.nodes
        )

    with contextlib.suppress(TimeoutError):
        wait_for(gone, 120, interval=0.5, what="Orion's containers to be removed")
    cluster.remove_containers()


def swarm_run(image: str, n: int) -> float:
    name = f"orion-bench-{uuid.uuid4().hex[:8]}"
    start = time.perf_counter()
    try:
        docker(
            "service", "create", "--detach", "--quiet", "--name", name, "--replicas", str(n),
            "--stop-grace-period", "1s", "--no-resolve-image", image, "sleep", "3600",
        )  # fmt: skip
        while True:
            states = docker(
                "service", "ps", name, "--filter", "desired-state=running", "--format", "{{.CurrentState}}"
            )
            running = sum(1 for line in states.splitlines() if line.startswith("Running"))
            if running >= n:
                return time.perf_counter() - start
            if time.perf_counter() - start > 300:
                raise TimeoutError(f"only {running}/{n} Swarm tasks Running after 300 s")
            time.sleep(POLL_S)
    finally:
        docker("service", "rm", name, check=False)
        wait_for(
            lambda: not docker("ps", "-aq", "--filter", f"label=com.docker.swarm.service.name={name}"),
            120,
            interval=0.5,
            what="Swarm's containers to be removed",
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10,50")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--strategies", default="binpack,spread", help="Orion scheduler strategies to run")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    image = image_id(IMAGE)
    results: dict[str, Any] = {"swarm": {}}
    we_started_swarm = False
    if docker("info", "--format", "{{.Swarm.LocalNodeState}}") != "active":
        docker("swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377")
        we_started_swarm = True
    try:
        # Interleaved (each size, each run: Orion with every strategy, then Swarm) so load
        # from other work on the machine falls on all sides alike.
        for n in sizes:
            for run in range(args.runs):
                for strategy in args.strategies.split(","):
                    base = Path(tempfile.mkdtemp(prefix="orion-bench-swarm-"))
                    settings = {"scheduler": {"strategy": strategy}}
                    with LocalCluster(3, base, settings=settings) as cluster:
                        cluster.start()
                        orion_s = orion_run(cluster, n)
                        wait_orion_containers_gone(cluster)
                    results.setdefault(f"orion {strategy}", {}).setdefault(str(n), []).append(
                        round(orion_s, 3)
                    )
                    log(f"n={n} run {run + 1}: orion ({strategy}) {orion_s:.2f} s")
                swarm_s = swarm_run(image, n)
                results["swarm"].setdefault(str(n), []).append(round(swarm_s, 3))
                log(f"n={n} run {run + 1}: swarm {swarm_s:.2f} s")
    finally:
        if we_started_swarm:
            docker("swarm", "leave", "--force", check=False)
    save_result("swarm", {"image": image, "runs": args.runs, "seconds_until_all_running": results})
    systems = [k for k in results if k != "swarm"]
    print(
        "| tasks | "
        + " | ".join(f"{k} s" for k in systems)
        + " | Swarm s | "
        + " | ".join(f"{k} / Swarm" for k in systems)
        + " |"
    )
    print("|---" * (2 + 2 * len(systems)) + "|")
    for n in sizes:
        swarm = median(results["swarm"][str(n)])
        ours = [median(results[k][str(n)]) for k in systems]
        cells = [f"{o:.2f}" for o in ours] + [f"{swarm:.2f}"] + [f"{o / swarm:.2f}" for o in ours]
        print(f"| {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
