"""The faults: chosen from a seeded RNG, injected one at a time into a LocalCluster.

- ``kill``: ``kill -9`` a random node or the leader, restart it after a random downtime
  (sometimes longer than ``remove_dead_after``, so it is removed and must rejoin);
- ``pause``: SIGSTOP for a time shorter or longer than the gossip suspicion timeout, then
  SIGCONT (a slow node, as Lifeguard means);
- ``partition``: isolate one node (random or the leader) or split the cluster in two, through
  the nodes' test-only ``block_peers`` hook (Raft and gossip transports both drop traffic);
- ``overlap``: one node isolated while another is paused, so for a while no majority can
  talk: writes must be refused or left unknown, never acknowledged and then lost;
- ``restart_all``: every node at once, by ``kill -9`` or by SIGTERM;
- ``wipe``: disk loss: ``kill -9`` a node (random or the leader, the bootstrap node included),
  delete its data dir, start it again with the same config after a random downtime. It must
  rejoin as a new member and catch up (never found a second cluster); the fault lasts until
  it has, as an operator replaces one disk at a time. A wipe waits for every node to be a
  caught-up voter first (else it is skipped, with a note): losing the disk of a voter while
  the configuration has shrunk (dead members removed during partitions) can lose a majority
  of the voters' disks, which no Raft cluster survives.

Each fault is healed before the next begins, then the cluster gets a quiet moment; the
faults still overlap with elections, rescheduling and membership changes they set off.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass

from orion.nemesis.history import History
from orion.testing.localcluster import LocalCluster, wait_for

FAULT_KINDS = ("kill", "pause", "partition", "overlap", "restart_all", "wipe")
WEIGHTS = (0.2, 0.2, 0.25, 0.15, 0.1, 0.1)


@dataclass(frozen=True)
class Timing:
    """Bounds of the random durations, in seconds, from the cluster's own settings."""

    suspicion_timeout: float = 2.0  # gossip: suspicion_mult * probe_interval for small clusters
    remove_dead_after: float = 10.0  # Raft: a dead member leaves the configuration after this
    quiet: tuple[float, float] = (1.0, 4.0)
    partition: tuple[float, float] = (2.0, 12.0)
    catch_up: float = 180.0  # a wiped node not caught up by then is a liveness finding


