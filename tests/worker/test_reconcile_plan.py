"""ReconcilePlanner (orion/worker/reconcile_plan.py), the reconciler's decisions without Docker
or Raft: tasks of the FSM and containers in, starts, stops, reports and releases out."""

from __future__ import annotations

import msgspec
import pytest

from orion.cluster.leader_contact import LeaderContact
from orion.fsm.commands import decode_command, encode_command
from orion.fsm.results import ReportResults
from orion.model import Desired, Task, TaskState
from orion.worker.reconcile_plan import (
    REPORT_COMMITTED_WAIT_S,
    REPORT_RETRY_S,
    REPORTS_PER_ENTRY,
    Action,
    ListAbsent,
    Note,
    PortConflict,
    PortTaken,
    ReconcilePlanner,
    ReleasePorts,
    ReportState,
    RoundAgain,
    StartContainer,
    StopContainer,
    Wanted,
    report_batches,
    report_key,
)
from orion.worker.restart_policy import RestartPolicy
from orion.worker.types import ContainerInfo

NODE = "n1"
WALL = 1_700_000_000.0
POLICY = RestartPolicy(condition="on-failure", max_attempts=2, interval=300.0, base=1.0, cap=30.0)


def task(task_id: str, state: TaskState = TaskState.SCHEDULED, **fields: object) -> Task:
    fields.setdefault("node_id", NODE)
    return Task(id=task_id, name=task_id, image="img", state=state, **fields)


def container(task_id: str, status: str = "running", cid: str = "", **fields: object) -> ContainerInfo:
    return ContainerInfo(
        task_id=task_id,
        node_id=NODE,
        container_id=cid or f"c-{task_id}",
        name=f"orion-{NODE}-{task_id}",
        image="img",
        status=status,
        **fields,
    )


def contact(last_heard: float, reachable: int = 3, members: int = 3) -> LeaderContact:
    return LeaderContact(
        last_heard=last_heard,
        leader_id="n2",
        members=members,
        members_reachable=reachable,
        voters=members,
        voters_reachable=reachable,
        cluster_id="c",
    )


def round_(
    planner: ReconcilePlanner,
    tasks: list[Task],
    containers: list[ContainerInfo],
    now: float,
    *,
    held_here: list[str] | None = None,
    leader: LeaderContact | None = None,
    listed_at: float | None = None,
    fresh: bool = True,
) -> list[Action]:
    planner.begin_round()
    actions = planner.wanted(Wanted(tasks, held_here or [], {}, leader), now)
    listed = now if listed_at is None else listed_at
    return actions + planner.plan(containers, fresh, listed, now, WALL + now)


def of(kind: type, actions: list[Action]) -> list:
    return [a for a in actions if isinstance(a, kind)]


def test_a_task_without_a_container_starts_once_and_reports_running_when_started() -> None:
    planner = ReconcilePlanner(NODE, POLICY)
    t1 = task("t1")
    actions = round_(planner, [t1], [], 10.0)
    assert of(StartContainer, actions) == [StartContainer(t1)]
    # Still starting: the next round starts nothing more.
    assert of(StartContainer, round_(planner, [t1], [], 10.5)) == []
    done = planner.started("t1", 11.0, WALL + 11.0)
    assert of(ReportState, done) == [ReportState("t1", TaskState.RUNNING, "", 0, None)]
    # The same report is not sent again while on its way; refused (or timed out), it is sent
    # again REPORT_RETRY_S after the first while the FSM lacks it.
    running = [container("t1")]
    assert of(ReportState, round_(planner, [t1], running, 12.0)) == []
    assert of(ReportState, round_(planner, [t1], running, 11.0 + 2 * REPORT_RETRY_S)) == []  # on its way
    planner.report_answered("t1", report_key(TaskState.RUNNING, 0, ""), committed=False, now=12.5)
    again = round_(planner, [t1], running, 11.0 + REPORT_RETRY_S)
    assert of(ReportState, again) == [ReportState("t1", TaskState.RUNNING, "", 0, None)]
    # Once the FSM says Running, nothing to do.
    assert round_(planner, [task("t1", TaskState.RUNNING)], running, 30.0) == []


