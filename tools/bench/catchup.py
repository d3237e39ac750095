"""How long a wiped follower takes to catch up, by state size.

    .venv/bin/python -m tools.bench.catchup --sizes 10,50,200

For each size S (MiB of task env): a fresh local 3-node cluster (secured, as a real one),
filled with S MiB of unplaceable tasks of up to ~0.9 MB each. The snapshot threshold is a
quarter of the entries written and only a few entries stay behind a snapshot, so the leader
no longer holds the log from index 1 and the wiped node can only catch up by a snapshot.
Then a follower (not the bootstrap node) is wiped: ``kill -9``, its data dir deleted, started
again with the same config. Measured from that start:

- ``caught_up_s``: its commit index reaches the leader's (read just before it);
- ``voter_s``: it is a voter of the leader's configuration again, caught up;
- ``serving_s``: its stale read of the newest task succeeds (the whole state is there).
  After the timing, every task is read from its replica once more (``served_all``).

Beside it, the leader's health during the transfer: the latency of a Raft status query sent
every 50 ms (it goes through the Raft actor's mailbox, as its ticks and heartbeats do), the
"late tick" lines each node logged (a tick more than two ticks late delays heartbeats), and
the terms: an unchanged term on every node means no election timer fired. A worst tick gap
of 0 means no tick was late by more than two ticks (the Raft actor logs nothing smaller).

Prints a table; writes benchmarks/results/catchup.json (bench_common.save_result).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from orion.client import Client
from orion.testing.localcluster import BIG_ENTRY_BYTES, LocalCluster
from tools.bench.common import log, save_result, wait_for
from tools.stats import summary

LATE_TICKS = re.compile(r"raft: (\d+) late tick\(s\), worst (\d+) ms between ticks")
ENTRIES_PER_SIZE_MIN = 40  # small states use smaller entries, so that snapshots happen at all
TRAILING_ENTRIES = 8


class StatusProbe(threading.Thread):
    """Asks one node for its Raft status every ``interval`` s; records each answer's latency and
    the terms seen. Its own Client: a ZeroMQ socket belongs to one thread."""

    def __init__(self, cluster: LocalCluster, index: int, interval: float = 0.05) -> None:
        super().__init__(name=f"status-probe-{index}", daemon=True)
        self.endpoint = cluster.node(index).api_endpoint
        self.token = cluster.token
        self.interval = interval
        self.latencies: list[float] = []
        self.terms: set[int] = set()
        self.failures = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        with Client([self.endpoint], timeout=5.0, retries=1, token=self.token) as client:
            while not self.stop_event.is_set():
                started = time.perf_counter()
                try:
                    self.terms.add(client.raft().term)
                    self.latencies.append(time.perf_counter() - started)
                except Exception:  # a timeout is a finding too: counted, never hidden
                    self.failures += 1
                self.stop_event.wait(self.interval)


def late_ticks(log_path: Path, offset: int) -> dict[str, float]:
    """Late-tick lines a node logged after ``offset``: how many late ticks, and the worst gap."""
    text = log_path.read_bytes()[offset:].decode(errors="replace")
    found = [(int(c), int(w)) for c, w in LATE_TICKS.findall(text)]
    return {"late_ticks": sum(c for c, _ in found), "worst_gap_ms": max((w for _, w in found), default=0)}


def fill_plan(size_mb: float) -> tuple[int, int]:
    """(bytes per entry, snapshot threshold) for a state of ``size_mb`` MiB."""
    entry_bytes = min(BIG_ENTRY_BYTES, int(size_mb * 2**20) // ENTRIES_PER_SIZE_MIN)
    entries = int(size_mb * 2**20 / entry_bytes) + 1
    return entry_bytes, max(16, entries // 4)


def measure(size_mb: float, base_dir: Path, timeout: float) -> dict[str, Any]:
    entry_bytes, threshold = fill_plan(size_mb)
    settings = {"raft": {"snapshot_threshold": threshold, "trailing_entries": TRAILING_ENTRIES}}
    result: dict[str, Any] = {
        "state_mib": size_mb,
        "entry_bytes": entry_bytes,
        "snapshot_threshold": threshold,
        "trailing_entries": TRAILING_ENTRIES,
    }
    with LocalCluster(3, base_dir, settings=settings) as cluster:
        cluster.start(timeout=90)
        started = time.perf_counter()
        ids = cluster.fill_state(size_mb, entry_bytes=entry_bytes, prefix="fill")
        result["fill_s"] = round(time.perf_counter() - started, 2)
        result["tasks"] = len(ids)
        result["fill_mib_per_s"] = round(size_mb / result["fill_s"], 2)
        log(f"{size_mb} MiB: {len(ids)} tasks written in {result['fill_s']} s")
        leader = wait_for(cluster.leader_index, 60, what="a leader")
        follower = next(n.index for n in cluster.nodes if n.index not in (leader, 1))
        wait_for(
            lambda: not cluster.catch_up_gap(follower, ids[-1:]), 300, what="the follower before the wipe"
        )
        terms_before = {n.node_id: cluster.raft_status(n.index).term for n in cluster.nodes}
        offsets = {n.index: n.log_path.stat().st_size for n in cluster.nodes}
        probe = StatusProbe(cluster, leader)
        probe.start()
        try:
            result.update(wipe_and_time(cluster, follower, ids, timeout))
        finally:
            probe.stop_event.set()
            probe.join(10)
        result["served_all"] = not cluster.catch_up_gap(follower, ids)
        terms_after = {n.node_id: cluster.raft_status(n.index).term for n in cluster.nodes}
        result["leader_status_ms"] = summary(probe.latencies, scale=1000.0, digits=1)
        result["leader_status_failures"] = probe.failures
        result["leader_terms_seen"] = sorted(probe.terms)
        result["elections"] = max(terms_after.values()) - max(terms_before.values())
        result["late_ticks"] = {
            ("leader" if n.index == leader else "wiped" if n.index == follower else "other"): late_ticks(
                n.log_path, offsets[n.index]
            )
            for n in cluster.nodes
        }
    return result


def wipe_and_time(cluster: LocalCluster, follower: int, ids: list[str], timeout: float) -> dict[str, Any]:
    node = cluster.node(follower)
    cluster.wipe(follower)
    started = time.perf_counter()
    marks: dict[str, float] = {}
    newest = ids[-1]

    def progressed() -> bool:
        leader = cluster.leader_index()
        if leader is None:
            return False
        leader_status = cluster.raft_status(leader)
        status = cluster.raft_status(follower)
        elapsed = round(time.perf_counter() - started, 2)
        if status.commit_index >= leader_status.commit_index:
            marks.setdefault("caught_up_s", elapsed)
            if node.node_id in leader_status.voters:
                marks.setdefault("voter_s", elapsed)
        if "caught_up_s" in marks and "serving_s" not in marks:
            with cluster.client(follower, timeout=10.0, retries=1) as client:
                client.task(newest, stale=True)
            marks["serving_s"] = round(time.perf_counter() - started, 2)
        return {"caught_up_s", "voter_s", "serving_s"} <= marks.keys()

    try:
        wait_for(progressed, timeout, interval=0.2, what=f"wiped {node.node_id} to catch up")
        marks["timed_out"] = False
    except TimeoutError as exc:
        log(str(exc))
        marks["timed_out"] = True
    return marks


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'state MiB':>9} {'tasks':>6} {'fill s':>7} {'caught up s':>11} {'voter s':>8} {'serving s':>9} "
        f"{'all served':>10} {'leader status p99/max ms':>24} {'leader tick gap ms':>18} {'elections':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        status = r["leader_status_ms"]
        lines.append(
            f"{r['state_mib']:>9g} {r['tasks']:>6} {r['fill_s']:>7} {r.get('caught_up_s', '-'):>11} "
            f"{r.get('voter_s', '-'):>8} {r.get('serving_s', '-'):>9} {r['served_all']!s:>10} "
            f"{str(status.get('p99', '-')) + ' / ' + str(status.get('max', '-')):>24} "
            f"{r['late_ticks']['leader']['worst_gap_ms']:>18} {r['elections']:>9}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10,50,200", help="state sizes in MiB, comma-separated")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for each catch-up")
    parser.add_argument("--name", default="catchup", help="result file: benchmarks/results/NAME.json")
    args = parser.parse_args(argv)
    try:
        sizes = [float(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes: expected numbers of MiB such as 10,50,200, got {args.sizes!r}")
    if not sizes or min(sizes) <= 0:
        parser.error(f"--sizes: expected positive sizes, got {args.sizes!r}")
    rows = []
    base = Path(tempfile.mkdtemp(prefix="orion-bench-catchup-"))
    try:
        for size in sizes:  # one cluster at a time: the machine is shared
            rows.append(measure(size, base / f"state-{size:g}", args.timeout))
            log(f"{size:g} MiB: {rows[-1]}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(table(rows))
    save_result(args.name, {"nodes": 3, "runs": rows})
    return 0 if all(not r["timed_out"] and r["served_all"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
