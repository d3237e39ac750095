"""A task's health from the results of its checks: the pure core of the health prober.

The node running a task checks it (orion/worker/health_probe.py, driven by
orion/actors/health_actor.py) and feeds each result here with the times the check began and
ended. The tracker applies the check's settings, as Docker's HEALTHCHECK does:

- ``interval``: the next check begins ``interval`` seconds after the last one ended; the first
  begins as soon as the task is tracked (a new task becomes available at its first pass, not
  an interval later). One check at a time per task: none is due while one is in flight.
- ``timeout``: a check that took longer counts as failed, whatever it answered.
- ``retries``: that many failures in a row turn a task unhealthy (from starting or healthy).
- ``start_period``: failures of checks begun within it after the task started do not count,
  until its first pass (from then on every failure counts).
- one pass turns a starting or unhealthy task healthy.

Only transitions come out (``record`` returns one, else None): they are what goes through Raft.
``NodeHealth`` keeps a node's tracker in step with the tasks the cluster records for the node,
and says which reports to propose.

Pure: every time is an argument (any one clock, the caller's); no threads, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from orion.model import Health, HealthCheck, Task, TaskState


@dataclass(frozen=True, slots=True)
class Probe:
    """A check handed out by ``begin``: run it, then give its result to ``record``.
    ``run`` tells a result of an earlier run of the task (restarted meanwhile) from a current one."""

    task_id: str
    run: int
    check: HealthCheck
    began: float


@dataclass(frozen=True, slots=True)
class CheckResult:
    passed: bool
    detail: str  # why it failed ("connection refused", "status 500"), or what it saw
    ended: float


@dataclass(frozen=True, slots=True)
class Transition:
    task_id: str
    health: Health
    reason: str


@dataclass(slots=True)
class _Tracked:
    check: HealthCheck
    run: int
    started: float  # when the task started running (start_period counts from here)
    health: Health
    next_at: float
    in_flight: bool = False
    failures: int = 0  # counted failures in a row
    passed_once: bool = False


class HealthTracker:
    """Health of the tasks a node checks, keyed by task id."""

    def __init__(self) -> None:
        self._tasks: dict[str, _Tracked] = {}
        self._runs = 0

    def track(
        self, task_id: str, check: HealthCheck, started: float, health: Health = Health.STARTING
    ) -> bool:
        """Start checking ``task_id`` (running since ``started``) from ``health`` (what the
        cluster last recorded; NONE counts as STARTING). A task already tracked with the same
        check is left as it is; a new check starts it afresh. True when it was (re)started."""
        tracked = self._tasks.get(task_id)
        if tracked is not None and tracked.check == check:
            return False
        self._runs += 1
        start = Health.STARTING if health == Health.NONE else Health(health)
        self._tasks[task_id] = _Tracked(check, self._runs, started, start, next_at=started)
        return True

    def restart(self, task_id: str, check: HealthCheck, started: float) -> None:
        """The task's container started again (a restart): checked afresh from STARTING."""
        self._tasks.pop(task_id, None)
        self.track(task_id, check, started, Health.STARTING)

    def forget(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)

    def tracked(self) -> list[str]:
        return list(self._tasks)

    def health(self, task_id: str) -> Health | None:
        """The tracker's view of the task, None when it is not tracked."""
        tracked = self._tasks.get(task_id)
        return None if tracked is None else tracked.health

    def due(self, now: float) -> list[str]:
        """Tasks whose next check should begin now (none with a check in flight)."""
        return [task_id for task_id, t in self._tasks.items() if not t.in_flight and t.next_at <= now]

    def next_due(self) -> float | None:
        """The earliest time a check becomes due (None: nothing tracked, or all in flight)."""
        waiting = [t.next_at for t in self._tasks.values() if not t.in_flight]
        return min(waiting) if waiting else None

    def begin(self, task_id: str, now: float) -> Probe:
        """Hand out the task's check (KeyError if not tracked; ValueError if one is in flight)."""
        tracked = self._tasks[task_id]
        if tracked.in_flight:
            raise ValueError(f"a check of {task_id} is already in flight")
        tracked.in_flight = True
        return Probe(task_id, tracked.run, tracked.check, now)

    def record(self, probe: Probe, result: CheckResult) -> Transition | None:
        """Take a check's result; the transition it causes, if any. Results of a task no
        longer tracked, or of an earlier run of it, are dropped."""
        tracked = self._tasks.get(probe.task_id)
        if tracked is None or tracked.run != probe.run:
            return None
        tracked.in_flight = False
        tracked.next_at = result.ended + tracked.check.interval
        took = result.ended - probe.began
        passed = result.passed
        detail = result.detail
        if passed and took > tracked.check.timeout:
            passed = False
            detail = f"no answer within {tracked.check.timeout:g}s"
        if passed:
            tracked.failures = 0
            tracked.passed_once = True
            if tracked.health != Health.HEALTHY:
                tracked.health = Health.HEALTHY
                return Transition(probe.task_id, Health.HEALTHY, _describe(tracked.check, "passed", detail))
            return None
        in_start_period = probe.began < tracked.started + tracked.check.start_period
        if in_start_period and not tracked.passed_once:
            return None
        tracked.failures += 1
        if tracked.failures >= tracked.check.retries and tracked.health != Health.UNHEALTHY:
            tracked.health = Health.UNHEALTHY
            what = f"failed {tracked.failures} time(s) in a row"
            return Transition(probe.task_id, Health.UNHEALTHY, _describe(tracked.check, what, detail))
        return None


