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

The decisions are made by a pure planner (orion/worker/reconcile_plan.py); this actor is its
shell: it gathers each round's inputs (a read of the FSM through Raft, a listing of Docker's
containers, reused while nothing says Docker changed), and carries out the planner's actions.
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
from orion.cluster.leader_contact import LeaderContact
from orion.cluster.outcome import Callback
from orion.fsm import commands as fsm_commands
from orion.fsm.touched import Touched
from orion.model import NodeStatus
from orion.scheduler.ports import port_space
from orion.worker import reconcile_plan as plan
from orion.worker.reconcile_plan import ReconcilePlanner, Wanted
from orion.worker.restart_policy import RestartPolicy
from orion.worker.types import ContainerInfo, PortInUseError

# Labels the containers of a cluster bootstrapped before cluster ids (its configuration has none):
# shared by every such cluster on one engine, as the node id alone was before.
LEGACY_CLUSTER_ID = "legacy"


@dataclass(frozen=True, slots=True)
class _Desired:
    outcome: Outcome


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


@dataclass(frozen=True, slots=True)
class _Reported:
    batch: plan.ReportBatch
    outcome: Outcome


def reconciler_concerned(touched: Touched, node_id: str) -> bool:
    """Whether a round's read (``desired`` below) may differ: this node's tasks or port holds,
    any node record (this one's, or another's status and port space), or the port holds of a
    node that is not alive (this node may release them). A node that becomes not alive is a
    node record change, so one alive when its holds changed is read afresh by then."""
    return touched.nodes or touched.concerns_node(node_id) or bool(touched.gone_nodes - {node_id})