class Nemesis:
    def __init__(
        self,
        cluster: LocalCluster,
        history: History,
        rng: random.Random,
        timing: Timing,
        kinds: tuple[str, ...] = FAULT_KINDS,
    ) -> None:
        unknown = sorted(set(kinds) - set(FAULT_KINDS))
        if unknown or not kinds:
            raise ValueError(f"fault kinds: expected some of {', '.join(FAULT_KINDS)}, got {list(kinds)}")
        self.cluster = cluster
        self.history = history
        self.rng = rng
        self.timing = timing
        self.kinds = tuple(k for k in FAULT_KINDS if k in kinds)
        self.weights = tuple(w for k, w in zip(FAULT_KINDS, WEIGHTS, strict=True) if k in kinds)
        self.injected: Counter[str] = Counter()
        self.recovery_failures: list[str] = []
        self.crashes: list[str] = []
        self.fault_errors: list[str] = []
        self.not_caught_up: list[str] = []
        self.skipped: list[str] = []

    # ------------------------------------------------------------------ schedule

    def run(self, duration: float, stop: threading.Event) -> None:
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline and not stop.is_set():
            kind = self.rng.choices(self.kinds, self.weights)[0]
            try:
                getattr(self, kind)()
            except Exception as exc:  # e.g. a node that died on its own cannot take block_peers
                self.fault_errors.append(f"{time.time():.3f} {kind} could not be injected or healed: {exc}")
                self._best_effort_heal()
            self.await_leader()
            stop.wait(self.rng.uniform(*self.timing.quiet))

    def await_leader(self, timeout: float = 60.0) -> None:
        """Between faults: every node running and a leader again. A node that exited without
        being killed, or a cluster that cannot elect a leader, is a finding."""
        self.restart_crashed()
        try:
            wait_for(self.cluster.leader_index, timeout, interval=0.2, what="a leader after a fault")
        except TimeoutError as exc:
            self.recovery_failures.append(f"{time.time():.3f} {exc}")
        self.restart_crashed()  # also a node that died while starting up

    def restart_crashed(self) -> None:
        for node in self.cluster.nodes:
            if not node.running:
                code = node.process.returncode if node.process else None
                self.crashes.append(f"{time.time():.3f} node {node.index} exited on its own (code {code})")
                self.cluster.start_node(node.index)

    def _target(self) -> tuple[int, str]:
        if self.rng.random() < 0.5:
            leader = self.cluster.leader_index()
            if leader is not None:
                return leader, "leader"
        return self.rng.randint(1, self.cluster.size), "random"

    # ------------------------------------------------------------------ faults

    def kill(self) -> None:
        index, how = self._target()
        # Mostly short outages; sometimes longer than remove_dead_after, so the node is taken
        # out of the Raft configuration and has to come back as a new member.
        if self.rng.random() < 0.25:
            downtime = self.rng.uniform(self.timing.remove_dead_after + 1, self.timing.remove_dead_after + 6)
        else:
            downtime = self.rng.uniform(0.5, 6.0)
        fault = self.history.begin_fault("kill", f"kill -9 node {index} ({how}), down {downtime:.1f}s")
        self.injected["kill"] += 1
        self.cluster.kill(index)
        time.sleep(downtime)
        self.cluster.start_node(index)
        fault.end = time.time()

    def pause(self) -> None:
        index, how = self._target()
        long = self.rng.random() < 0.5
        suspicion = self.timing.suspicion_timeout
        seconds = (
            self.rng.uniform(suspicion * 1.5, suspicion * 5)
            if long
            else self.rng.uniform(0.2, suspicion * 0.7)
        )
        kind = "pause_long" if long else "pause_short"
        fault = self.history.begin_fault(kind, f"SIGSTOP node {index} ({how}) for {seconds:.1f}s")
        self.injected[kind] += 1
        self.cluster.pause(index)
        try:
            time.sleep(seconds)
        finally:
            self.cluster.resume(index)
        fault.end = time.time()

    def partition(self) -> None:
        size = self.cluster.size
        if size >= 5 and self.rng.random() < 0.5:
            nodes = list(range(1, size + 1))
            self.rng.shuffle(nodes)
            cut = self.rng.randint(1, size // 2)
            side_a, side_b = set(nodes[:cut]), set(nodes[cut:])
            detail = f"split {sorted(side_a)} | {sorted(side_b)}"
            kind = "partition_split"
        else:
            index, how = self._target()
            side_a, side_b = {index}, set(range(1, size + 1)) - {index}
            detail = f"isolate node {index} ({how})"
            kind = "partition_isolate"
        seconds = self.rng.uniform(*self.timing.partition)
        fault = self.history.begin_fault(kind, f"{detail} for {seconds:.1f}s")
        self.injected[kind] += 1
        try:
            self.block(side_a, side_b)
            time.sleep(seconds)
        finally:
            self.heal_partitions()
        fault.end = time.time()

    def overlap(self) -> None:
        isolated, paused = self.rng.sample(range(1, self.cluster.size + 1), 2)
        seconds = self.rng.uniform(3.0, 10.0)
        pause_for = self.rng.uniform(1.0, seconds)
        others = set(range(1, self.cluster.size + 1)) - {isolated}
        fault = self.history.begin_fault(
            "overlap",
            f"isolate node {isolated} for {seconds:.1f}s, SIGSTOP node {paused} for {pause_for:.1f}s of it",
        )
        self.injected["overlap"] += 1
        try:
            self.block({isolated}, others)
            self.cluster.pause(paused)
            try:
                time.sleep(pause_for)
            finally:
                self.cluster.resume(paused)
            time.sleep(seconds - pause_for)
        finally:
            self.heal_partitions()
        fault.end = time.time()

    def restart_all(self) -> None:
        graceful = self.rng.random() < 0.25
        kind = "restart_all_graceful" if graceful else "restart_all_kill"
        fault = self.history.begin_fault(kind, "SIGTERM every node" if graceful else "kill -9 every node")
        self.injected[kind] += 1
        for node in self.cluster.nodes:
            if graceful:
                self.cluster.stop_node(node.index)
            else:
                self.cluster.kill(node.index)
        time.sleep(self.rng.uniform(0.2, 3.0))
        for node in self.cluster.nodes:
            self.cluster.start_node(node.index)
        fault.end = time.time()

    def wipe(self) -> None:
        index, how = self._target()
        if self.rng.random() < 0.25:  # long enough to be removed as dead first, then rejoin
            downtime = self.rng.uniform(self.timing.remove_dead_after + 1, self.timing.remove_dead_after + 6)
        else:
            downtime = self.rng.uniform(0.5, 6.0)
        node = self.cluster.node(index)
        every_node = [n.index for n in self.cluster.nodes]
        settled = self._wait_caught_up(every_node, "every node to be a caught-up voter before a wipe")
        if settled:
            self.skipped.append(f"{time.time():.3f} wipe of node {index} skipped: {settled}")
            return
        fault = self.history.begin_fault(
            "wipe", f"kill -9 node {index} ({how}), delete its data dir, restart after {downtime:.1f}s"
        )
        self.injected["wipe"] += 1
        self.cluster.wipe(index, restart=False)
        time.sleep(downtime)
        self.cluster.start_node(index)
        stuck = self._wait_caught_up([index], f"wiped {node.node_id} to catch up")
        if stuck:
            self.not_caught_up.append(f"{time.time():.3f} {stuck}")
        fault.end = time.time()

    def _wait_caught_up(self, indexes: list[int], what: str) -> str:
        """Until every node of ``indexes`` is a voter at the leader's commit index: "" then,
        else (after ``timing.catch_up``) what was still missing."""
        gap = ["no answer"]

        def caught_up() -> bool:
            for index in indexes:
                gap[0] = f"no answer about node {index}"
                gap[0] = self.cluster.catch_up_gap(index, [])
                if gap[0]:
                    return False
            return True

        try:
            wait_for(caught_up, self.timing.catch_up, interval=0.5, what=what)
            return ""
        except TimeoutError as exc:
            return f"{exc}: {gap[0]}"

    # ------------------------------------------------------------------ partitions

    def _addresses(self, indexes: set[int]) -> list[str]:
        out = []
        for index in sorted(indexes):
            node = self.cluster.node(index)
            out += [node.raft_address, node.gossip_address]
        return out

    def block(self, side_a: set[int], side_b: set[int]) -> None:
        for here, there in ((side_a, side_b), (side_b, side_a)):
            for index in here:
                self._set_blocked(index, self._addresses(there))

    def heal_partitions(self) -> None:
        for node in self.cluster.nodes:
            if node.running:
                self._set_blocked(node.index, [])

    def _set_blocked(self, index: int, addresses: list[str], timeout: float = 30.0) -> None:
        def attempt() -> bool:
            with self.cluster.client(index, timeout=2.0, retries=1) as client:
                client.block_peers(addresses)
            return True

        wait_for(attempt, timeout, interval=0.2, what=f"block_peers on node {index}")

    # ------------------------------------------------------------------ heal

    def _best_effort_heal(self) -> None:
        for node in self.cluster.nodes:
            self.cluster.resume(node.index)
        try:
            self.heal_partitions()
        except TimeoutError as exc:
            self.fault_errors.append(f"{time.time():.3f} heal failed: {exc}")

    def heal_all(self) -> None:
        """After the run: every node running, none paused, no partition left."""
        for node in self.cluster.nodes:
            if node.running:
                self.cluster.resume(node.index)
            else:
                self.cluster.start_node(node.index)
        self.heal_partitions()
