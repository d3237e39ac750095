"""The hollow pool's loop on its own: nodes that join nobody still probe, tick and write
their figures, for as long as the pool is told to run."""

from __future__ import annotations

import json
from pathlib import Path

from orion.config import parse_config
from orion.hollow.pool import HollowPool
from orion.testing.localcluster import free_ports


def test_a_pool_runs_its_nodes_and_writes_its_figures(tmp_path: Path) -> None:
    # Insecure: the default cluster key path is relative to the working directory, which a
    # fresh clone has no key in (the loop, not the security, is under test here).
    config = parse_config(f'[node]\nid = "hollow"\ndata_dir = "{tmp_path}"\n[security]\ninsecure = true\n')
    # One node alone (its timer is the only one the loop holds), then three; each pool on
    # addresses of its own (ZeroMQ frees a closed socket's port in the background).
    for count, first in ((1, 9), (3, 10)):
        (port,) = free_ports(1, f"127.1.0.{first}")
        pool = HollowPool(config, count, first=first, base_address="127.1.0.1", port=port, prefix="p")
        stats = tmp_path / f"pool{count}.json"
        pool.run(stats, duration=1.5)
        figures = json.loads(stats.read_text())
        assert figures["count"] == count and figures["cpu_s"] > 0
        assert figures["loop_max_ever_s"] >= figures["loop_max_s"] >= 0
