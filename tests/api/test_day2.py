"""Day-2 operations through every front end (client, CLI, REST) over the real API actor and
the real state machine (tests/api/fsm_raft.py stands in for consensus): task ids by prefix or
name, ``task ls`` filters and ``--watch``, node drain and eligibility in ``orion nodes``."""

from __future__ import annotations

import io
import json
import time

import pytest

from orion import cli, cli_ops
from orion.client import InvalidRequest, NotFound
from orion.fsm.commands import AssignTasks, ReportTaskState, ServiceStep, UpsertNode
from orion.model import NodeMeta, Task, TaskState
from orion.services.controller import new_task
from tests.api.service_stack import Stack, stack_fixture  # noqa: F401  (the fixture)
from tests.api.test_http import call


def run(stack: Stack, task_id: str, node: str = "n1") -> None:
    """As the scheduler and the node would: placed on ``node``, then Running."""
    stack.raft.commit(AssignTasks(at=2.0, assignments=[(task_id, node)])).get()
    stack.raft.commit(ReportTaskState(at=3.0, task_id=task_id, node_id=node, state=TaskState.RUNNING)).get()


def orion(stack: Stack, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["--endpoints", stack.endpoint, *args])
    out, err = capsys.readouterr()
    return code, out, err


def service_task(stack: Stack, slot: int, task_id: str) -> Task:
    """A task of service "web" as its controller would add it."""
    service = stack.client.service("web")
    task = new_task(service, slot, task_id, time.time())
    step = ServiceStep(at=time.time(), name="web", expected_version=service.version, add=[task])
    stack.raft.commit(step).get()
    return task


# ---------------------------------------------------------------------- ids and names


def test_a_task_is_found_by_id_unique_prefix_or_name(stack: Stack) -> None:
    client = stack.client
    first = client.submit("busybox", name="alpha", id="abcd1234aaaa")
    client.submit("busybox", name="beta", id="abcd5678bbbb")
    assert client.task("abcd1234aaaa").name == "alpha"
    assert client.task("abcd1").id == first.id  # unique prefix
    assert client.task("alpha").id == first.id  # name
    with pytest.raises(
        InvalidRequest, match=r"prefix 'abcd' is ambiguous: it matches 2 tasks: abcd1234aaaa \(alpha\)"
    ):
        client.task("abcd")
    with pytest.raises(NotFound, match="an id prefix needs at least 4 characters"):
        client.task("abc")
    with pytest.raises(NotFound, match="no task with id zzzz"):
        client.task("zzzz")
    # Writes resolve the same way, once, and act on the full id.
    assert client.stop("beta").id == "abcd5678bbbb"
    assert client.remove("abcd5", force=True).id == "abcd5678bbbb"
    with pytest.raises(InvalidRequest, match="ambiguous"):
        client.submit("busybox", id="abcd9999cccc")
        client.stop("abcd")
    assert client.task("abcd1234aaaa").state == TaskState.PENDING  # the ambiguous stop did nothing


def test_service_slot_names_mean_the_active_task(stack: Stack) -> None:
    stack.client.create_service("web", "busybox", replicas=1)
    old = service_task(stack, 1, "0ld0000000")
    run(stack, old.id)
    stack.client.stop(old.id)
    new = service_task(stack, 1, "new0000000")
    assert stack.client.task("web.1").id == new.id  # the active one, not the stopped one


