"""The Heart: a level-triggered loop that makes this node's containers match the FSM.

Each round compares the tasks the replicated state assigns to this node with the containers
Docker holds for it (labels ``orion.node.id`` and ``orion.cluster.id``): it starts what is
missing, removes what is no longer assigned here (stopped, rescheduled elsewhere while this
node was away, unknown), and reports state changes (Running, exits, Failed) through Raft.
Rounds run every ``reconcile_interval`` and at once when the FSM or Docker says something
changed.

Exits follow the task's restart policy (orion/worker/restart_policy.py; the node's default
unless the task has its own), counted from the restart times kept in the FSM. A task that
ended (Stopped, Failed) keeps its container, stopped, until the task leaves the state
(garbage collection or ``task rm``), so ``docker inspect`` and logs still work. A Running
task whose container disappeared (``docker rm -f`` behind Orion's back) is a restart with
that reason in its history, not a silent re-creation.

Bounded duplicates (orion/cluster/leader_contact.py): a node that has not heard the leader for
``stop_after_disconnect`` and reaches neither half the voters nor most members stops its
containers (keeping them), because the cluster may be running its tasks elsewhere by now;
meanwhile it starts, reports and removes nothing. When it hears the leader again it reads
the state through the leader (the local replica may not yet hold what was decided meanwhile),
starts again what is still assigned to it, with the reason in the task's history ("stopped:
no contact with the leader for 45s"), and removes what moved.

Host ports (orion/scheduler/ports.py): a start that Docker refuses because the host port is
taken by something else is not a failure of the task: the reconciler reports a
``PortConflict`` and the task is placed again elsewhere. Ports held by a task that left this
node are released (``ReleasePorts``) once no running container of it is left here; for a
node that is not alive and shares this node's Docker engine, this node looks at that node's
containers (reading only) and releases what is no longer running, so a port held by a dead
node's old container frees as soon as that container is gone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pykka
from loguru import logger

from orion.actors.base import FatalHandler, NodeActor
from orion.actors.messages import (
    ClusterIdentity,
    ContainerExited,
    Outcome,
    Propose,
    Read,
    StateChanged,
    Tick,
)
from orion.actors.state_view import StateView
from orion.actors.worker_actor import ListContainers, ListRunningOf, StartContainer, StopContainer
from orion.cluster.leader_contact import LeaderContact, disconnect_verdict
from orion.fsm import commands as fsm_commands
from orion.model import Desired, NodeStatus, Task, TaskState
from orion.scheduler.ports import port_space
from orion.worker.restart_policy import RestartPolicy
from orion.worker.types import PortInUseError

REPORT_RETRY_S = 3.0  # a report not yet visible in the FSM after this long is sent again
# Labels the containers of a cluster bootstrapped before cluster ids (its configuration has none):
# shared by every such cluster on one engine, as the node id alone was before.
LEGACY_CLUSTER_ID = "legacy"


@dataclass(frozen=True, slots=True)
class _Desired:
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class _Wanted:
    """What the FSM says about this node: its tasks, the tasks whose ports it holds, and the
    ports held by nodes that are not alive and share its Docker engine."""

    tasks: list[Task]
    held_here: list[str]
    held_by_absent: dict[str, list[str]]  # node id -> task ids
    contact: LeaderContact | None = None  # this node's contact with the leader, as Raft knows it


@dataclass(frozen=True, slots=True)
class _AbsentRunning:
    node_id: str
    held: list[str]
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class _Actual:
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class _Probe:
    """What Raft says of this node's configuration while no ClusterIdentity named the cluster."""

    outcome: Outcome


@dataclass(frozen=True, slots=True)
class _Started:
    task_id: str
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class _Stopped:
    task_id: str
    outcome: Outcome


