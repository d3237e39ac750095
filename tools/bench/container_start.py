"""Submit-to-Running of one task vs the same container started directly, interleaved in one
run on one Docker engine: ``docker run -d`` (CLI) and the Docker SDK's create + start.

    .venv/bin/python -m tools.bench.container_start [--samples 20]

Orion: a 3-node LocalCluster; the clock runs from submit until ``task(id)`` (a linearizable
read, polled every 20 ms) says Running, i.e. it includes scheduling, two Raft commits, the
reconciler noticing, the worker's own create + start, and the Running report. The direct
starts stop when the container is running (``docker run -d`` returns, ``start()`` returns).
Every container gets a 1 s stop timeout (busybox ``sleep`` ignores SIGTERM) and is removed.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import docker

from orion.client import Client
from orion.testing.localcluster import LocalCluster
from tools.bench.common import log, save_result
from tools.stats import summary

IMAGE = "orion-busybox:latest"
LABEL = "orion.bench=container-start"


def orion_sample(client: Client) -> float:
    start = time.perf_counter()
    task = client.submit(IMAGE, command=["sleep", "3600"], memory="16MiB")
    client.wait(task.id, "Running", timeout=60, interval=0.02)
    elapsed = time.perf_counter() - start
    client.stop(task.id)
    return elapsed


def cli_sample() -> float:
    start = time.perf_counter()
    container = subprocess.run(
        ["docker", "run", "-d", "--label", LABEL, "--stop-timeout", "1", IMAGE, "sleep", "3600"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    elapsed = time.perf_counter() - start
    subprocess.run(["docker", "rm", "-f", container], check=True, capture_output=True)
    return elapsed


def sdk_sample(engine: docker.DockerClient) -> float:
    start = time.perf_counter()
    container = engine.containers.create(
        IMAGE, ["sleep", "3600"], labels={"orion.bench": "container-start"}, stop_signal="SIGKILL"
    )
    container.start()
    elapsed = time.perf_counter() - start
    container.remove(force=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {"orion": [], "docker run -d": [], "sdk create+start": []}
    engine = docker.from_env()
    try:
        with LocalCluster(3, Path(tempfile.mkdtemp(prefix="orion-bench-start-"))) as cluster:
            cluster.start()
            with cluster.client(timeout=10.0) as client:
                orion_sample(client)  # warm-up: first placement, image inspect cache
                sdk_sample(engine)
                for i in range(args.samples):
                    samples["orion"].append(orion_sample(client))
                    samples["docker run -d"].append(cli_sample())
                    samples["sdk create+start"].append(sdk_sample(engine))
                    log(
                        f"sample {i + 1}: orion {samples['orion'][-1] * 1e3:.0f} ms, "
                        f"cli {samples['docker run -d'][-1] * 1e3:.0f} ms, "
                        f"sdk {samples['sdk create+start'][-1] * 1e3:.0f} ms"
                    )
    finally:
        for container in engine.containers.list(all=True, filters={"label": LABEL}):
            with contextlib.suppress(Exception):
                container.remove(force=True)
        engine.close()
    rows: dict[str, Any] = {name: summary(s, 1e3, 1) for name, s in samples.items()}
    sdk_p50 = rows["sdk create+start"]["p50"]
    for row in rows.values():
        row["p50_vs_sdk"] = round(row["p50"] / sdk_p50, 2)
    save_result("container_start", {"samples": args.samples, "ms": rows})
    print("| path | p50 ms | p90 ms | p99 ms | p50 / SDK |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['p50']:.0f} | {r['p90']:.0f} | {r['p99']:.0f} | {r['p50_vs_sdk']:.2f} |")


if __name__ == "__main__":
    main()