def test_cli_and_rest_take_prefixes_and_names(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    task = stack.client.submit("busybox", name="batch", id="feed0001beef")
    stack.client.submit("busybox", name="other", id="feed0002beef")
    code, out, _ = orion(stack, capsys, "task", "inspect", "feed0001beef"[:9])
    assert code == 0 and "Name:       batch" in out
    code, _, err = orion(stack, capsys, "task", "stop", "feed")
    assert code == cli.EXIT_USAGE and "ambiguous" in err and "feed0001beef (batch)" in err
    code, out, _ = orion(stack, capsys, "task", "stop", "batch")
    assert code == 0 and out.startswith(task.id)
    status, body = call(stack.http, "GET", "/tasks/other")
    assert status == 200 and body["id"] == "feed0002beef"
    status, body = call(stack.http, "GET", "/tasks/feed")
    assert status == 400 and "ambiguous" in body["error"]
    status, body = call(stack.http, "DELETE", "/tasks/feed000?remove=true&force=true")
    assert status == 400 and "ambiguous" in body["error"]
    status, body = call(stack.http, "DELETE", "/tasks/other?remove=true&force=true")
    assert status == 200 and body["id"] == "feed0002beef"


# ---------------------------------------------------------------------- task ls


def test_task_ls_filters_by_state_node_and_service(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    client = stack.client
    meta = NodeMeta(id="n2", memory_total=1 << 34, cpu_total=4.0)
    stack.raft.commit(UpsertNode(at=1.0, meta=meta)).get()
    running = client.submit("busybox", name="on-n2")
    run(stack, running.id, "n2")
    waiting = client.submit("busybox", name="waiting")
    client.create_service("web", "busybox", replicas=1)
    web = service_task(stack, 1, "web0000001")
    run(stack, web.id, "n1")

    def ids(**filters: object) -> set[str]:
        return {t.id for t in client.tasks(**filters)}  # type: ignore[arg-type]

    assert ids() == {running.id, waiting.id, web.id}
    assert ids(state="running") == {running.id, web.id}
    assert ids(state=["Pending", "running"]) == {running.id, waiting.id, web.id}
    assert ids(node="n2") == {running.id}
    assert ids(service="web") == {web.id}
    assert ids(service="web", state="pending") == set()
    with pytest.raises(InvalidRequest, match="state: unknown state 'sleeping'"):
        client.tasks(state="sleeping")

    code, out, _ = orion(stack, capsys, "task", "ls", "--state", "Running,pending", "--node", "n2")
    assert code == 0 and "on-n2" in out and "waiting" not in out and "web.1" not in out
    code, out, _ = orion(stack, capsys, "--json", "task", "ls", "--service", "web")
    assert code == 0 and [t["name"] for t in json.loads(out)] == ["web.1"]
    status, body = call(stack.http, "GET", "/tasks?state=pending")
    assert status == 200 and [t["id"] for t in body] == [waiting.id]
    status, body = call(stack.http, "GET", "/tasks?state=nope")
    assert status == 400 and body["field"] == "state"


def test_watch_redraws_only_when_the_tasks_change(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    client = stack.client
    submitted: list[str] = []

    def sleep(_seconds: float) -> None:
        # Between the second and third look, a task is submitted: the third look redraws.
        if len(looks) == 2 and not submitted:
            submitted.append(client.submit("busybox", name="late").id)

    looks: list[int] = []
    args = cli.build_parser().parse_args(["task", "ls", "--watch", "--rounds", "4", "--interval", "0.01"])

    def fetch_counting() -> list[Task]:
        looks.append(1)
        return client.tasks()

    out = io.StringIO()
    drawn = cli_ops.watch(fetch_counting, cli.format_tasks, out, args.interval, args.rounds, sleep=sleep)
    assert (len(looks), drawn) == (4, 2)  # the empty list once, then the list with "late"
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == ["ID", "ID", submitted[0][:12]]  # empty, then "late"

    code, text, _ = orion(stack, capsys, "task", "ls", "--watch", "--rounds", "2", "--interval", "10ms")
    assert code == 0 and text.count("NAME") == 1 and "late" in text  # nothing changed: drawn once


# ---------------------------------------------------------------------- drain and eligibility


def test_drain_and_eligibility_through_client_cli_and_rest(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    client = stack.client
    one_off = client.submit("busybox", name="batch")
    run(stack, one_off.id)
    client.create_service("web", "busybox", replicas=1)
    web = service_task(stack, 1, "web0000001")
    run(stack, web.id)

    node = client.drain_node("n1", deadline="10m")
    assert (node.id, node.eligible) == ("n1", False)
    assert node.drain is not None and node.drain.remaining == 1  # the service task waits for its replacement
    assert node.drain.deadline == pytest.approx(node.drain.started_at + 600)
    moved = client.task("batch")
    assert (moved.state, moved.node_id, moved.reason) == (TaskState.PENDING, "", "node n1 is draining")

    code, out, _ = orion(stack, capsys, "nodes")
    header, row = out.splitlines()[:2]
    assert "ELIGIBILITY" in header and "DRAIN" in header
    assert "ineligible" in row and "draining (1 task(s) left, deadline in 9m)" in row

    code, out, _ = orion(stack, capsys, "node", "eligibility", "n1", "--enable")
    assert (code, out.strip()) == (0, "n1: eligible for new tasks")
    assert client.nodes()[0].drain is None

    code, out, _ = orion(stack, capsys, "node", "drain", "n1")
    assert code == 0 and out.strip() == "n1: draining, 1 task(s) left"
    code, _, err = orion(stack, capsys, "node", "drain", "nope")
    assert code == cli.EXIT_NOT_FOUND and "no node with id nope" in err
    code, _, err = orion(stack, capsys, "node", "drain", "n1", "--deadline", "soon")
    assert code == cli.EXIT_USAGE and "deadline" in err

    status, body = call(stack.http, "POST", "/nodes/n1/eligibility", b'{"eligible": true}')
    assert status == 200 and body["eligible"] is True and body["drain"] is None
    status, body = call(stack.http, "POST", "/nodes/n1/drain", b'{"deadline": "30s"}')
    assert status == 200 and body["eligible"] is False and body["drain"]["remaining"] == 1
    status, body = call(stack.http, "GET", "/nodes")
    assert status == 200 and body[0]["drain"]["deadline"] == pytest.approx(body[0]["drain"]["startedAt"] + 30)
    status, body = call(stack.http, "POST", "/nodes/n1/eligibility", b"{}")
    assert status == 400 and body["field"] == "eligible"
    status, body = call(stack.http, "POST", "/nodes/n1/eligibility", b'{"eligible": false}')
    assert (
        status == 200 and body["eligible"] is False and body["drain"] is not None
    )  # disabling keeps a drain