class ReconcilerActor(NodeActor):
    def __init__(
        self,
        node_id: str,
        raft: pykka.ActorRef,
        worker: pykka.ActorRef,
        policy: RestartPolicy,
        request_timeout: float,
        on_fatal: FatalHandler,
        stop_after_disconnect: float = 0.0,
    ) -> None:
        """``stop_after_disconnect``: see the module doc and [scheduler] in the README; 0: never."""
        super().__init__(on_fatal)
        self.node_id = node_id
        self.stop_after_disconnect = stop_after_disconnect
        self.raft = raft
        self.worker = worker
        self.policy = policy
        self.timeout = request_timeout
        self._round_active = False
        self._dirty = False
        self._desired: list[Task] | None = None
        self._actual: list[Any] | None = None
        self._starting: set[str] = set()
        self._stopping: set[str] = set()
        self._restart_at: dict[str, float] = {}
        self._handled_exit: dict[str, str] = {}  # task id -> container id whose exit was handled
        # Tasks this node found ended (Failed, Stopped) and reported so: never started again
        # while the report is on its way; the report is sent again until the FSM shows it.
        self._ended: dict[str, tuple[str, str, int, int | None]] = {}
        self._reported: dict[str, tuple[tuple[str, int, str], float]] = {}
        self._held_here: list[str] = []
        self._released: dict[tuple[str, str], float] = {}  # (node, task) -> when ReleasePorts was sent
        self._absent_checked: dict[str, float] = {}  # absent node -> when its containers were last listed
        self._answers = 0
        self._expected_answers = 2
        self._round_failed = False
        # Docker's view, as last listed. Only Docker events, our own starts and stops, and the
        # periodic tick change it, so a round woken by the FSM reuses it instead of asking
        # Docker again on every replicated write.
        self._containers: list[Any] | None = None
        self._containers_stale = True
        self._listed_this_round = False  # the round's listing is fresh, not the cached one
        self._listed_at = 0.0  # monotonic time the round's listing was asked for
        # Task id -> monotonic time this node saw its container started and not yet ended: if a
        # listing asked for later lacks it, someone removed it, whatever the FSM says yet.
        self._launched: dict[str, float] = {}
        # The cluster id (from the Raft actor): containers are told apart by it, so no round
        # runs before it is known (a node that has not joined yet has no tasks anyway).
        self._cluster_id = ""
        # Bounded duplicates: the leader's last contact when this node stopped its tasks for
        # want of it (None: not stopped), the tasks it stopped then, whether the next round
        # reads through the leader (contact is back), and whether a silence that leaves the
        # tasks running (the whole cluster has no leader) was said already.
        self._contact: LeaderContact | None = None
        self._silent_since: float | None = None
        self._cut_off: set[str] = set()
        self._read_via_leader = False
        self._round_via_leader = False
        self._silence_said = False

    def on_receive(self, message: Any) -> Any:
        match message:
            case Tick(_, gate):
                if gate is not None:
                    gate.release()
                self._containers_stale = True
                self._begin_round()
            case ContainerExited():
                self._containers_stale = True
                self._begin_round()
            case StateChanged():
                self._begin_round()
            case ClusterIdentity(cluster_id, _) if cluster_id:
                known = bool(self._cluster_id)
                self._cluster_id = cluster_id
                if not known:
                    self._containers_stale = True
                    self._begin_round()
            case ClusterIdentity():
                pass  # not named yet
            case _Probe(outcome) if outcome.ok and not self._cluster_id:
                self._adopt_legacy(outcome.value)
            case _Probe():
                pass
            case _Desired(outcome) | _Actual(outcome) if not outcome.ok:
                # Never act on half a picture: an empty desired list would remove everything.
                logger.warning("reconciler: round abandoned: {}", outcome.message)
                self._round_failed = True
                if isinstance(message, _Desired) and self._round_via_leader:
                    # The leader went silent again: the next round reads locally and judges anew.
                    self._read_via_leader = False
                self._maybe_diff(message)
            case _Desired(outcome):
                wanted: _Wanted = outcome.value
                self._desired = wanted.tasks
                self._held_here = wanted.held_here
                self._contact = wanted.contact
                self._check_absent(wanted.held_by_absent)
                self._maybe_diff(message)
            case _Actual(outcome):
                self._actual = self._containers = list(outcome.value)
                self._maybe_diff(message)
            case _Started(task_id, outcome):
                self._starting.discard(task_id)
                self._containers_stale = True
                self._on_started(task_id, outcome)
            case _Stopped(task_id, outcome):
                self._stopping.discard(task_id)
                self._containers_stale = True
                if not outcome.ok:
                    logger.warning("reconciler: stopping {} failed: {}", task_id, outcome.message)
            case _AbsentRunning(node_id, held, outcome) if outcome.ok:
                self._release(node_id, [task_id for task_id in held if task_id not in outcome.value])
            case _AbsentRunning(node_id, _, outcome):
                logger.debug("reconciler: cannot list the containers of {}: {}", node_id, outcome.message)
        return None

    # ------------------------------------------------------------------ rounds
    def _begin_round(self) -> None:
        if not self._cluster_id:
            # The ClusterIdentity that names the cluster starts the first round; a configuration
            # without a cluster id (a legacy cluster) never sends one, so look.
            ref = self.actor_ref
            self.raft.tell(Read(_leader_contact, lambda o: ref.tell(_Probe(o)), stale=True))
            return
        if self._round_active:
            self._dirty = True
            return
        self._round_active = True
        self._dirty = False
        self._desired = None
        self._actual = None
        self._answers = 0
        self._round_failed = False
        ref = self.actor_ref
        node_id = self.node_id

        def desired(view: StateView) -> _Wanted:
            fsm = view.fsm
            me = fsm.node(node_id)
            absent: dict[str, list[str]] = {}
            if me is not None:
                space = port_space(me.meta)
                for record in fsm.nodes():
                    if (
                        record.id != node_id
                        and record.status != NodeStatus.ALIVE
                        and port_space(record.meta) == space
                    ):
                        held = fsm.held_port_tasks(record.id)
                        if held:
                            absent[record.id] = held
            # FSM records are never changed in place: the lists may leave the Raft thread.
            return _Wanted(
                fsm.tasks_on_node(node_id), fsm.held_port_tasks(node_id), absent, view.leader_contact()
            )

        self._round_via_leader = self._read_via_leader
        read = Read(
            desired, lambda o: ref.tell(_Desired(o)), stale=not self._round_via_leader, timeout=self.timeout
        )
        self.raft.tell(read)
        self._listed_this_round = self._containers_stale or self._containers is None
        if self._listed_this_round:
            self._listed_at = time.monotonic()
            self._containers_stale = False
            self._expected_answers = 2
            self.worker.tell(ListContainers(lambda o: ref.tell(_Actual(o))))
        else:
            self._expected_answers = 1
            self._actual = self._containers

    def _maybe_diff(self, answer: _Desired | _Actual) -> None:
        self._answers += 1
        if self._answers < self._expected_answers:
            return  # wait for the other half
        try:
            if not self._round_failed and self._desired is not None and self._actual is not None:
                self._diff(self._desired, self._actual)
        finally:
            self._end_round()

    def _end_round(self) -> None:
        self._round_active = False
        if self._dirty:
            self._begin_round()

    def _diff(self, tasks: list[Task], containers: list[Any]) -> None:
        now = time.monotonic()
        if self._contact is not None and self._without_leader(self._contact, containers, now):
            return
        resumed, self._cut_off = self._cut_off, set()
        silent_since, self._silent_since = self._silent_since, None
        self._read_via_leader = False
        by_task = {c.task_id: c for c in containers}
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
            if task_id in ended:
                if container.running:  # stopped by a user, or reported ended: stop it, keep it
                    logger.info("reconciler: stopping container of {} (the task ended)", task_id)
                    self._remove_container(task_id, keep=True)
                continue
            logger.info("reconciler: removing container of {} (no longer assigned here)", task_id)
            self._remove_container(task_id)
            self._restart_at.pop(task_id, None)
            self._handled_exit.pop(task_id, None)
        for task_id in [t for t in self._ended if t not in wanted]:
            del self._ended[task_id]  # the FSM has it: the task is no longer to run here
        for task_id in [t for t in self._launched if t not in wanted and t not in self._starting]:
            del self._launched[task_id]
        for task in wanted.values():
            if task.id in self._starting or task.id in self._stopping:
                continue
            if task.id in resumed and self._contact is not None and silent_since is not None:
                self._resume(task, self._contact.last_heard - silent_since)
                continue
            if task.id in self._ended:
                self._report(task, *self._ended[task.id])
                continue
            container = by_task.get(task.id)
            if container is not None and container.status == "removing":
                continue  # being removed (docker rm -f): the next round sees it gone and says so
            if container is not None and container.status == "running" and _ports_differ(task, container):
                # A container left from an earlier placement here, publishing other ports than
                # the cluster gave the task this time: replace it.
                logger.info("reconciler: replacing container of {} (its host ports changed)", task.id)
                self._remove_container(task.id)
                continue
            if container is not None and container.status == "running":
                if task.state != TaskState.RUNNING:
                    self._report(task, TaskState.RUNNING, "", task.restarts, None)
                continue
            if (
                container is not None
                and container.status in ("exited", "dead")
                and self._handled_exit.get(task.id) != container.container_id
            ):
                self._handled_exit[task.id] = container.container_id
                self._on_exit(task, container.exit_code, container.oom_killed, now)
                continue
            launched = self._launched.get(task.id)
            if (
                container is None
                and self._listed_this_round
                and now >= self._restart_at.get(task.id, 0.0)  # not between an exit and its restart
                # Started by this node before the listing was asked for, or (after a restart of
                # this node) Running in the FSM: either way Docker should have it.
                and (self._listed_at > launched if launched is not None else task.state == TaskState.RUNNING)
            ):
                # Docker no longer has a container the cluster saw running: someone removed it.
                self._on_exit(task, None, False, now, cause="container removed outside Orion")
                continue
            if now >= self._restart_at.get(task.id, 0.0):
                self._start_container(task)
        running = {c.task_id for c in containers if c.running}
        busy = self._starting | self._stopping
        self._release(self.node_id, [t for t in self._held_here if t not in running and t not in busy])

    def _adopt_legacy(self, contact: LeaderContact) -> None:
        if contact.cluster_id or not contact.voters:
            return  # named (its ClusterIdentity is on its way), or no configuration yet
        logger.warning(
            "reconciler: this cluster's configuration has no cluster id (bootstrapped by an Orion "
            "from before cluster ids): its containers are labelled orion.cluster.id={}, like those of "
            "any other such cluster on this Docker engine",
            LEGACY_CLUSTER_ID,
        )
        self._cluster_id = LEGACY_CLUSTER_ID
        self.worker.tell(ClusterIdentity(LEGACY_CLUSTER_ID, ""))  # before the round's listing
        self._containers_stale = True
        self._begin_round()

    # ------------------------------------------------------------------ without the leader
    def _without_leader(self, contact: LeaderContact, containers: list[Any], now: float) -> bool:
        """True when this round must leave the replicated state alone: the node stopped its
        tasks for want of the leader, or hears it again and must first read through it."""
        verdict = disconnect_verdict(contact, now, self.stop_after_disconnect)
        if verdict.stop:
            self._read_via_leader = False  # silent again before the read through it came back
            self._stop_cut_off(containers, contact, verdict.reason)
            return True
        if verdict.reason and not self._silence_said:
            logger.warning("reconciler: {}", verdict.reason)
        self._silence_said = bool(verdict.reason)
        if self._silent_since is None:
            return False
        if contact.last_heard <= self._silent_since:
            return True  # peers are back in sight, the leader is not: stay stopped until it speaks
        if not self._round_via_leader:
            # Heard again. The local replica may not yet hold what the cluster decided while
            # this node was away (the tasks moved, or were stopped): ask through the leader.
            self._read_via_leader = True
            self._dirty = True
            return True
        return False

    def _stop_cut_off(self, containers: list[Any], contact: LeaderContact, reason: str) -> None:
        running = sorted(c.task_id for c in containers if c.running and c.task_id not in self._stopping)
        if self._silent_since is None:
            self._silent_since = contact.last_heard
            logger.warning(
                "reconciler: {}: stopping this node's tasks ({}) so they do not run twice while the "
                "cluster places them elsewhere; what it still wants here starts again when the "
                "leader is heard",
                reason,
                ", ".join(running) or "none running",
            )
        for task_id in running:
            self._cut_off.add(task_id)
            self._remove_container(task_id, keep=True)

    def _resume(self, task: Task, silent: float) -> None:
        """Start again a task this node stopped for want of the leader, which the cluster (read
        through the leader) still wants here, saying why and how long it was down."""
        reason = f"stopped: no contact with the leader for {max(0.0, silent):.0f}s"
        logger.info("reconciler: {} {}; starting it again", task.id, reason)
        self._report(task, TaskState.SCHEDULED, reason, task.restarts, None)
        self._start_container(task)

    # ------------------------------------------------------------------ ports
    def _release(self, node_id: str, task_ids: list[str]) -> None:
        """Tell the cluster these tasks' containers on ``node_id`` are gone (at most once per
        REPORT_RETRY_S each: the FSM drops the hold when it applies it)."""
        now = time.monotonic()
        due = [
            t for t in task_ids if now - self._released.get((node_id, t), -REPORT_RETRY_S) >= REPORT_RETRY_S
        ]
        if not due:
            return
        for task_id in due:
            self._released[(node_id, task_id)] = now
        if len(self._released) > 10_000:  # entries only matter for REPORT_RETRY_S
            self._released = {k: v for k, v in self._released.items() if now - v < REPORT_RETRY_S}
        logger.info("reconciler: ports of {} free on {} (no container left)", ", ".join(due), node_id)
        command = fsm_commands.ReleasePorts(node_id=node_id, task_ids=due, at=time.time())
        self.raft.tell(Propose(fsm_commands.encode_command(command), _log_failure, timeout=self.timeout))

    def _check_absent(self, held_by_absent: dict[str, list[str]]) -> None:
        """List the running containers of absent nodes sharing this engine (once per
        REPORT_RETRY_S each), to release the ports their gone containers held."""
        now = time.monotonic()
        ref = self.actor_ref
        for node_id, held in held_by_absent.items():
            if now - self._absent_checked.get(node_id, -REPORT_RETRY_S) < REPORT_RETRY_S:
                continue
            self._absent_checked[node_id] = now
            self.worker.tell(
                ListRunningOf(node_id, lambda o, n=node_id, h=held: ref.tell(_AbsentRunning(n, h, o)))
            )

    def _port_conflict(self, task: Task, error: PortInUseError, message: str) -> None:
        reason = f"{message} on {self.node_id}; placing it again"
        logger.warning("reconciler: cannot start {}: {}", task.id, reason)
        command = fsm_commands.PortConflict(
            task_id=task.id,
            node_id=self.node_id,
            host_ip=error.host_ip,
            port=error.port,
            reason=reason,
            at=time.time(),
        )
        self.raft.tell(Propose(fsm_commands.encode_command(command), _log_failure, timeout=self.timeout))

    # ------------------------------------------------------------------ actions
    def _start_container(self, task: Task) -> None:
        self._starting.add(task.id)
        ref = self.actor_ref
        task_id = task.id
        self.worker.tell(StartContainer(task, lambda o: ref.tell(_Started(task_id, o))))

    def _remove_container(self, task_id: str, keep: bool = False) -> None:
        self._launched.pop(task_id, None)
        self._stopping.add(task_id)
        ref = self.actor_ref
        self.worker.tell(StopContainer(task_id, lambda o: ref.tell(_Stopped(task_id, o)), remove=not keep))

    def _on_started(self, task_id: str, outcome: Outcome) -> None:
        task = next((t for t in self._desired or [] if t.id == task_id), None)
        if task is None:
            self._begin_round()  # it may have been stopped meanwhile: the round removes it
            return
        if outcome.ok:
            logger.info("reconciler: started {} ({})", task_id, task.image)
            self._launched[task_id] = time.monotonic()
            self._report(task, TaskState.RUNNING, "", task.restarts, None)
        elif isinstance(outcome.value, PortInUseError):
            # Not the task's fault: if the commit is lost, the next round tries and lands here again.
            self._port_conflict(task, outcome.value, outcome.message)
        else:
            logger.warning("reconciler: cannot start {}: {}", task_id, outcome.message)
            self._report(task, TaskState.FAILED, outcome.message, task.restarts, None)

    def _on_exit(
        self, task: Task, exit_code: int | None, oom_killed: bool, now: float, cause: str = ""
    ) -> None:
        self._launched.pop(task.id, None)
        policy = self.policy.for_task(task.restart)
        decision = policy.decide(exit_code, oom_killed, task.restart_times, time.time(), cause)
        if decision.action in ("complete", "fail"):
            state = TaskState.STOPPED if decision.action == "complete" else TaskState.FAILED
            self._ended[task.id] = (state, decision.reason, task.restarts, exit_code)
            self._report(task, state, decision.reason, task.restarts, exit_code)
        else:
            self._restart_at[task.id] = now + decision.delay
            logger.info("reconciler: {} {}", task.id, decision.reason)
            restarts = task.restarts + 1
            self._report(
                task, TaskState.SCHEDULED, decision.reason, restarts, exit_code, decision.restart_times
            )

    def _report(
        self,
        task: Task,
        state: str,
        reason: str,
        restarts: int,
        exit_code: int | None,
        restart_times: list[float] | None = None,
    ) -> None:
        key = (state, restarts, reason)
        previous = self._reported.get(task.id)
        now = time.monotonic()
        if previous is not None and previous[0] == key and now - previous[1] < REPORT_RETRY_S:
            return
        self._reported[task.id] = (key, now)
        command = fsm_commands.ReportTaskState(
            task_id=task.id,
            node_id=self.node_id,
            state=state,
            reason=reason,
            exit_code=exit_code,
            restarts=restarts,
            restart_times=restart_times,
            at=time.time(),
        )
        self.raft.tell(Propose(fsm_commands.encode_command(command), _log_failure, timeout=self.timeout))


def _ports_differ(task: Task, container: Any) -> bool:
    """True when the container publishes other host ports than the task was given (only known
    for tasks placed with ``host_ports``)."""
    return bool(task.host_ports) and container.host_ports != task.host_ports


def _leader_contact(view: StateView) -> LeaderContact:
    return view.leader_contact()


def _log_failure(outcome: Outcome) -> None:
    if not outcome.ok:
        logger.debug("reconciler: report not committed: {} {}", outcome.code, outcome.message)