def test_a_committed_report_waits_for_the_replica_instead_of_becoming_another_entry() -> None:
    # A lagging replica (a slow node; hundreds of hollow ones) once turned every round into a
    # new log entry per task: the report went again every REPORT_RETRY_S until the local FSM
    # showed it, though the cluster had committed it.
    planner = ReconcilePlanner(NODE, POLICY)
    t1 = task("t1")
    round_(planner, [t1], [], 10.0)
    assert of(ReportState, planner.started("t1", 11.0, WALL + 11.0))
    running = [container("t1")]
    key = report_key(TaskState.RUNNING, 0, "")
    planner.report_answered("t1", key, committed=True, now=11.5)
    for now in (11.0 + REPORT_RETRY_S, 20.0, 11.4 + REPORT_COMMITTED_WAIT_S):
        assert of(ReportState, round_(planner, [t1], running, now)) == []
    # Past the backstop the replica still lacks it: sent again (the same state: harmless).
    late = round_(planner, [t1], running, 11.5 + REPORT_COMMITTED_WAIT_S)
    assert of(ReportState, late) == [ReportState("t1", TaskState.RUNNING, "", 0, None)]


def test_an_answer_to_an_older_report_of_the_task_changes_nothing() -> None:
    planner = ReconcilePlanner(NODE, RestartPolicy(max_attempts=0))
    t1 = task("t1", TaskState.RUNNING)
    exited = [container("t1", "exited", exit_code=1)]
    (failed,) = of(ReportState, round_(planner, [t1], exited, 5.0))
    planner.report_answered("t1", report_key(TaskState.RUNNING, 0, ""), committed=True, now=5.5)
    # The FAILED report is still on its way: not sent twice, and not taken as committed.
    assert of(ReportState, round_(planner, [t1], exited, 5.0 + REPORT_RETRY_S)) == []
    planner.report_answered("t1", report_key(failed.state, 0, failed.reason), committed=False, now=6.0)
    assert of(ReportState, round_(planner, [t1], exited, 5.0 + REPORT_RETRY_S)) == [failed]


def test_other_nodes_tasks_and_tasks_to_stop_are_not_started() -> None:
    planner = ReconcilePlanner(NODE, POLICY)
    elsewhere = task("t1", node_id="n2")
    stopping = task("t2", desired=Desired.STOP)
    pending = task("t3", TaskState.PENDING)
    assert of(StartContainer, round_(planner, [elsewhere, stopping, pending], [], 1.0)) == []


def test_an_exit_follows_the_restart_policy_with_its_backoff() -> None:
    planner = ReconcilePlanner(NODE, POLICY)
    t1 = task("t1", TaskState.RUNNING)
    exited = [container("t1", "exited", exit_code=3)]
    actions = round_(planner, [t1], exited, 100.0)
    reports = of(ReportState, actions)
    assert len(reports) == 1 and reports[0].state == TaskState.SCHEDULED
    assert reports[0].restarts == 1 and reports[0].exit_code == 3
    assert reports[0].reason == "exited with code 3; restart 1/2 in 1s"
    assert reports[0].restart_times == [WALL + 100.0 + 1.0]
    assert of(StartContainer, actions) == []
    rescheduled = task("t1", TaskState.SCHEDULED, restarts=1, restart_times=[WALL + 101.0])
    # The same exit is handled once; before the delay is over nothing starts.
    assert of(StartContainer, round_(planner, [rescheduled], exited, 100.5)) == []
    assert of(StartContainer, round_(planner, [rescheduled], exited, 101.0)) == [StartContainer(rescheduled)]


