"""The per-node reconciler's decisions: what this node wants (the FSM's tasks for it), what
Docker holds, the leader's contact and the time in; actions out.

The reconciler actor (orion/actors/reconciler_actor.py) gathers the inputs (a read of the FSM
through Raft, a listing of this node's containers), hands them to ``ReconcilePlanner`` and
carries out what comes back: start or stop a container, report a task's state, release held
ports, report a port conflict, list an absent node's containers, run another round, log. The
planner remembers what the decisions need between rounds (what it started and is stopping,
restart backoffs, reports on their way, when the leader went silent) and nothing else.

Its rules (the actor's module doc tells the why of each):
- a task assigned here, to run, Scheduled or Running, gets a running container; one that
  exited follows the task's restart policy, with its backoff; one that vanished from a listing
  taken after it was seen started was removed outside Orion: a restart with that reason;
- a container left from an earlier placement publishing other host ports is replaced;
- a container of a task that ended (Stopped, Failed) is stopped and kept; one of a task no
  longer assigned here is removed; a task still draining (``drain_at``) runs on: the service
  controller stops it;
- a container stops with its task's ``stop_grace`` between SIGTERM and SIGKILL when it has one;
- bounded duplicates: cut off from the leader too long, stop everything and touch nothing
  else; when it speaks again, read through it, then start what is still wanted here;
- ports of tasks that left this node are released once no running container of theirs is
  left here, and those of absent nodes sharing this engine once theirs are gone.

Pure: time comes in as arguments (``now``: monotonic seconds; ``wall``: seconds since the
epoch, for reports and restart times, which the FSM keeps); no Docker, no Raft, no logging.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from orion.cluster.leader_contact import LeaderContact, disconnect_verdict
from orion.fsm.commands import ReportTaskStates, TaskReport
from orion.fsm.results import ReportResults
from orion.model import Desired, Task, TaskState
from orion.worker.restart_policy import RestartPolicy
from orion.worker.types import ContainerInfo

REPORT_RETRY_S = 3.0  # a report not yet visible in the FSM after this long is sent again
# A report the cluster committed is not sent again while this node's replica catches up: a
# lagging replica (a slow node, or hundreds of them) would otherwise turn every round into a
# new log entry per task. Past this backstop it is sent again anyway (harmless: same state).
REPORT_COMMITTED_WAIT_S = 30.0
# A pass's reports travel in one entry each this many (a node's pass after a restart may
# report hundreds of tasks; an item is ~100 bytes against the FSM's 1 MiB command limit).
REPORTS_PER_ENTRY = 500
_RELEASED_KEPT = 10_000  # release times only matter for REPORT_RETRY_S: prune past this many


@dataclass(frozen=True, slots=True)
class Wanted:
    """What the FSM says about this node: its tasks, the tasks whose ports it holds, and the
    ports held by nodes that are not alive and share its Docker engine."""

    tasks: list[Task]
    held_here: list[str]
    held_by_absent: dict[str, list[str]] = field(default_factory=dict)  # node id -> task ids
    contact: LeaderContact | None = None  # this node's contact with the leader, as Raft knows it


# ---------------------------------------------------------------------------------- actions
@dataclass(frozen=True, slots=True)
class StartContainer:
    task: Task


@dataclass(frozen=True, slots=True)
class StopContainer:
    task_id: str
    keep: bool  # stop it and keep it (a task that ended, or one stopped for want of the leader)
    grace: float | None = None  # seconds between SIGTERM and SIGKILL; None: the worker's default


@dataclass(frozen=True, slots=True)
class ReportState:
    task_id: str
    state: TaskState
    reason: str
    restarts: int
    exit_code: int | None
    restart_times: list[float] | None = None

    @property
    def key(self) -> ReportKey:
        return report_key(self.state, self.restarts, self.reason)

    def item(self) -> TaskReport:
        """This report as an item of a ``ReportTaskStates``."""
        return TaskReport(
            self.task_id, self.state, self.reason, self.exit_code, self.restarts, self.restart_times
        )


@dataclass(frozen=True, slots=True)
class ReportBatch:
    """The reports of one pass, carried by one FSM entry (at most REPORTS_PER_ENTRY each)."""

    reports: tuple[ReportState, ...]

    def command(self, node_id: str, at: float) -> ReportTaskStates:
        """The FSM command that carries these reports from ``node_id``, made at wall time ``at``."""
        return ReportTaskStates(node_id=node_id, reports=[report.item() for report in self.reports], at=at)

    def answers(self, ok: bool, value: object) -> list[tuple[ReportState, str]]:
        """Each report with why it was not committed ("" when it was), from the entry's
        outcome: all of them fail with the entry; otherwise each as the FSM applied it."""
        if not ok:
            return [(report, "not committed") for report in self.reports]
        refusals = value.refusals() if isinstance(value, ReportResults) else {}
        return [
            (report, (refusals[position][1] or "refused") if position in refusals else "")
            for position, report in enumerate(self.reports)
        ]


def report_batches(reports: Sequence[ReportState]) -> list[ReportBatch]:
    """``reports`` (of one pass) in as few entries as a command's size allows."""
    return [
        ReportBatch(tuple(reports[start : start + REPORTS_PER_ENTRY]))
        for start in range(0, len(reports), REPORTS_PER_ENTRY)
    ]