class ReconcilerActor(NodeActor):
    wants_state = staticmethod(reconciler_concerned)  # RaftListeners tells it only these

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
        self.raft = raft
        self.worker = worker
        self.timeout = request_timeout
        self.planner = ReconcilePlanner(node_id, policy, stop_after_disconnect)
        self._round_active = False
        self._dirty = False
        self._wanted: Wanted | None = None
        self._actual: list[ContainerInfo] | None = None
        self._answers = 0
        self._expected_answers = 2
        self._round_failed = False
        # Docker's view, as last listed. Only Docker events, our own starts and stops, and the
        # periodic tick change it, so a round woken by the FSM reuses it instead of asking
        # Docker again on every replicated write.
        self._containers: list[ContainerInfo] | None = None
        self._containers_stale = True
        self._listed_this_round = False  # the round's listing is fresh, not the cached one
        self._listed_at = 0.0  # monotonic time the round's listing was asked for
        # The cluster id (from the Raft actor): containers are told apart by it, so no round
        # runs before it is known (a node that has not joined yet has no tasks anyway).
        self._cluster_id = ""

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
            case StateChanged(touched) if reconciler_concerned(touched, self.node_id):
                self._begin_round()
            case StateChanged():
                pass  # nothing a round reads changed
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
                if isinstance(message, _Desired):
                    self.planner.read_failed()
                self._maybe_plan()
            case _Desired(outcome):
                self._wanted = outcome.value
                self._carry_out(self.planner.wanted(outcome.value, time.monotonic()))
                self._maybe_plan()
            case _Actual(outcome):
                self._actual = self._containers = list(outcome.value)
                self._maybe_plan()
            case _Started(task_id, outcome):
                self._containers_stale = True
                self._carry_out(self._on_started(task_id, outcome))
            case _Stopped(task_id, outcome):
                self.planner.stopped(task_id)
                self._containers_stale = True
                if not outcome.ok:
                    logger.warning("reconciler: stopping {} failed: {}", task_id, outcome.message)
            case _Reported(batch, outcome):
                now = time.monotonic()
                for report, refused in batch.answers(outcome.ok, outcome.value):
                    self.planner.report_answered(report.task_id, report.key, not refused, now)
                    if refused and outcome.ok:
                        logger.debug("reconciler: report of {} refused: {}", report.task_id, refused)
                if not outcome.ok:
                    logger.debug("reconciler: reports not committed: {} {}", outcome.code, outcome.message)
            case _AbsentRunning(node_id, held, outcome) if outcome.ok:
                self._carry_out(self.planner.absent_listed(node_id, held, outcome.value, time.monotonic()))
            case _AbsentRunning(node_id, _, outcome):
                logger.debug("reconciler: cannot list the containers of {}: {}", node_id, outcome.message)
        return None

    # ------------------------------------------------------------------ rounds
    def _begin_round(self) -> None:
        if not self._cluster_id:
            # The ClusterIdentity that names the cluster starts the first round; a configuration
            # without a cluster id (a legacy cluster) never sends one, so look.
            self.raft.tell(Read(_leader_contact, self.answer(_Probe), stale=True, local=True))
            return
        if self._round_active:
            self._dirty = True
            return
        self._round_active = True
        self._dirty = False
        self._wanted = None
        self._actual = None
        self._answers = 0
        self._round_failed = False
        node_id = self.node_id

        def desired(view: StateView) -> Wanted:
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
            return Wanted(
                fsm.tasks_on_node(node_id), fsm.held_port_tasks(node_id), absent, view.leader_contact()
            )

        via_leader = self.planner.begin_round()
        read = Read(
            desired,
            self.answer(_Desired),
            stale=not via_leader,
            timeout=self.timeout,
            local=True,
            complete=True,
        )
        self.raft.tell(read)
        self._listed_this_round = self._containers_stale or self._containers is None
        if self._listed_this_round:
            self._listed_at = time.monotonic()
            self._containers_stale = False
            self._expected_answers = 2
            self.worker.tell(ListContainers(self.answer(_Actual)))
        else:
            self._expected_answers = 1
            self._actual = self._containers

    def _maybe_plan(self) -> None:
        self._answers += 1
        if self._answers < self._expected_answers:
            return  # wait for the other half
        try:
            if not self._round_failed and self._wanted is not None and self._actual is not None:
                actions = self.planner.plan(
                    self._actual, self._listed_this_round, self._listed_at, time.monotonic(), time.time()
                )
                self._carry_out(actions)
        finally:
            self._end_round()

    def _end_round(self) -> None:
        self._round_active = False
        if self._dirty:
            self._begin_round()

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

    def _on_started(self, task_id: str, outcome: Outcome) -> list[plan.Action]:
        now, wall = time.monotonic(), time.time()
        if outcome.ok:
            return self.planner.started(task_id, now, wall)
        error = outcome.value if isinstance(outcome.value, PortInUseError) else None
        taken = plan.PortTaken(error.host_ip, error.port) if error is not None else None
        return self.planner.started(task_id, now, wall, error=outcome.message or "start failed", taken=taken)

    # ------------------------------------------------------------------ carrying out
    def _carry_out(self, actions: list[plan.Action]) -> None:
        reports: list[plan.ReportState] = []
        again = False
        for action in actions:
            match action:
                case plan.Note(level, text):
                    logger.log(level.upper(), "reconciler: {}", text)
                case plan.StartContainer(task):
                    task_id = task.id
                    self.worker.tell(StartContainer(task, self.answer(lambda o, t=task_id: _Started(t, o))))
                case plan.StopContainer(task_id, keep, grace):
                    callback = self.answer(lambda o, t=task_id: _Stopped(t, o))
                    self.worker.tell(StopContainer(task_id, callback, remove=not keep, grace=grace))
                case plan.ReportState() as report:
                    reports.append(report)
                case plan.ReleasePorts(node_id, task_ids):
                    self._propose(
                        fsm_commands.ReleasePorts(node_id=node_id, task_ids=task_ids, at=time.time())
                    )
                case plan.PortConflict(task_id, host_ip, port, reason):
                    self._propose(
                        fsm_commands.PortConflict(
                            task_id=task_id,
                            node_id=self.node_id,
                            host_ip=host_ip,
                            port=port,
                            reason=reason,
                            at=time.time(),
                        )
                    )
                case plan.ListAbsent(node_id, held):
                    self.worker.tell(
                        ListRunningOf(
                            node_id, self.answer(lambda o, n=node_id, h=held: _AbsentRunning(n, h, o))
                        )
                    )
                case plan.RoundAgain():
                    again = True
        # One entry for the pass's reports, proposed before the next round's read.
        for batch in plan.report_batches(reports):
            self._propose(
                batch.command(self.node_id, time.time()), self.answer(lambda o, b=batch: _Reported(b, o))
            )
        if again:
            self._begin_round()

    def _propose(self, command: fsm_commands.Command, callback: Callback | None = None) -> None:
        self.raft.tell(
            Propose(fsm_commands.encode_command(command), callback or _log_failure, timeout=self.timeout)
        )


def _leader_contact(view: StateView) -> LeaderContact:
    return view.leader_contact()


def _log_failure(outcome: Outcome) -> None:
    if not outcome.ok:
        logger.debug("reconciler: report not committed: {} {}", outcome.code, outcome.message)