def test_an_exit_with_no_restarts_left_fails_the_task_and_never_starts_it_again() -> None:
    planner = ReconcilePlanner(NODE, RestartPolicy(max_attempts=0))
    t1 = task("t1", TaskState.RUNNING)
    exited = [container("t1", "exited", exit_code=1)]
    actions = round_(planner, [t1], exited, 5.0)
    assert of(ReportState, actions) == [
        ReportState("t1", TaskState.FAILED, "exited with code 1; gave up after 0 restart(s) in 5m", 0, 1)
    ]
    # While the FSM does not show it yet, a report that failed is sent again (after the retry
    # time), and nothing is started.
    planner.report_answered(
        "t1", report_key(TaskState.FAILED, 0, actions[0].reason), committed=False, now=6.0
    )
    later = round_(planner, [t1], exited, 5.0 + REPORT_RETRY_S)
    assert [r.state for r in of(ReportState, later)] == [TaskState.FAILED]
    assert of(StartContainer, later) == []


def test_a_container_removed_outside_orion_is_a_restart_with_that_reason() -> None:
    planner = ReconcilePlanner(NODE, POLICY)
    t1 = task("t1")
    round_(planner, [t1], [], 1.0)
    planner.started("t1", 2.0, WALL)
    running = task("t1", TaskState.RUNNING)
    # A listing asked for before the start finished, or a cached one, may lack it: not a
    # removal (a start, which adopts the container Docker has).
    listings: list[dict] = [{"listed_at": 1.5}, {"fresh": False}]
    for listing in listings:
        stale = round_(planner, [running], [], 3.0, **listing)
        assert of(ReportState, stale) == [] and of(StartContainer, stale) == [StartContainer(running)]
        planner.started("t1", 3.0, WALL)
    actions = round_(planner, [running], [], 4.0, listed_at=3.5)
    reports = of(ReportState, actions)
    assert len(reports) == 1 and reports[0].state == TaskState.SCHEDULED
    assert reports[0].reason.startswith("container removed outside Orion; restart 1/2")


def test_after_a_node_restart_a_running_task_missing_from_docker_was_removed() -> None:
    planner = ReconcilePlanner(NODE, POLICY)
    reports = of(ReportState, round_(planner, [task("t1", TaskState.RUNNING)], [], 1.0))
    assert [r.reason.split(";")[0] for r in reports] == ["container removed outside Orion"]


def test_containers_of_ended_tasks_stop_and_stay_and_unknown_ones_go_with_their_grace() -> None:
    planner = ReconcilePlanner(NODE, POLICY)
    stopped = task("t1", TaskState.STOPPED, desired=Desired.STOP, stop_grace=7.5)
    failed_done = task("t2", TaskState.FAILED)
    moved = task("t3", TaskState.RUNNING, node_id="n2", stop_grace=3.0)
    containers = [container("t1"), container("t2", "exited", exit_code=1), container("t3"), container("t4")]
    actions = round_(planner, [stopped, failed_done, moved], containers, 1.0)
    assert of(StopContainer, actions) == [
        StopContainer("t1", keep=True, grace=7.5),  # ended: stopped, kept for inspection
        StopContainer("t3", keep=False, grace=3.0),  # runs elsewhere now
        StopContainer("t4", keep=False, grace=None),  # unknown to the FSM: the node's default
    ]
    # Being stopped: not stopped twice.
    assert of(StopContainer, round_(planner, [stopped, failed_done, moved], containers, 2.0)) == []
    planner.stopped("t1")
    assert of(StopContainer, round_(planner, [stopped], [container("t1", "exited", exit_code=0)], 3.0)) == []


def test_a_draining_task_keeps_running_until_the_controller_stops_it() -> None:
    planner = ReconcilePlanner(NODE, POLICY)
    draining = task("t1", TaskState.RUNNING, drain_at=WALL, stop_grace=5.0, service="web", slot=1)
    assert round_(planner, [draining], [container("t1")], 1.0) == []
    stopped = msgspec.structs.replace(draining, state=TaskState.STOPPED, desired=Desired.STOP)
    assert of(StopContainer, round_(planner, [stopped], [container("t1")], 2.0)) == [
        StopContainer("t1", keep=True, grace=5.0)
    ]


