"""One host of a test bed, and what a bed's cluster needs from the bed that made it.

The cluster (orion/testing/hosts/cluster.py) starts and kills nodes through its bed; the bed
(bed.py) makes its cluster. ``Bed`` names the bed's side of that, so the cluster depends on this
small module and not on bed.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from orion.testing.hosts.engine import Engine


@dataclass
class BedHost:
    index: int
    netns: str
    address: str  # underlay, on the bed's /24
    engine: Engine
    cgroup: Path  # the host's subtree: every process of the host is in it
    procs: Path  # cgroup.procs of its daemons cgroup (node, dockerd, containerd, shims)

    @property
    def name(self) -> str:
        return f"h{self.index}"


class Bed(Protocol):
    hosts: list[BedHost]
    overlay: bool
    cluster_cidr: str

    def host(self, index: int) -> BedHost: ...

    def start_hosts(self) -> None: ...

    def boot_engine(self, index: int) -> None: ...

    def kill_host(self, index: int) -> list[int]: ...

    def pause_host(self, index: int) -> None: ...

    def resume_host(self, index: int) -> None: ...

    def close(self) -> None: ...
