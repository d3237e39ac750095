"""The nemesis on a bed of real hosts in miniature (orion/testing/hosts): the same schedule of
faults, made from outside Orion. ``kill`` and ``restart_all`` kill whole hosts (node, dockerd,
containers) and boot them again, ``pause`` freezes a host's cgroup, ``wipe`` loses a host's
node data dir, and a partition is nftables rules in the hosts' namespaces instead of the
nodes' test-only ``block_peers`` hook. The cluster object is the bed's BedCluster, whose
kill/start/pause/wipe already mean the host; only the partitions differ here.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from orion.nemesis.faults import FAULT_KINDS, Nemesis, Timing
from orion.nemesis.history import History
from orion.testing.hosts import BedCluster, HostBed


class BedNemesis(Nemesis):
    def __init__(
        self,
        cluster: BedCluster,
        history: History,
        rng: random.Random,
        timing: Timing,
        kinds: tuple[str, ...] = FAULT_KINDS,
    ) -> None:
        super().__init__(cluster, history, rng, timing, kinds=kinds)
        self.bed = cluster.the_bed

    def block(self, side_a: set[int], side_b: set[int]) -> None:
        self.bed.partition(side_a, side_b)

    def heal_partitions(self) -> None:
        self.bed.heal()


def bed_cluster(nodes: int, base_dir: Path, settings: dict[str, dict[str, Any]]) -> BedCluster:
    """A bed of ``nodes`` hosts (not started) whose cluster the nemesis drives; closing the
    cluster removes the bed."""
    return HostBed(nodes, base_dir, settings=settings).cluster