def test_a_container_publishing_other_ports_than_assigned_is_replaced() -> None:
    planner = ReconcilePlanner(NODE, POLICY)
    t1 = task("t1", TaskState.RUNNING, host_ports={"80/tcp": 31000}, host_ip="127.0.0.1")
    actions = round_(planner, [t1], [container("t1", host_ports={"80/tcp": 30000})], 1.0)
    assert of(StopContainer, actions) == [StopContainer("t1", keep=False, grace=None)]
    assert of(StartContainer, actions) == []
    assert round_(planner, [t1], [container("t1", host_ports={"80/tcp": 31000})], 2.0) == []


def test_a_container_being_removed_is_left_alone() -> None:
    planner = ReconcilePlanner(NODE, POLICY)
    assert round_(planner, [task("t1", TaskState.RUNNING)], [container("t1", "removing")], 1.0) == []


def test_start_failures_report_failed_or_a_port_conflict() -> None:
    planner = ReconcilePlanner(NODE, POLICY)
    t1, t2, t3 = task("t1"), task("t2"), task("t3")
    round_(planner, [t1, t2, t3], [], 1.0)
    taken = planner.started(
        "t1", 2.0, WALL, error="port 8080 on 127.0.0.1 in use", taken=PortTaken("127.0.0.1", 8080)
    )
    assert of(PortConflict, taken) == [
        PortConflict("t1", "127.0.0.1", 8080, "port 8080 on 127.0.0.1 in use on n1; placing it again")
    ]
    assert of(ReportState, taken) == []
    failed = planner.started("t2", 2.0, WALL, error="no such image")
    assert of(ReportState, failed) == [ReportState("t2", TaskState.FAILED, "no such image", 0, None)]
    planner.begin_round()  # a round began: the outcome of t3 finds no tasks read yet
    assert planner.started("t3", 2.0, WALL) == [RoundAgain()]


def test_ports_held_here_are_released_once_no_container_of_theirs_runs_at_most_every_retry() -> None:
    planner = ReconcilePlanner(NODE, POLICY)
    gone = task("gone", TaskState.RUNNING, node_id="n2")
    actions = round_(planner, [], [container("gone")], 1.0, held_here=["gone", "free"])
    assert of(ReleasePorts, actions) == [ReleasePorts(NODE, ["free"])]  # "gone" still runs here
    assert of(StopContainer, actions) == [StopContainer("gone", keep=False, grace=None)]
    assert of(ReleasePorts, round_(planner, [gone], [], 2.0, held_here=["gone", "free"])) == []  # stopping
    planner.stopped("gone")
    assert of(ReleasePorts, round_(planner, [gone], [], 2.5, held_here=["gone", "free"])) == [
        ReleasePorts(NODE, ["gone"])
    ]
    later = round_(planner, [gone], [], 1.0 + REPORT_RETRY_S, held_here=["gone", "free"])
    assert of(ReleasePorts, later) == [ReleasePorts(NODE, ["free"])]


def test_absent_nodes_sharing_the_engine_are_listed_at_most_every_retry_and_their_gone_ports_released() -> (
    None
):
    planner = ReconcilePlanner(NODE, POLICY)
    planner.begin_round()
    wanted = Wanted([], [], {"n9": ["a", "b"]}, None)
    assert planner.wanted(wanted, 1.0) == [ListAbsent("n9", ["a", "b"])]
    assert planner.wanted(wanted, 2.0) == []
    assert planner.wanted(wanted, 1.0 + REPORT_RETRY_S) == [ListAbsent("n9", ["a", "b"])]
    assert of(ReleasePorts, planner.absent_listed("n9", ["a", "b"], {"a"}, 5.0)) == [
        ReleasePorts("n9", ["b"])
    ]


