"""The ``orion node`` of every bed host: a LocalCluster whose node I runs in host I's network
namespace, binds Raft, gossip and its APIs to the host's underlay address (standard ports:
each host has its own), and talks to the host's own Docker engine (DOCKER_HOST).

The faults are the host's, not the process's: ``kill`` kills the whole host (node, engine,
containers), ``start_node`` boots a dead host's engine before its node, ``pause`` freezes the
host, ``wipe`` is a dead host whose node lost its data dir. So the nemesis and the tests that
drive a LocalCluster drive a bed unchanged.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from orion.testing.hosts.cgroups import join_command
from orion.testing.hosts.host import Bed
from orion.testing.hosts.netns import BedError
from orion.testing.localcluster import LocalCluster, LocalNode, _api_bind

PORTS = {"raft": 7100, "gossip": 7200, "api": 7300, "http": 7400}  # every host has its own


@dataclass
class BedCluster(LocalCluster):
    bed: Bed | None = None

    def _add_node(self, index: int) -> LocalNode:
        host = self.the_bed.host(index)
        node_id = f"{self.prefix}-h{index}"
        node = LocalNode(
            index=index,
            node_id=node_id,
            raft_port=PORTS["raft"],
            gossip_port=PORTS["gossip"],
            api_port=PORTS["api"],
            http_port=PORTS["http"],
            config_path=self.base_dir / f"{node_id}.toml",
            data_dir=self.base_dir / node_id,
            log_path=self.base_dir / f"{node_id}.log",
            address=host.address,
        )
        self.nodes.append(node)
        # The bed's own sections first; a test's per_node values still win over them.
        own: dict[str, dict[str, Any]] = {
            "node": _api_bind(host.address),
            "security": {"http_bind": host.address},
        }
        if self.the_bed.overlay:
            own["network"] = {"cluster_cidr": self.the_bed.cluster_cidr, "overlay": True}
        for section, values in self.per_node.get(index, {}).items():
            own.setdefault(section, {}).update(values)
        self.per_node[index] = own
        self._write_config(node)
        return node

    @property
    def the_bed(self) -> Bed:
        if self.bed is None:
            raise BedError("a BedCluster is made by a HostBed")
        return self.bed

    def add_node(self) -> LocalNode:
        raise BedError("a bed's hosts are fixed when it is made (HostBed(hosts=N))")

    # ------------------------------------------------------------------ processes

    def start(self, wait: bool = True, timeout: float = 60.0) -> BedCluster:
        self.the_bed.start_hosts()
        super().start(wait=wait, timeout=timeout)
        return self

    def start_node(self, index: int) -> LocalNode:
        """Start the host's node; a dead host's engine is booted first (a reboot)."""
        bed = self.the_bed
        host = bed.host(index)
        if not host.engine.running:
            bed.boot_engine(index)
        node = self.node(index)
        if node.running:
            return node
        in_host = ["nsenter", f"--net=/run/netns/{host.netns}", sys.executable, "-m", "orion", "node"]
        log = open(node.log_path, "ab")  # noqa: SIM115 - owned by the child process
        try:
            node.process = subprocess.Popen(
                join_command(host.procs, [*in_host, "--config", str(node.config_path)]),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "DOCKER_HOST": host.engine.docker_host},
            )
        finally:
            log.close()
        return node

    def kill(self, index: int) -> None:
        """The host dies: node, engine, containerd, shims and containers, all by SIGKILL."""
        self.the_bed.kill_host(index)

    def pause(self, index: int) -> None:
        self.the_bed.pause_host(index)

    def resume(self, index: int) -> None:
        self.the_bed.resume_host(index)

    def wipe(self, index: int, restart: bool = True) -> LocalNode:
        """The host dies and comes back with an empty node data dir (its engine keeps its images)."""
        node = self.node(index)
        self.the_bed.kill_host(index)
        shutil.rmtree(node.data_dir, ignore_errors=True)
        if restart:
            self.start_node(index)
        return node

    def close(self) -> None:
        self.the_bed.close()

    def remove_containers(self) -> None:
        """Nothing to do: the containers die with their hosts' engines."""

    # ------------------------------------------------------------------ queries

    def running_containers(self) -> dict[str, list[str]]:
        """task id -> node ids of the running containers of every live host's engine."""
        out: dict[str, list[str]] = {}
        for host in self.the_bed.hosts:
            if not host.engine.running:
                continue
            with contextlib.closing(host.engine.client(timeout=10)) as engine:
                for container in engine.containers.list(filters={"label": "orion.task.id"}):
                    task_id = container.labels.get("orion.task.id", "")
                    out.setdefault(task_id, []).append(container.labels.get("orion.node.id", ""))
        return {task_id: sorted(holders) for task_id, holders in out.items()}
