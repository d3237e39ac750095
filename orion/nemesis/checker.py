"""The checker: after the faults heal and the cluster settles, prove nothing was lost.

1. every acknowledged submit exists, exactly once (one task with that id, no other with its name);
2. no task that a client saw refused (no_quorum, invalid, not_found) exists;
3. every task that is not stopped is Running on exactly one node, with exactly one running
   container for it (by Docker label) and that container on the task's node; a stopped
   task has no running container;
4. the committed Raft log prefix is identical on all nodes (read from their DuckDB files
   after the cluster stopped);
5. reads never go back in time: once a task was seen by a read, or its submit was
   acknowledged, every read that started later sees it;
6. services (orion/nemesis/service_load.py): each service whose create was acknowledged exists
   and converged: exactly ``replicas`` tasks active, all Running at the service's current
   template version, not draining, each with one running container on its node, and no other
   container of the service runs; the replica count and every task's template revision were
   asked for by an operation the cluster did not refuse, and one template version always
   means one revision.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from orion.model import Desired, Task, TaskState
from orion.nemesis.history import SERVICE_KINDS, History, Op, OpKind, Outcome
from orion.raft.types import StoredState
from orion.services.spec import Service


@dataclass(frozen=True)
class Violation:
    check: str
    message: str
    at: float = 0.0  # when it happened (for the history around it), 0 if not known
    task_id: str = ""


def check_submits(history: History, final: list[Task]) -> list[Violation]:
    violations = []
    ids = Counter(t.id for t in final)
    names = Counter(t.name for t in final)
    for op in history.ops:
        if op.kind is not OpKind.SUBMIT or op.outcome is not Outcome.OK:
            continue
        if ids[op.task_id] != 1:
            violations.append(
                Violation(
                    "acknowledged_submit",
                    f"acknowledged submit of {op.task_id} found {ids[op.task_id]} times in the final state",
                    op.end,
                    op.task_id,
                )
            )
        elif names[op.task_id] != 1:  # the harness names each task after its id
            violations.append(
                Violation(
                    "acknowledged_submit",
                    f"{names[op.task_id]} tasks carry the name {op.task_id}",
                    op.end,
                    op.task_id,
                )
            )
    return violations


def check_refused(history: History, final: list[Task]) -> list[Violation]:
    """A refused submit never exists; a stop refused as not_found names a task that must not
    appear later unless some submit of that id was acknowledged or may have been applied."""
    present = {t.id: t for t in final}
    maybe_submitted = {
        op.task_id for op in history.ops if op.kind is OpKind.SUBMIT and op.outcome is not Outcome.ERROR
    }
    violations = []
    for op in history.ops:
        if op.outcome is not Outcome.ERROR or op.task_id not in present:
            continue
        if op.kind in (OpKind.SUBMIT, OpKind.SUBMIT_INVALID) and op.task_id not in maybe_submitted:
            violations.append(
                Violation(
                    "refused_submit",
                    f"submit of {op.task_id} was refused ({op.code}) but the task exists",
                    op.end,
                    op.task_id,
                )
            )
        elif op.kind is OpKind.STOP and op.task_id not in maybe_submitted:
            violations.append(
                Violation(
                    "refused_stop",
                    f"{op.task_id} was never submitted yet exists (stop said {op.code})",
                    op.end,
                    op.task_id,
                )
            )
    return violations


def check_running(final: list[Task], running: dict[str, list[str]]) -> list[Violation]:
    """``running``: task id -> node ids of the running containers labelled with it."""
    violations = []
    for task in final:
        holders = running.get(task.id, [])
        if task.state == TaskState.STOPPED:
            if holders:
                violations.append(
                    Violation(
                        "stopped_has_container", f"stopped task {task.id} runs on {holders}", 0.0, task.id
                    )
                )
            continue
        if task.state != TaskState.RUNNING:
            violations.append(
                Violation(
                    "not_running",
                    f"task {task.id} is {task.state} on {task.node_id or 'no node'}: {task.reason}",
                    0.0,
                    task.id,
                )
            )
        elif holders != [task.node_id]:
            violations.append(
                Violation(
                    "container_count",
                    f"task {task.id} is Running on {task.node_id} but its containers run on {holders}",
                    0.0,
                    task.id,
                )
            )
    known = {t.id for t in final}
    for task_id, holders in running.items():
        if task_id not in known:
            violations.append(
                Violation(
                    "orphan_container", f"containers of unknown task {task_id} run on {holders}", 0.0, task_id
                )
            )
    return violations


def check_reads(history: History) -> list[Violation]:
    """A task first seen (or acknowledged) at time t is in every read that started after t."""
    first_seen: dict[str, float] = {}
    for op in history.ops:
        if op.outcome is not Outcome.OK:
            continue
        if op.kind is OpKind.SUBMIT:
            first_seen[op.task_id] = min(first_seen.get(op.task_id, op.end), op.end)
        elif op.kind is OpKind.READ:
            for task_id in op.seen:
                first_seen[task_id] = min(first_seen.get(task_id, op.end), op.end)
    order = sorted(first_seen.items(), key=lambda item: item[1])
    times = [at for _, at in order]
    violations = []
    for op in history.ops:
        if op.kind is not OpKind.READ or op.outcome is not Outcome.OK:
            continue
        seen = set(op.seen)
        known_before = order[: bisect.bisect_left(times, op.start)]
        missing = [task_id for task_id, _ in known_before if task_id not in seen]
        if missing:
            violations.append(
                Violation(
                    "stale_read",
                    f"read by client {op.client} at {op.start:.3f} misses {len(missing)} task(s) known "
                    f"before it started, e.g. {missing[:5]}",
                    op.start,
                    missing[0],
                )
            )
    return violations


def check_services(
    history: History,
    services: list[Service],
    tasks: dict[str, list[Task]],
    running: dict[str, list[str]],
    rev_env: str,
) -> list[Violation]:
    """``tasks``: service name -> its tasks in any state; ``running``: task id -> node ids of its
    running containers; ``rev_env``: the env key holding a template's revision."""
    ops = [op for op in history.ops if op.kind in SERVICE_KINDS]
    by_name = {service.name: service for service in services}
    violations: list[Violation] = []
    for name in sorted({op.service for op in ops}):
        mine = [op for op in ops if op.service == name]
        created = any(op.kind is OpKind.SERVICE_CREATE and op.outcome is Outcome.OK for op in mine)
        service = by_name.get(name)
        if service is None:
            if created:
                violations.append(
                    Violation("service_lost", f"acknowledged service {name} does not exist", 0, name)
                )
            continue
        asked_revs = {op.rev for op in mine if op.rev and op.outcome is not Outcome.ERROR}
        violations += _service_revisions(name, service, tasks.get(name, []), asked_revs, rev_env)
        violations += _service_replicas(name, service, mine)
        violations += _service_converged(name, service, tasks.get(name, []), running)
    return violations