def test_cut_off_from_the_leader_the_node_stops_its_tasks_then_resumes_through_the_leader() -> None:
    planner = ReconcilePlanner(NODE, POLICY, stop_after_disconnect=10.0)
    t1 = task("t1", TaskState.RUNNING, stop_grace=2.0)
    t2 = task("t2")
    running = [container("t1")]
    # Silent for 11 s and reaching one member of three: stop, keep, start nothing.
    actions = round_(planner, [t1, t2], running, 111.0, leader=contact(100.0, reachable=1))
    assert of(StopContainer, actions) == [StopContainer("t1", keep=True, grace=2.0)]
    assert of(StartContainer, actions) == [] and of(ReportState, actions) == []
    assert any(isinstance(a, Note) and "stopping this node's tasks (t1)" in a.text for a in actions)
    planner.stopped("t1")
    halted = [container("t1", "exited", exit_code=143)]
    # Peers back, leader still silent: stay stopped, report nothing (the exit is not a crash).
    waiting = round_(planner, [t1, t2], halted, 120.0, leader=contact(100.0, reachable=3))
    assert [type(a) for a in waiting] == [Note]  # only the warning that the cluster has no leader
    # The leader speaks again: first read through it.
    assert planner.begin_round() is False
    planner.wanted(Wanted([t1, t2], [], {}, contact(121.0)), 121.0)
    assert planner.plan(halted, True, 121.0, 121.0, WALL) == [RoundAgain()]
    assert planner.begin_round() is True
    planner.wanted(Wanted([t1, t2], [], {}, contact(121.2)), 122.0)
    actions = planner.plan(halted, True, 122.0, 122.0, WALL)
    assert of(ReportState, actions) == [
        ReportState("t1", TaskState.SCHEDULED, "stopped: no contact with the leader for 21s", 0, None)
    ]
    assert of(StartContainer, actions) == [StartContainer(t1), StartContainer(t2)]
    assert planner.begin_round() is False  # back to local reads


def test_a_failed_read_through_the_leader_goes_back_to_local_reads() -> None:
    planner = ReconcilePlanner(NODE, POLICY, stop_after_disconnect=10.0)
    round_(planner, [], [container("t1")], 111.0, leader=contact(100.0, reachable=1))
    planner.begin_round()
    planner.wanted(Wanted([], [], {}, contact(121.0)), 121.0)
    assert planner.plan([], True, 121.0, 121.0, WALL) == [RoundAgain()]
    assert planner.begin_round() is True
    planner.read_failed()
    assert planner.begin_round() is False


def test_a_leaderless_cluster_that_still_sees_itself_keeps_its_tasks_and_says_so_once() -> None:
    planner = ReconcilePlanner(NODE, POLICY, stop_after_disconnect=10.0)
    t1 = task("t1", TaskState.RUNNING)
    running = [container("t1")]
    first = round_(planner, [t1], running, 111.0, leader=contact(100.0, reachable=3))
    assert of(StopContainer, first) == []
    notes = of(Note, first)
    assert len(notes) == 1 and notes[0].level == "warning" and "keep running" in notes[0].text
    assert round_(planner, [t1], running, 112.0, leader=contact(100.0, reachable=3)) == []


def test_plan_needs_the_rounds_read_first() -> None:
    planner = ReconcilePlanner(NODE, POLICY)
    planner.begin_round()
    with pytest.raises(ValueError, match="wanted"):
        planner.plan([], True, 0.0, 0.0, WALL)


def test_a_pass_reports_in_one_entry_and_each_report_hears_its_own_answer() -> None:
    reports = [ReportState(f"t{i}", TaskState.RUNNING, "", 0, None) for i in range(REPORTS_PER_ENTRY + 2)]
    batches = report_batches(reports)
    assert [len(b.reports) for b in batches] == [REPORTS_PER_ENTRY, 2]  # a command stays small
    assert [r for b in batches for r in b.reports] == reports
    batch = batches[1]
    command = batch.command("n1", WALL)
    assert decode_command(encode_command(command)) == command
    assert (command.node_id, [item.task_id for item in command.reports]) == (
        "n1",
        [r.task_id for r in batch.reports],
    )
    # Committed: each as the FSM applied it; not committed: all of them.
    refused = ReportResults([(1, "invalid", "stale report")])
    assert [why for _, why in batch.answers(True, refused)] == ["", "stale report"]
    assert [why for _, why in batch.answers(False, None)] == ["not committed", "not committed"]
    assert report_batches([]) == []
