"""check_services catches what it claims to: each rule fed a history and a final state that
break it, and a converged service passes."""

from __future__ import annotations

from orion.model import Desired, Task, TaskState
from orion.nemesis import checker
from orion.nemesis.history import History, Op, OpKind, Outcome
from orion.services.spec import Service, ServiceSpec, TaskTemplate

REV = "REV"


def history(*ops: Op) -> History:
    h = History()
    for op in ops:
        h.record(op)
    return h


def op(kind: OpKind, outcome: Outcome = Outcome.OK, start: float = 0.0, **kw: object) -> Op:
    return Op(client=0, kind=kind, service="web", start=start, end=start + 0.5, outcome=outcome, **kw)


def service(rev: str, replicas: int, template_version: int = 1) -> Service:
    template = TaskTemplate(image="img", env={REV: rev})
    spec = ServiceSpec(name="web", template=template, replicas=replicas)
    return Service(name="web", spec=spec, version=template_version, template_version=template_version)


def task(
    task_id: str, rev: str, version: int = 1, node: str = "n1", state: str = TaskState.RUNNING, **kw: object
) -> Task:
    return Task(
        id=task_id, name="web.1", image="img", state=state, node_id=node, service="web",
        version=version, env={REV: rev}, **kw,
    )  # fmt: skip


def check(h: History, services: list[Service], tasks: list[Task], running: dict[str, list[str]]) -> list[str]:
    return [v.check for v in checker.check_services(h, services, {"web": tasks}, running, REV)]


CREATED = op(OpKind.SERVICE_CREATE, rev="r1", replicas=2)
CREATED_ONE = op(OpKind.SERVICE_CREATE, rev="r1", replicas=1)


def test_a_converged_service_passes() -> None:
    tasks = [task("a", "r1"), task("b", "r1", node="n2")]
    assert check(history(CREATED), [service("r1", 2)], tasks, {"a": ["n1"], "b": ["n2"]}) == []


def test_an_acknowledged_service_must_exist() -> None:
    assert check(history(CREATED), [], [], {}) == ["service_lost"]
    refused = op(OpKind.SERVICE_CREATE, Outcome.ERROR, rev="r1", replicas=2)
    assert check(history(refused), [], [], {}) == []


def test_a_revision_never_asked_for_or_refused_is_a_violation() -> None:
    refused = op(OpKind.SERVICE_UPDATE, Outcome.ERROR, start=1.0, rev="r2")
    tasks = [task("a", "r1"), task("b", "r2", version=2, node="n2", state=TaskState.STOPPED)]
    found = check(history(CREATED_ONE, refused), [service("r1", 1)], tasks, {"a": ["n1"]})
    assert found == ["service_version"]
    unknown = op(OpKind.SERVICE_UPDATE, Outcome.UNKNOWN, start=1.0, rev="r2")
    assert check(history(CREATED_ONE, unknown), [service("r1", 1)], tasks, {"a": ["n1"]}) == []


def test_one_version_means_one_revision() -> None:
    update = op(OpKind.SERVICE_UPDATE, start=1.0, rev="r2")
    tasks = [task("a", "r1"), task("b", "r2", version=1, node="n2", state=TaskState.STOPPED)]
    assert check(history(CREATED_ONE, update), [service("r1", 1)], tasks, {"a": ["n1"]}) == [
        "service_version"
    ]


def test_the_count_is_the_last_acknowledged_or_a_possible_one() -> None:
    scaled = op(OpKind.SERVICE_SCALE, start=1.0, replicas=1)
    tasks = [task("a", "r1"), task("b", "r1", node="n2")]
    running = {"a": ["n1"], "b": ["n2"]}
    assert check(history(CREATED, scaled), [service("r1", 2)], tasks, running) == ["service_replicas"]
    maybe = op(OpKind.SERVICE_SCALE, Outcome.UNKNOWN, start=1.0, replicas=1)
    assert check(history(CREATED, maybe), [service("r1", 2)], tasks, running) == []
    assert check(history(CREATED, maybe), [service("r1", 1)], tasks[:1], {"a": ["n1"]}) == []


def test_not_converged_states_are_violations() -> None:
    h = history(CREATED)
    one = [task("a", "r1")]
    assert check(h, [service("r1", 2)], one, {"a": ["n1"]}) == ["service_converged"]  # too few
    pending = [task("a", "r1"), task("b", "r1", state=TaskState.PENDING, node="")]
    assert check(h, [service("r1", 2)], pending, {"a": ["n1"]}) == ["service_converged"]
    draining = [task("a", "r1"), task("b", "r1", node="n2", drain_at=5.0)]
    assert check(h, [service("r1", 2)], draining, {"a": ["n1"], "b": ["n2"]}) == ["service_converged"]
    two = [task("a", "r1"), task("b", "r1", node="n2")]
    assert check(h, [service("r1", 2)], two, {"a": ["n1"], "b": ["n1"]}) == ["service_converged"]
    stopped = [*two, task("c", "r1", node="n3", state=TaskState.STOPPED, desired=Desired.STOP)]
    running = {"a": ["n1"], "b": ["n2"], "c": ["n3"]}
    assert check(h, [service("r1", 2)], stopped, running) == ["service_converged"]  # an extra container


def test_tasks_of_an_older_template_are_not_converged() -> None:
    update = op(OpKind.SERVICE_UPDATE, start=1.0, rev="r2")
    tasks = [task("a", "r1"), task("b", "r2", version=2, node="n2")]
    found = check(
        history(CREATED, update), [service("r2", 2, template_version=2)], tasks, {"a": ["n1"], "b": ["n2"]}
    )
    assert found == ["service_converged"]
