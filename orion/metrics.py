"""A node's Prometheus metrics (``GET /metrics``), on a registry of its own.

Each node has its own ``Registry`` (several nodes may share a process in tests), written in the
Prometheus text format by orion/metrics_text.py. Two kinds of figures:

- counted as things happen, by the part that sees them: proposals (latency), snapshots taken
  (size, duration) and installed, leader changes, Docker errors, API requests (code, latency),
  and, from the event stream, placements and task transitions;
- read at scrape time from their owners (``add_source``): the Raft status and the FSM's tasks
  by state and pending reasons (one stale read on the Raft actor), gossip members by status
  and the local health score (the gossip actor).
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, Protocol

from orion.metrics_text import Counter, Gauge, GaugeFamily, Histogram, Registry

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SNAPSHOT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
MAX_REASONS = 20  # pending reasons shown apart; the rest are summed as "other"
MAX_REASON_LEN = 100


class AppliedEvent(Protocol):
    """What the metrics read of an applied change (orion/fsm/events.py ``Event``): named here
    so this module, which every layer uses, imports none of them."""

    @property
    def type(self) -> str: ...

    @property
    def action(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def previous(self) -> str: ...

    @property
    def changed(self) -> Collection[str]: ...


class NodeMetrics:
    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.registry = Registry()
        r = self.registry
        self.leader_changes = Counter(
            "orion_raft_leader_changes", "New leaders this node has seen", registry=r
        )
        self.proposal_seconds = Histogram(
            "orion_raft_proposal_seconds",
            "From a proposal on this node to its outcome (applied, refused or timed out)",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.snapshot_bytes = Gauge(
            "orion_raft_snapshot_bytes", "Size of the last snapshot taken or installed", ["kind"], registry=r
        )
        self.snapshot_seconds = Histogram(
            "orion_raft_snapshot_seconds",
            "Taking a snapshot: encoding and writing it",
            buckets=SNAPSHOT_BUCKETS,
            registry=r,
        )
        self.snapshots_installed = Counter(
            "orion_raft_snapshots_installed", "Snapshots installed from a leader", registry=r
        )
        self.placements = Counter(
            "orion_scheduler_placements", "Tasks placed on a node (committed)", registry=r
        )
        self.transitions = Counter(
            "orion_task_transitions",
            "Committed task state changes, by the state entered",
            ["state"],
            registry=r,
        )
        self.docker_errors = Counter(
            "orion_docker_errors", "Docker calls of this node that failed, by kind", ["kind"], registry=r
        )
        self.api_requests = Counter(
            "orion_api_requests",
            "Client requests answered, by request and code",
            ["request", "code"],
            registry=r,
        )
        self.api_seconds = Histogram(
            "orion_api_request_seconds",
            "Client request latency, by request",
            ["request"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._leader = ""

    # ------------------------------------------------------------------ counted as they happen

    def leader_seen(self, leader_id: str) -> None:
        if leader_id and leader_id != self._leader:
            self.leader_changes.inc()
        self._leader = leader_id or self._leader

    def timed(self, callback: Callable[[Any], None] | None) -> Callable[[Any], None]:
        """``callback`` of a proposal, wrapped to observe its latency by outcome."""
        started = time.monotonic()
        histogram = self.proposal_seconds

        def observed(outcome: Any) -> None:
            histogram.labels("ok" if getattr(outcome, "ok", False) else "error").observe(
                time.monotonic() - started
            )
            if callback is not None:
                callback(outcome)

        return observed

    def snapshot_taken(self, size: int, seconds: float) -> None:
        self.snapshot_bytes.labels("taken").set(size)
        self.snapshot_seconds.observe(seconds)

    def snapshot_installed(self, size: int) -> None:
        self.snapshot_bytes.labels("installed").set(size)
        self.snapshots_installed.inc()

    def docker_error(self, kind: str) -> None:
        self.docker_errors.labels(kind).inc()

    def events(self, events: Sequence[AppliedEvent]) -> None:
        for event in events:
            if event.type != "task" or ("state" not in event.changed and event.action != "created"):
                continue
            self.transitions.labels(event.state).inc()
            if event.state == "Scheduled" and event.previous in ("Pending", ""):
                self.placements.inc()

    def api_answered(self, request: str, code: str, seconds: float) -> None:
        self.api_requests.labels(request, code or "ok").inc()
        self.api_seconds.labels(request).observe(seconds)

    # ------------------------------------------------------------------ read at scrape time

    def add_source(self, collect: Callable[[], Iterable[GaugeFamily]]) -> None:
        self.registry.add_source(collect)

    def text(self) -> bytes:
        return self.registry.text()


def raft_metrics(status: dict[str, Any]) -> list[GaugeFamily]:
    """Gauges of a ``state_figures`` result (the Raft status and the FSM's tasks)."""
    out: list[GaugeFamily] = []
    for name, key, doc in (
        ("orion_raft_term", "term", "Current Raft term"),
        ("orion_raft_commit_index", "commit_index", "Raft commit index"),
        ("orion_raft_applied_index", "applied_index", "Raft index applied to the state"),
        ("orion_raft_last_index", "last_index", "Last Raft log index"),
    ):
        out.append(GaugeFamily(name, doc, value=status[key]))
    out.append(GaugeFamily("orion_raft_is_leader", "1 while this node leads", value=status["is_leader"]))
    tasks = GaugeFamily("orion_tasks", "Tasks in the state, by state", ["state"])
    for state, count in sorted(status["tasks"].items()):
        tasks.add([state], count)
    out.append(tasks)
    pending = GaugeFamily("orion_pending_tasks", "Pending tasks, by the reason shown", ["reason"])
    for reason, count in status["pending"]:
        pending.add([reason], count)
    out.append(pending)
    return out


def state_figures(raft: Any, fsm: Any) -> dict[str, Any]:
    """Run on the Raft actor's thread (a stale read): the numbers the gauges show."""
    states: Tally[str] = Tally()
    reasons: Tally[str] = Tally()
    for state in fsm.task_states():  # no Task records built (orion/fsm/task_table.py)
        states[state] += 1
    for task in fsm.pending_tasks():
        reasons[(task.reason or "none")[:MAX_REASON_LEN]] += 1
    top = reasons.most_common(MAX_REASONS)
    rest = sum(reasons.values()) - sum(count for _, count in top)
    if rest:
        top.append(("other", rest))
    return {
        "term": raft.term,
        "commit_index": raft.commit_index,
        "applied_index": raft.applied_index,
        "last_index": raft.last_index,
        "is_leader": 1 if raft.role == "leader" else 0,
        "tasks": dict(states),
        "pending": top,
    }


def gossip_metrics(statuses: list[str], local_health: int) -> list[GaugeFamily]:
    members = GaugeFamily("orion_gossip_members", "Members as gossip sees them, by status", ["status"])
    for status, count in sorted(Tally(statuses).items()):
        members.add([status], count)
    health = GaugeFamily(
        "orion_gossip_local_health", "Lifeguard local health score (0 is healthy)", value=local_health
    )
    return [members, health]
