"""One nemesis run: a seeded cluster under load and faults, healed, settled and checked.

    result = run_seed(seed=7, duration=60.0, base_dir=Path("/tmp/nemesis-7"))
    print(result.report())

The seed picks every fault, target and duration, and each client's choices; timing on a
shared machine still varies, so a replay repeats the schedule, not the exact interleaving.

``big_state=True`` adds a ballast writer (orion/nemesis/ballast.py): entries of ~500 KB until
the state passes BIG_STATE_MB, reached by mid-run, so the later faults (wipes above all) meet
a state whose snapshot is tens of megabytes.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from orion.model import Task
from orion.nemesis import checker
from orion.nemesis.ballast import ENTRY_BYTES as BALLAST_ENTRY_BYTES
from orion.nemesis.ballast import BallastWriter
from orion.nemesis.checker import Violation
from orion.nemesis.faults import FAULT_KINDS, Nemesis, Timing
from orion.nemesis.history import History, OpKind
from orion.nemesis.load import ClientWorker
from orion.nemesis.service_load import REV_ENV, ServiceWorker, service_names
from orion.raft.duckdb_store import DuckDBStore
from orion.raft.types import StoredState
from orion.testing.localcluster import LocalCluster, wait_for

SETTINGS = {
    "testing": {"fault_injection": True},
    "gossip": {"probe_interval": "500ms", "probe_timeout": "250ms"},
    "raft": {"remove_dead_after": "10s"},
}
TIMING = Timing(suspicion_timeout=2.0, remove_dead_after=10.0)
# Past 50 MB, below the 64 MiB a task list reply may hold (the checker reads the whole list).
BIG_STATE_MB = 56.0


@dataclass
class RunResult:
    seed: int
    nodes: int
    duration: float
    faults: Counter[str]
    ops: Counter[tuple[str, str]]  # (kind, outcome) -> count
    violations: list[Violation]
    history: History
    notes: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    snapshot_threshold: int = 0
    ballast_mb: float = 0.0  # big-state mode: MiB of ballast env acknowledged

    @property
    def ok(self) -> bool:
        return not self.violations

    def report(self, context: int = 30) -> str:
        lines = [
            f"nemesis seed {self.seed}: {self.nodes} nodes, {self.duration:.0f}s of faults, "
            f"{self.elapsed:.0f}s in all, snapshot every {self.snapshot_threshold} entries"
            + (f", big state: {self.ballast_mb:.0f} MiB of ballast" if self.ballast_mb else ""),
            "  faults: " + ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())),
            "  ops: " + ", ".join(f"{k}/{o} {v}" for (k, o), v in sorted(self.ops.items())),
            f"  violations: {len(self.violations)}",
        ]
        lines += [f"  note: {note}" for note in self.notes]
        for violation in self.violations[:20]:
            lines.append(f"VIOLATION (seed {self.seed}) {violation.check}: {violation.message}")
            if violation.at or violation.task_id:
                around = self.history.around(violation.at, task_id=violation.task_id, limit=context)
                lines += [f"    {line}" for line in around]
        if len(self.violations) > 20:
            lines.append(f"... and {len(self.violations) - 20} more violations")
        return "\n".join(lines)


def run_seed(
    seed: int,
    duration: float,
    base_dir: Path,
    *,
    nodes: int = 3,
    clients: int = 3,
    settle_timeout: float = 120.0,
    log: bool = True,
    big_state: bool = False,
    faults: tuple[str, ...] = FAULT_KINDS,
    services: int = 2,
    hosts: bool = False,
) -> RunResult:
    rng = random.Random(seed)
    history = History()
    ballast_history = History()
    run_prefix = f"s{seed}"
    ballast_prefix = f"b{seed}"
    started = time.monotonic()
    # Small snapshot thresholds make compaction and InstallSnapshot (a node back from a long
    # outage, a wiped one) happen within a short run; the default keeps the plain log path
    # covered too. Half a threshold of entries stays behind each snapshot, so a node briefly
    # behind catches up from the log while one long gone needs the snapshot.
    snapshot_threshold = rng.choice((16, 64, 256) if big_state else (64, 256, 8192))
    # The small thresholds snapshot by entry count alone (compaction often, whatever the
    # state's size); the default one with the default log ratio, as a node runs.
    log_ratio = 1.0 if snapshot_threshold == 8192 else 0.0
    raft = {**SETTINGS["raft"], "snapshot_threshold": snapshot_threshold, "snapshot_log_ratio": log_ratio}
    raft["trailing_entries"] = snapshot_threshold // 2
    settings = {**SETTINGS, "raft": raft}
    nemesis_rng = random.Random(rng.getrandbits(64))
    if hosts:  # a bed of real hosts in miniature: faults from outside Orion (orion/nemesis/hosts.py)
        from orion.nemesis.hosts import BedNemesis, bed_cluster

        cluster = bed_cluster(nodes, Path(base_dir), settings)
        nemesis = BedNemesis(cluster, history, nemesis_rng, TIMING, kinds=faults)
    else:
        cluster = LocalCluster(nodes, Path(base_dir), settings=settings)
        nemesis = Nemesis(cluster, history, nemesis_rng, TIMING, kinds=faults)
    ballast: BallastWriter | None = None
    violations: list[Violation] = []
    notes: list[str] = []

    def say(text: str) -> None:
        if log:
            print(f"[seed {seed} +{time.monotonic() - started:5.0f}s] {text}", flush=True)

    try:
        cluster.start(timeout=90)
        say(
            f"{nodes} nodes ready ({cluster.prefix}, snapshot every {snapshot_threshold} entries); "
            f"load and faults for {duration:.0f}s"
        )
        stop = threading.Event()
        workers: list[threading.Thread] = [
            ClientWorker(
                i,
                cluster.endpoints,
                history,
                random.Random(rng.getrandbits(64)),
                run_prefix,
                stop,
                # Short timeouts make the client resend (Lazy Pirate) while the first attempt
                # may still commit: the retried-write paths get exercised too. A read of a
                # big state's task list takes about a second by itself.
                timeout=rng.choice((1.0, 2.0, 3.0)) * (4 if big_state else 1),
                token=cluster.token,
            )
            for i in range(1, clients + 1)
        ]
        if services:
            workers.append(
                ServiceWorker(
                    cluster.endpoints,
                    history,
                    random.Random(rng.getrandbits(64)),
                    run_prefix,
                    stop,
                    services=services,
                    timeout=2.0 * (4 if big_state else 1),
                    token=cluster.token,
                )
            )
        if big_state:
            ballast = BallastWriter(
                cluster.endpoints,
                ballast_history,
                ballast_prefix,
                stop,
                target_mb=BIG_STATE_MB,
                within=duration / 2,
                token=cluster.token,
            )
            workers.append(ballast)
        for worker in workers:
            worker.start()
        try:
            nemesis.run(duration, stop)
        finally:
            stop.set()
            for worker in workers:
                worker.join(60)
            try:
                nemesis.heal_all()
            except TimeoutError as exc:
                violations.append(Violation("liveness", f"could not heal the cluster: {exc}"))
        say(f"faults healed: {dict(nemesis.injected)}; waiting for the cluster to settle")
        notes += [f"node crash: {c}" for c in nemesis.crashes]
        notes += [f"slow recovery: {r}" for r in nemesis.recovery_failures]
        notes += [f"fault error: {e}" for e in nemesis.fault_errors]
        notes += [f"fault skipped: {e}" for e in nemesis.skipped]
        violations += [Violation("crash", c) for c in nemesis.crashes]
        # A node that cannot be reached to cut or heal a link for 30 s is unresponsive.
        violations += [Violation("liveness", e) for e in nemesis.fault_errors]
        violations += [Violation("liveness", f"wiped node not caught up: {e}") for e in nemesis.not_caught_up]
        try:
            cluster.wait_ready(timeout=settle_timeout)
        except TimeoutError as exc:
            violations.append(Violation("liveness", f"the cluster did not re-form after healing: {exc}"))
        final, running, settle_violations = settle(cluster, run_prefix, settle_timeout)
        violations += settle_violations
        violations += checker.check_submits(history, final)
        violations += checker.check_refused(history, final)
        violations += checker.check_reads(history)
        if services:
            violations += settle_services(
                cluster, history, service_names(run_prefix, services), settle_timeout
            )
        if ballast is not None:
            outcomes = Counter(op.outcome.value for op in ballast_history.ops)
            notes.append(
                f"ballast: {ballast.acked_bytes / 2**20:.1f} MiB acknowledged in entries of "
                f"{BALLAST_ENTRY_BYTES} bytes; submits "
                + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
            )
            try:
                ballast_final = read_prefixed(cluster, ballast_prefix, settle_timeout)
                violations += checker.check_submits(ballast_history, ballast_final)
                violations += checker.check_refused(ballast_history, ballast_final)
            except TimeoutError as exc:
                violations.append(Violation("liveness", f"cannot read the ballast tasks: {exc}"))
        states = stop_and_load(cluster)
        violations += checker.check_logs(states)
        say(f"checked: {len(final)} tasks, {sum(len(v) for v in running.values())} running containers")
    finally:
        cluster.close()
        with contextlib.suppress(OSError):
            history.dump(Path(base_dir) / "history.jsonl")
    ops = Counter((op.kind.value, op.outcome.value) for op in history.ops)
    return RunResult(
        seed=seed,
        nodes=nodes,
        duration=duration,
        faults=Counter(nemesis.injected),
        ops=ops,
        violations=violations,
        history=history,
        notes=notes,
        elapsed=time.monotonic() - started,
        snapshot_threshold=snapshot_threshold,
        ballast_mb=ballast.acked_bytes / 2**20 if ballast is not None else 0.0,
    )


def running_containers(cluster: LocalCluster) -> dict[str, list[str]]:
    """task id -> node ids of running containers labelled by this cluster's nodes."""
    own_engines = getattr(cluster, "running_containers", None)
    if own_engines is not None:  # a bed: every host has its own engine
        return own_engines()
    import docker

    engine = docker.from_env()
    try:
        out: dict[str, list[str]] = {}
        for node in cluster.nodes:
            for container in engine.containers.list(filters={"label": f"orion.node.id={node.node_id}"}):
                task_id = container.labels.get("orion.task.id", "")
                out.setdefault(task_id, []).append(node.node_id)
        return {task_id: sorted(holders) for task_id, holders in out.items()}
    finally:
        engine.close()


