#!/usr/bin/env python3
"""Container start latency: Orion's worker against the Docker SDK and CLI, in the same run.

Method: for each of N rounds (default 30), three ways of getting a container of the local
image ``orion-busybox:latest`` running ``sleep 300`` are timed, in rotating order so that
engine drift hits all three alike:
- ``DockerWorker.start(task)``: Orion's path (image check, adoption lookup, create with labels
  and limits, start, reload), returning once Docker reports the container running;
- the Docker SDK's ``containers.run(detach=True)`` (create + start);
- ``docker run -d --rm`` (the CLI, which returns once the container is started).
Containers are removed after each round, outside the timed part. Prints p50/p99 and the
ratio of each to the SDK. Needs a Docker engine and the image (``tools/docker_setup.py``).

    .venv/bin/python -m tools.bench.worker [--runs 30]
"""

from __future__ import annotations

import argparse
import subprocess
import time
import uuid
from collections.abc import Callable

import docker

from orion.model import Task
from orion.worker import DockerWorker
from tools.stats import p50, p99

IMAGE = "orion-busybox:latest"
BENCH_LABEL = "orion.bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    client = docker.from_env()
    client.images.get(IMAGE)
    run_id = uuid.uuid4().hex[:8]
    node_id = f"bench-{run_id}"
    worker = DockerWorker(node_id, client=client, cluster_id=f"bench-{run_id}")
    labels = {BENCH_LABEL: run_id}

    def orion_start(i: int) -> None:
        info = worker.start(Task(id=f"t{i}", name=f"t{i}", image=IMAGE, command=["sleep", "300"]))
        assert info.status == "running", info

    def sdk_run(i: int) -> None:
        client.containers.run(
            IMAGE, ["sleep", "300"], detach=True, labels=labels, name=f"bench-sdk-{run_id}-{i}"
        )

    def cli_run(i: int) -> None:
        command = ["docker", "run", "-d", "--rm", "--label", f"{BENCH_LABEL}={run_id}"]
        command += ["--name", f"bench-cli-{run_id}-{i}", IMAGE, "sleep", "300"]
        subprocess.run(command, check=True, capture_output=True)

    methods: dict[str, Callable[[int], None]] = {
        "orion DockerWorker.start": orion_start,
        "docker SDK containers.run": sdk_run,
        "docker run -d --rm (CLI)": cli_run,
    }
    samples: dict[str, list[float]] = {name: [] for name in methods}
    names = list(methods)
    try:
        for i in range(args.runs):
            for name in names[i % 3 :] + names[: i % 3]:
                started = time.perf_counter()
                methods[name](i)
                samples[name].append(time.perf_counter() - started)
            worker.remove_all()
            for container in client.containers.list(all=True, filters={"label": f"{BENCH_LABEL}={run_id}"}):
                container.remove(force=True)
    finally:
        worker.remove_all()
        for container in client.containers.list(all=True, filters={"label": f"{BENCH_LABEL}={run_id}"}):
            container.remove(force=True)
    sdk_p50 = p50(samples["docker SDK containers.run"])
    print(f"{args.runs} runs each, image {IMAGE}, command sleep 300, until running")
    print(f"{'method':<28} {'p50 ms':>8} {'p99 ms':>8} {'p50 / SDK p50':>14}")
    for name, values in samples.items():
        median, tail = p50(values), p99(values)
        print(f"{name:<28} {median * 1000:>8.1f} {tail * 1000:>8.1f} {median / sdk_p50:>14.2f}")


if __name__ == "__main__":
    main()