def _service_revisions(
    name: str, service: Service, tasks: list[Task], asked: set[str], rev_env: str
) -> list[Violation]:
    violations = []
    spec_rev = service.spec.template.env.get(rev_env, "")
    if spec_rev not in asked:
        violations.append(
            Violation(
                "service_version", f"service {name} runs revision {spec_rev!r}, never asked for", 0, name
            )
        )
    rev_of_version: dict[int, str] = {}
    for task in tasks:
        rev = task.env.get(rev_env, "")
        if rev not in asked:
            violations.append(
                Violation(
                    "service_version",
                    f"task {task.id} ({task.name}, version {task.version}) of {name} has revision {rev!r}, "
                    f"never asked for (asked: {sorted(asked)})",
                    0,
                    name,
                )
            )
        seen = rev_of_version.setdefault(task.version, rev)
        if seen != rev:
            violations.append(
                Violation(
                    "service_version",
                    f"version {task.version} of {name} means revision {seen!r} and {rev!r} (task {task.id})",
                    0,
                    name,
                )
            )
    return violations


def _service_replicas(name: str, service: Service, ops: list[Op]) -> list[Violation]:
    """The count is the last acknowledged one, or one an unanswered operation may have set."""
    counting = [op for op in ops if op.replicas >= 0 and op.outcome is not Outcome.ERROR]
    acknowledged = [op for op in counting if op.outcome is Outcome.OK]
    allowed = {op.replicas for op in counting if op.outcome is Outcome.UNKNOWN}
    if acknowledged:
        last = max(acknowledged, key=lambda op: op.end)
        allowed.add(last.replicas)
        allowed |= {op.replicas for op in counting if op.outcome is Outcome.OK and op.end > last.start}
    if service.spec.replicas in allowed:
        return []
    return [
        Violation(
            "service_replicas",
            f"service {name} wants {service.spec.replicas} replicas; the history allows {sorted(allowed)}",
            0,
            name,
        )
    ]