def _describe(check: HealthCheck, what: str, detail: str) -> str:
    """ "http check of :80/health failed 3 time(s) in a row: status 500"."""
    if check.kind == "http":
        target = f" of :{check.port}{check.path}"
    elif check.kind == "tcp":
        target = f" of :{check.port}"
    else:
        target = f" ({' '.join(check.command)})" if check.command else ""
    return f"{check.kind} check{target} {what}" + (f": {detail}" if detail else "")


REPORT_RETRY_S = 3.0  # a report the FSM does not show after this long is sent again


@dataclass(frozen=True, slots=True)
class HealthReport:
    """A ``ReportHealth`` to propose: the node's view differs from the cluster's."""

    task_id: str
    health: Health
    reason: str


class NodeHealth:
    """The health of the tasks one node runs, against what the cluster records.

    ``sync`` takes the FSM's tasks of this node: Running tasks with a check are tracked (from
    the health the cluster records; afresh from STARTING when the task restarted, which
    ``restarts`` tells), others are forgotten. Reports go out on transitions, and again
    (at most every ``retry`` seconds) while the cluster's record differs from the tracker's: a
    lost proposal or a node that restarted is thus corrected, and nothing is sent while they
    agree. NONE in the record counts as STARTING (neither is available).
    """

    def __init__(self, node_id: str, retry: float = REPORT_RETRY_S) -> None:
        self.node_id = node_id
        self.retry = retry
        self.tracker = HealthTracker()
        self._tasks: dict[str, Task] = {}
        self._runs: dict[str, int] = {}  # task id -> its ``restarts`` when tracking began
        self._reasons: dict[str, str] = {}  # task id -> why the tracker's health is what it is
        self._sent: dict[str, tuple[Health, float]] = {}

    def sync(self, tasks: list[Task], now: float) -> list[HealthReport]:
        checked = {
            t.id: t
            for t in tasks
            if t.node_id == self.node_id and t.state == TaskState.RUNNING and t.health_check is not None
        }
        for task_id in [t for t in self._tasks if t not in checked]:
            self._forget(task_id)
        # A task between two runs (Scheduled after an exit) keeps its run count, so its next
        # run is known for a new one: checked afresh, not trusted to be as healthy as the last.
        between_runs = {t.id for t in tasks if t.node_id == self.node_id and t.state == TaskState.SCHEDULED}
        for task_id in [t for t in self._runs if t not in checked and t not in between_runs]:
            del self._runs[task_id]
        reports: list[HealthReport] = []
        for task in checked.values():
            check = task.health_check
            assert check is not None
            if task.id in self._runs and self._runs[task.id] != task.restarts:
                self.tracker.restart(task.id, check, now)
                self._reasons[task.id] = "its container started again"
            elif self.tracker.track(task.id, check, now, Health(task.health)):
                self._reasons.pop(task.id, None)
            self._runs[task.id] = task.restarts
            self._tasks[task.id] = task
            reports.extend(self._correct(task, now))
        return reports

    def task(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def due(self, now: float) -> list[tuple[Probe, Task]]:
        """The checks to begin now, each with the task as last read (its host ports)."""
        return [(self.tracker.begin(task_id, now), self._tasks[task_id]) for task_id in self.tracker.due(now)]

    def record(self, probe: Probe, result: CheckResult) -> list[HealthReport]:
        transition = self.tracker.record(probe, result)
        if transition is None:
            return []
        self._reasons[transition.task_id] = transition.reason
        self._sent[transition.task_id] = (transition.health, result.ended)
        return [HealthReport(transition.task_id, transition.health, transition.reason)]

    def _correct(self, task: Task, now: float) -> list[HealthReport]:
        mine = self.tracker.health(task.id)
        recorded = Health.STARTING if task.health == Health.NONE else Health(task.health)
        if mine is None or mine == recorded:
            return []
        sent = self._sent.get(task.id)
        if sent is not None and sent[0] == mine and now - sent[1] < self.retry:
            return []  # on its way
        self._sent[task.id] = (mine, now)
        return [HealthReport(task.id, mine, self._reasons.get(task.id, ""))]

    def _forget(self, task_id: str) -> None:
        self.tracker.forget(task_id)
        for book in (self._tasks, self._reasons, self._sent):
            book.pop(task_id, None)
