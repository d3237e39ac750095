"""The hollow pool's loop on its own: nodes that join nobody still probe, tick and write
their figures, for as long as the pool is told to run."""

from __future__ import annotations

import json
import time
from pathlib import Path

from orion.config import parse_config
from orion.hollow.pool import MAX_PASS_S, HollowPool, SharedClock
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


def test_nodes_of_one_pool_join_each_other_through_the_backlog(tmp_path: Path) -> None:
    # Push-pulls (the join and its answer) and gossip wait in their node's backlog; the nodes
    # still join, and nothing is left waiting at the end.
    (port,) = free_ports(1, "127.1.0.20")
    seed = f"127.1.0.20:{port}"
    config = parse_config(
        f'[node]\nid = "hollow"\ndata_dir = "{tmp_path}"\njoin = ["{seed}"]\n[security]\ninsecure = true\n'
    )
    pool = HollowPool(config, 4, first=20, base_address="127.1.0.1", port=port, prefix="j")
    stats = tmp_path / "join.json"
    pool.run(stats, duration=4.0)
    figures = json.loads(stats.read_text())
    assert all(len(node.swim.members()) == 4 for node in pool.nodes)
    assert figures["backlog"] == 0 and figures["clock_lag_s"] >= 0


def test_a_pass_longer_than_its_step_puts_the_pool_clock_behind(tmp_path: Path) -> None:
    config = parse_config(f'[node]\nid = "hollow"\ndata_dir = "{tmp_path}"\n[security]\ninsecure = true\n')
    (port,) = free_ports(1, "127.1.0.30")
    pool = HollowPool(config, 1, first=30, base_address="127.1.0.1", port=port, prefix="s")
    node = pool.nodes[0]
    step = node.step
    seen: list[float] = []

    def slow_step(now: float) -> None:  # a node whose pool has no CPU to spare for a while
        seen.append(now)
        if len(seen) == 1:
            time.sleep(0.5)
        step(now)

    node.step = slow_step  # type: ignore[method-assign]
    stats = tmp_path / "slow.json"
    began = time.monotonic()
    pool.run(stats, duration=1.5)
    figures = json.loads(stats.read_text())
    # The pass took ~0.5 s and moved the clock MAX_PASS_S: the rest is lag; the node's times
    # never went back, nor past the real time.
    assert figures["clock_lag_s"] >= 0.5 - MAX_PASS_S - 0.05
    assert pool.clock() <= time.monotonic() - 0.5 + MAX_PASS_S + 0.05
    assert seen == sorted(seen) and all(began - 1.0 <= at <= time.monotonic() for at in seen)


def test_pools_sharing_a_clock_run_on_the_largest_lag(tmp_path: Path) -> None:
    path = tmp_path / "clock.bin"
    first, second = SharedClock(path, 0), SharedClock(path, 5)
    assert first.publish(0.0) == 0.0
    assert second.publish(2.5) == 2.5
    assert first.publish(1.0) == 2.5  # the slower pool's lag is the run's
    assert second.publish(0.5) == 1.0
    first.close()
    second.close()