def settle(
    cluster: LocalCluster, run_prefix: str, timeout: float
) -> tuple[list[Task], dict[str, list[str]], list[Violation]]:
    """Poll until every task is where it should be, or the deadline; the last look is judged."""
    deadline = time.monotonic() + timeout
    final: list[Task] = []
    running: dict[str, list[str]] = {}
    problems: list[Violation] = [Violation("liveness", "no linearizable read of the task list succeeded")]
    with cluster.client(timeout=5.0, retries=3) as client:
        while True:
            try:
                final = [t for t in client.tasks() if t.id.startswith(run_prefix)]
                running = {k: v for k, v in running_containers(cluster).items() if k.startswith(run_prefix)}
                problems = checker.check_running(final, running)
            except Exception as exc:  # mid-election: keep trying until the deadline
                problems = [Violation("liveness", f"cannot read the final state: {exc}")]
            if not problems or time.monotonic() >= deadline:
                return final, running, problems
            time.sleep(1.0)


def settle_services(
    cluster: LocalCluster, history: History, names: list[str], timeout: float
) -> list[Violation]:
    """Poll until every service converged (checker.check_services finds nothing), or the
    deadline; the last look is judged."""
    deadline = time.monotonic() + timeout
    with cluster.client(timeout=5.0, retries=3) as client:
        while True:
            try:
                services = [s for s in client.services() if s.name in names]
                tasks = {s.name: client.service_tasks(s.name) for s in services}
                problems = checker.check_services(
                    history, services, tasks, running_containers(cluster), REV_ENV
                )
            except Exception as exc:  # mid-election: keep trying until the deadline
                problems = [Violation("liveness", f"cannot read the services: {exc}")]
            if not problems or time.monotonic() >= deadline:
                return problems
            time.sleep(1.0)


def read_prefixed(cluster: LocalCluster, prefix: str, timeout: float) -> list[Task]:
    """The tasks whose id starts with ``prefix``, from one linearizable read of the task list."""
    with cluster.client(timeout=30.0, retries=3) as client:
        tasks = wait_for(client.tasks, timeout, interval=1.0, what=f"a task list with the {prefix} tasks")
    return [t for t in tasks if t.id.startswith(prefix)]


def stop_and_load(cluster: LocalCluster) -> dict[str, StoredState]:
    """Stop every node (gracefully) and read its Raft log from its DuckDB file."""
    for node in cluster.nodes:
        cluster.stop_node(node.index)
    states = {}
    for node in cluster.nodes:
        store = DuckDBStore(node.data_dir / "raft.duckdb")
        try:
            states[node.node_id] = store.load()
        finally:
            store.close()
    return states


def ops_of_kind(result: RunResult, kind: OpKind) -> int:
    return sum(v for (k, _), v in result.ops.items() if k == kind.value)