@dataclass(frozen=True, slots=True)
class ReleasePorts:
    node_id: str
    task_ids: list[str]


@dataclass(frozen=True, slots=True)
class PortConflict:
    task_id: str
    host_ip: str
    port: int
    reason: str


@dataclass(frozen=True, slots=True)
class ListAbsent:
    """List the running containers ``node_id`` (absent, sharing this engine) left, then call
    ``absent_listed`` with them."""

    node_id: str
    held: list[str]


@dataclass(frozen=True, slots=True)
class RoundAgain:
    """Run another round (after this one, if one is under way)."""


@dataclass(frozen=True, slots=True)
class Note:
    level: Literal["debug", "info", "warning"]
    text: str


Action = (
    StartContainer
    | StopContainer
    | ReportState
    | ReleasePorts
    | PortConflict
    | ListAbsent
    | RoundAgain
    | Note
)


@dataclass(frozen=True, slots=True)
class PortTaken:
    """Docker refused a start because ``host_ip:port`` is taken by something else."""

    host_ip: str
    port: int


class ReconcilePlanner:
    def __init__(self, node_id: str, policy: RestartPolicy, stop_after_disconnect: float = 0.0) -> None:
        """``stop_after_disconnect``: seconds without the leader before this node stops its tasks
        (orion/cluster/leader_contact.py); 0: never."""
        self.node_id = node_id
        self.policy = policy
        self.stop_after_disconnect = stop_after_disconnect
        self._tasks: list[Task] | None = None  # this round's, once read
        self._held_here: list[str] = []
        self._contact: LeaderContact | None = None
        self._starting: set[str] = set()
        self._stopping: set[str] = set()
        self._restart_at: dict[str, float] = {}
        self._handled_exit: dict[str, str] = {}  # task id -> container id whose exit was handled
        # Tasks this node found ended (Failed, Stopped) and reported so: never started again
        # while the report is on its way; the report is sent again until the FSM shows it.
        self._ended: dict[str, tuple[TaskState, str, int, int | None]] = {}
        # Task id -> (report key, when sent, answer: None while on its way, True committed,
        # False refused or timed out). A report on its way is never sent twice.
        self._reported: dict[str, tuple[ReportKey, float, bool | None]] = {}
        self._released: dict[tuple[str, str], float] = {}  # (node, task) -> when released
        self._absent_checked: dict[str, float] = {}  # absent node -> when its containers were last listed
        # Task id -> when this node saw its container started and not yet ended: if a listing
        # asked for later lacks it, someone removed it, whatever the FSM says yet.
        self._launched: dict[str, float] = {}
        # Bounded duplicates: the leader's last contact when this node stopped its tasks for
        # want of it (None: not stopped), the tasks it stopped then, whether the next round
        # reads through the leader (contact is back), and whether a silence that leaves the
        # tasks running (the whole cluster has no leader) was said already.
        self._silent_since: float | None = None
        self._cut_off: set[str] = set()
        self._read_via_leader = False
        self._round_via_leader = False
        self._silence_said = False

    # ------------------------------------------------------------------ round inputs
    def begin_round(self) -> bool:
        """A round begins: True when it must read the FSM through the leader."""
        self._tasks = None
        self._round_via_leader = self._read_via_leader
        return self._round_via_leader

    def read_failed(self) -> None:
        """The round's read of the FSM failed: if it went through the leader, the leader went
        silent again, and the next round reads locally and judges anew."""
        if self._round_via_leader:
            self._read_via_leader = False

    def wanted(self, wanted: Wanted, now: float) -> list[Action]:
        """The round's read of the FSM; lists the containers of absent nodes that share this
        engine (once per REPORT_RETRY_S each), to release the ports their gone containers held."""
        self._tasks = wanted.tasks
        self._held_here = wanted.held_here
        self._contact = wanted.contact
        actions: list[Action] = []
        for node_id, held in wanted.held_by_absent.items():
            if now - self._absent_checked.get(node_id, -REPORT_RETRY_S) < REPORT_RETRY_S:
                continue
            self._absent_checked[node_id] = now
            actions.append(ListAbsent(node_id, held))
        return actions

    def absent_listed(self, node_id: str, held: list[str], running: set[str], now: float) -> list[Action]:
        return self._release(node_id, [task_id for task_id in held if task_id not in running], now)

    # ------------------------------------------------------------------ the round's decisions
    def plan(
        self,
        containers: Sequence[ContainerInfo],
        listed_fresh: bool,
        listed_at: float,
        now: float,
        wall: float,
    ) -> list[Action]:
        """Decide the round, given the FSM's view (``wanted``) and Docker's. ``listed_fresh``:
        the listing was taken for this round (asked for at ``listed_at``), not an older one."""
        tasks = self._tasks
        if tasks is None:
            raise ValueError("plan needs the round's read of the FSM (wanted) first")
        actions: list[Action] = []
        contact = self._contact
        if contact is not None and self._without_leader(contact, containers, tasks, now, actions):
            return actions
        resumed, self._cut_off = self._cut_off, set()
        silent_since, self._silent_since = self._silent_since, None
        self._read_via_leader = False
        by_task = {c.task_id: c for c in containers}
        by_id = {t.id: t for t in tasks}
        wanted = {
            t.id: t
            for t in tasks
            if t.node_id == self.node_id
            and t.desired == Desired.RUN
            and t.state in (TaskState.SCHEDULED, TaskState.RUNNING)
        }
        ended = {
            t.id
            for t in tasks
            if t.node_id == self.node_id and t.state in (TaskState.STOPPED, TaskState.FAILED)
        }
        for task_id, container in by_task.items():
            if task_id in wanted or task_id in self._starting or task_id in self._stopping:
                continue
            grace = _grace(by_id.get(task_id))
            if task_id in ended:
                if container.running:  # stopped by a user, or reported ended: stop it, keep it
                    actions.append(Note("info", f"stopping container of {task_id} (the task ended)"))
                    actions.append(self._stop(task_id, keep=True, grace=grace))
                continue
            actions.append(Note("info", f"removing container of {task_id} (no longer assigned here)"))
            actions.append(self._stop(task_id, keep=False, grace=grace))
            self._restart_at.pop(task_id, None)
            self._handled_exit.pop(task_id, None)
        for task_id in [t for t in self._ended if t not in wanted]:
            del self._ended[task_id]  # the FSM has it: the task is no longer to run here
        for task_id in [t for t in self._launched if t not in wanted and t not in self._starting]:
            del self._launched[task_id]
        for task in wanted.values():
            if task.id in self._starting or task.id in self._stopping:
                continue
            if task.id in resumed and contact is not None and silent_since is not None:
                actions.extend(self._resume(task, contact.last_heard - silent_since, now))
                continue
            if task.id in self._ended:
                actions.extend(self._report(task, *self._ended[task.id], now=now))
                continue
            container = by_task.get(task.id)
            if container is not None and container.status == "removing":
                continue  # being removed (docker rm -f): the next round sees it gone and says so
            if container is not None and container.status == "running" and _ports_differ(task, container):
                # A container left from an earlier placement here, publishing other ports than
                # the cluster gave the task this time: replace it.
                actions.append(Note("info", f"replacing container of {task.id} (its host ports changed)"))
                actions.append(self._stop(task.id, keep=False, grace=task.stop_grace))
                continue
            if container is not None and container.status == "running":
                if task.state != TaskState.RUNNING:
                    actions.extend(self._report(task, TaskState.RUNNING, "", task.restarts, None, now=now))
                continue
            if (
                container is not None
                and container.status in ("exited", "dead")
                and self._handled_exit.get(task.id) != container.container_id
            ):
                self._handled_exit[task.id] = container.container_id
                actions.extend(self._on_exit(task, container.exit_code, container.oom_killed, now, wall))
                continue
            launched = self._launched.get(task.id)
            if (
                container is None
                and listed_fresh
                and now >= self._restart_at.get(task.id, 0.0)  # not between an exit and its restart
                # Started by this node before the listing was asked for, or (after a restart of
                # this node) Running in the FSM: either way Docker should have it.
                and (listed_at > launched if launched is not None else task.state == TaskState.RUNNING)
            ):
                # Docker no longer has a container the cluster saw running: someone removed it.
                actions.extend(
                    self._on_exit(task, None, False, now, wall, cause="container removed outside Orion")
                )
                continue
            if now >= self._restart_at.get(task.id, 0.0):
                actions.append(self._start(task))
        running = {c.task_id for c in containers if c.running}
        busy = self._starting | self._stopping
        held = [t for t in self._held_here if t not in running and t not in busy]
        actions.extend(self._release(self.node_id, held, now))
        return actions

    # ------------------------------------------------------------------ what came back
    def started(
        self, task_id: str, now: float, wall: float, error: str = "", taken: PortTaken | None = None
    ) -> list[Action]:
        """A start finished: ``error`` says why it failed ("" = it runs); ``taken`` when Docker
        refused it for a host port held by something else."""
        self._starting.discard(task_id)
        task = next((t for t in self._tasks or [] if t.id == task_id), None)
        if task is None:
            return [RoundAgain()]  # it may have been stopped meanwhile: the round removes it
        if not error:
            self._launched[task_id] = now
            return [
                Note("info", f"started {task_id} ({task.image})"),
                *self._report(task, TaskState.RUNNING, "", task.restarts, None, now=now),
            ]
        if taken is not None:
            # Not the task's fault: if the commit is lost, the next round tries and lands here again.
            reason = f"{error} on {self.node_id}; placing it again"
            return [
                Note("warning", f"cannot start {task_id}: {reason}"),
                PortConflict(task_id, taken.host_ip, taken.port, reason),
            ]
        return [
            Note("warning", f"cannot start {task_id}: {error}"),
            *self._report(task, TaskState.FAILED, error, task.restarts, None, now=now),
        ]

    def stopped(self, task_id: str) -> None:
        self._stopping.discard(task_id)

    # ------------------------------------------------------------------ without the leader
    def _without_leader(
        self,
        contact: LeaderContact,
        containers: Sequence[ContainerInfo],
        tasks: list[Task],
        now: float,
        actions: list[Action],
    ) -> bool:
        """True when this round must leave the replicated state alone: the node stopped its
        tasks for want of the leader, or hears it again and must first read through it."""
        verdict = disconnect_verdict(contact, now, self.stop_after_disconnect)
        if verdict.stop:
            self._read_via_leader = False  # silent again before the read through it came back
            self._stop_cut_off(containers, tasks, contact, verdict.reason, actions)
            return True
        if verdict.reason and not self._silence_said:
            actions.append(Note("warning", verdict.reason))
        self._silence_said = bool(verdict.reason)
        if self._silent_since is None:
            return False
        if contact.last_heard <= self._silent_since:
            return True  # peers are back in sight, the leader is not: stay stopped until it speaks
        if not self._round_via_leader:
            # Heard again. The local replica may not yet hold what the cluster decided while
            # this node was away (the tasks moved, or were stopped): ask through the leader.
            self._read_via_leader = True
            actions.append(RoundAgain())
            return True
        return False

    def _stop_cut_off(
        self,
        containers: Sequence[ContainerInfo],
        tasks: list[Task],
        contact: LeaderContact,
        reason: str,
        actions: list[Action],
    ) -> None:
        running = sorted(c.task_id for c in containers if c.running and c.task_id not in self._stopping)
        if self._silent_since is None:
            self._silent_since = contact.last_heard
            actions.append(
                Note(
                    "warning",
                    f"{reason}: stopping this node's tasks ({', '.join(running) or 'none running'}) so "
                    "they do not run twice while the cluster places them elsewhere; what it still wants "
                    "here starts again when the leader is heard",
                )
            )
        by_id = {t.id: t for t in tasks}
        for task_id in running:
            self._cut_off.add(task_id)
            actions.append(self._stop(task_id, keep=True, grace=_grace(by_id.get(task_id))))

    def _resume(self, task: Task, silent: float, now: float) -> list[Action]:
        """Start again a task this node stopped for want of the leader, which the cluster (read
        through the leader) still wants here, saying why and how long it was down."""
        reason = f"stopped: no contact with the leader for {max(0.0, silent):.0f}s"
        return [
            Note("info", f"{task.id} {reason}; starting it again"),
            *self._report(task, TaskState.SCHEDULED, reason, task.restarts, None, now=now),
            self._start(task),
        ]

    # ------------------------------------------------------------------ helpers
    def _start(self, task: Task) -> StartContainer:
        self._starting.add(task.id)
        return StartContainer(task)

    def _stop(self, task_id: str, keep: bool, grace: float | None) -> StopContainer:
        self._launched.pop(task_id, None)
        self._stopping.add(task_id)
        return StopContainer(task_id, keep, grace)

    def _on_exit(
        self,
        task: Task,
        exit_code: int | None,
        oom_killed: bool,
        now: float,
        wall: float,
        cause: str = "",
    ) -> list[Action]:
        self._launched.pop(task.id, None)
        policy = self.policy.for_task(task.restart)
        decision = policy.decide(exit_code, oom_killed, task.restart_times, wall, cause)
        if decision.action in ("complete", "fail"):
            state = TaskState.STOPPED if decision.action == "complete" else TaskState.FAILED
            self._ended[task.id] = (state, decision.reason, task.restarts, exit_code)
            return self._report(task, state, decision.reason, task.restarts, exit_code, now=now)
        self._restart_at[task.id] = now + decision.delay
        return [
            Note("info", f"{task.id} {decision.reason}"),
            *self._report(
                task,
                TaskState.SCHEDULED,
                decision.reason,
                task.restarts + 1,
                exit_code,
                decision.restart_times,
                now=now,
            ),
        ]

    def _report(
        self,
        task: Task,
        state: TaskState,
        reason: str,
        restarts: int,
        exit_code: int | None,
        restart_times: list[float] | None = None,
        *,
        now: float,
    ) -> list[Action]:
        """A report of the task's state, unless the same one is on its way, was committed less
        than REPORT_COMMITTED_WAIT_S ago, or failed less than REPORT_RETRY_S ago."""
        key = report_key(state, restarts, reason)
        previous = self._reported.get(task.id)
        if previous is not None and previous[0] == key:
            _, sent_at, answer = previous
            wait = REPORT_COMMITTED_WAIT_S if answer is not False else REPORT_RETRY_S
            if answer is None or now - sent_at < wait:
                return []
        self._reported[task.id] = (key, now, None)
        return [ReportState(task.id, state, reason, restarts, exit_code, restart_times)]

    def report_answered(self, task_id: str, key: ReportKey, committed: bool, now: float) -> None:
        """The cluster's answer to a report: committed, or refused / timed out. An answer to an
        older report of the task (another key) changes nothing."""
        previous = self._reported.get(task_id)
        if previous is not None and previous[0] == key:
            # A committed report waits from its answer; a failed one may go again a retry later.
            self._reported[task_id] = (key, now if committed else previous[1], committed)

    def _release(self, node_id: str, task_ids: list[str], now: float) -> list[Action]:
        """Tell the cluster these tasks' containers on ``node_id`` are gone (at most once per
        REPORT_RETRY_S each: the FSM drops the hold when it applies it)."""
        due = [
            t for t in task_ids if now - self._released.get((node_id, t), -REPORT_RETRY_S) >= REPORT_RETRY_S
        ]
        if not due:
            return []
        for task_id in due:
            self._released[(node_id, task_id)] = now
        if len(self._released) > _RELEASED_KEPT:
            self._released = {k: v for k, v in self._released.items() if now - v < REPORT_RETRY_S}
        return [
            Note("info", f"ports of {', '.join(due)} free on {node_id} (no container left)"),
            ReleasePorts(node_id, due),
        ]


ReportKey = tuple[str, int, str]


def report_key(state: TaskState, restarts: int, reason: str) -> ReportKey:
    """What makes two reports of a task the same report."""
    return (str(state), restarts, reason)


def _grace(task: Task | None) -> float | None:
    return None if task is None else task.stop_grace


def _ports_differ(task: Task, container: ContainerInfo) -> bool:
    """True when the container publishes other host ports than the task was given (only known
    for tasks placed with ``host_ports``)."""
    return bool(task.host_ports) and container.host_ports != task.host_ports