def _service_converged(
    name: str, service: Service, tasks: list[Task], running: dict[str, list[str]]
) -> list[Violation]:
    active = [
        t for t in tasks if t.desired == Desired.RUN and t.state not in (TaskState.FAILED, TaskState.STOPPED)
    ]
    problems = []
    if len(active) != service.spec.replicas:
        problems.append(f"{len(active)} active tasks for {service.spec.replicas} replicas")
    for task in active:
        if task.state != TaskState.RUNNING or task.version != service.template_version or task.drain_at:
            problems.append(
                f"{task.id} ({task.name}) is {task.state} at version {task.version} "
                f"(template {service.template_version}){' draining' if task.drain_at else ''}"
            )
        elif running.get(task.id, []) != [task.node_id]:
            problems.append(
                f"{task.id} is Running on {task.node_id} but its containers run on {running.get(task.id)}"
            )
    active_ids = {t.id for t in active}
    extras = sorted(t.id for t in tasks if t.id not in active_ids and running.get(t.id))
    if extras:
        problems.append(f"containers of finished tasks still run: {extras}")
    return [Violation("service_converged", f"service {name}: {p}", 0, name) for p in problems]


def committed_entries(state: StoredState) -> dict[int, tuple[int, int, bytes]]:
    """index -> (term, kind, data) for the entries this node knows to be committed."""
    commit = state.hard_state.commit
    return {e.index: (e.term, e.kind, e.data) for e in state.entries if e.index <= commit}


def check_logs(states: dict[str, StoredState]) -> list[Violation]:
    """Where two nodes both hold a committed entry, it is the same entry; a snapshot's
    (index, term) agrees with the entry another node holds at that index."""
    violations = []
    committed = {node: committed_entries(state) for node, state in states.items()}
    nodes = sorted(states)
    for i, a in enumerate(nodes):
        for b in nodes[i + 1 :]:
            common = committed[a].keys() & committed[b].keys()
            differing = sorted(index for index in common if committed[a][index] != committed[b][index])
            if differing:
                violations.append(
                    Violation(
                        "log_divergence",
                        f"committed entries differ between {a} and {b} at {len(differing)} indexes, "
                        f"first {differing[0]}: {_short(committed[a][differing[0]])} vs "
                        f"{_short(committed[b][differing[0]])}",
                    )
                )
            for holder, other in ((a, b), (b, a)):
                snapshot = states[holder].snapshot
                if snapshot is None:
                    continue
                entry = committed[other].get(snapshot.meta.index)
                if entry is not None and entry[0] != snapshot.meta.term:
                    violations.append(
                        Violation(
                            "log_divergence",
                            f"{holder}'s snapshot at {snapshot.meta.index} has term {snapshot.meta.term}, "
                            f"{other}'s committed entry there has term {entry[0]}",
                        )
                    )
    return violations


def _short(entry: tuple[int, int, bytes]) -> str:
    term, kind, data = entry
    return f"(term {term}, kind {kind}, {len(data)} bytes)"


def summarize(violations: Iterable[Violation]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for violation in violations:
        counts[violation.check] += 1
    return dict(counts)
