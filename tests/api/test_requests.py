"""orion/api/requests.py and orion/api/auth.py: one submit builder, one default name, one token check."""

from __future__ import annotations

import pytest

from orion.api import auth
from orion.api.http import submit_request as rest_submit
from orion.api.protocol import RequestError, SubmitTask, submit_conflict
from orion.api.requests import build_submit, task_of
from orion.model import TaskState, task_name
from orion.security.keys import TokenSet


def test_every_front_end_names_an_unnamed_task_alike() -> None:
    built = build_submit("nginx", id="0123456789abcdef")
    rest = rest_submit(b'{"image": "nginx", "id": "0123456789abcdef"}')
    raw = SubmitTask(id="0123456789abcdef", name="", image="nginx")  # as a raw ZeroMQ request
    assert built.name == rest.name == task_of(raw, 1.0).name == "task-01234567"
    assert task_name("", "0123456789abcdef") == task_name(None, "0123456789abcdef") == "task-01234567"
    # The task the node made from the raw request is the same spec as the built request.
    assert submit_conflict(built, task_of(raw, 1.0)) == []


def test_build_submit_takes_friendly_shapes_and_names_bad_fields() -> None:
    request = build_submit(
        "nginx", name="web", memory="1KiB", ports={"80": 8080, "53/udp": None}, restart="always"
    )
    assert request.memory == 1024 and request.port_bindings == {"80/tcp": "8080", "53/udp": "0"}
    assert request.restart is not None and request.restart.policy == "always"
    assert len(request.id) == 32  # chosen once, here
    with pytest.raises(RequestError) as bad_size:
        build_submit("nginx", memory="lots")
    assert bad_size.value.field == "memory"
    with pytest.raises(RequestError) as shell_string:
        build_submit("nginx", command="sleep 100")
    assert shell_string.value.field == "command"


def test_task_of_is_the_pending_task_the_request_asks_for() -> None:
    request = build_submit("nginx", id="t1", name="web", cpu=0.5, env={"A": "b"}, command=["sleep", "1"])
    task = task_of(request, 42.0)
    assert (task.id, task.name, task.image, task.cpu) == ("t1", "web", "nginx", 0.5)
    assert task.state == TaskState.PENDING and task.created_at == task.updated_at == 42.0
    assert task.env == {"A": "b"} and task.command == ["sleep", "1"]
    assert submit_conflict(request, task) == []


def test_token_refusals_tell_missing_from_wrong() -> None:
    tokens = TokenSet(["right-token"])
    assert auth.refusal(None, b"") is None  # no tokens: an insecure node takes any request
    assert auth.refusal(tokens, b"right-token") is None
    assert auth.refusal(tokens, b"") is auth.AuthRefusal.MISSING
    assert auth.refusal(tokens, b"wrong-token") is auth.AuthRefusal.WRONG
    assert auth.refusal(tokens, b"x" * 10_000) is auth.AuthRefusal.WRONG


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer right-token", b"right-token"),
        ("bearer  right-token ", b"right-token"),
        ("Basic right-token", b""),  # another scheme carries no bearer token
        ("right-token", b""),
        (None, b""),
    ],
)
def test_bearer_token_reads_only_the_bearer_scheme(header: str | None, token: bytes) -> None:
    assert auth.bearer_token(header) == token


@pytest.mark.parametrize(
    ("changes", "differs"),
    [
        ({}, []),
        ({"name": "other"}, ["name"]),
        ({"memory": 2048, "env": {"A": "c"}}, ["memory", "env"]),
        ({"cpu": 1.0, "command": None, "restart": None}, ["cpu", "command", "restart"]),
        (
            {"node_selectors": {"zone": "b"}, "port_bindings": {}, "disk": 1},
            ["disk", "node_selectors", "port_bindings"],
        ),
    ],
)
def test_a_submit_conflicts_in_exactly_the_spec_fields_that_differ(
    changes: dict[str, object], differs: list[str]
) -> None:
    request = build_submit(
        "nginx",
        id="t1",
        name="web",
        memory=1024,
        cpu=0.5,
        env={"A": "b"},
        command=["sleep", "1"],
        node_selectors={"zone": "a"},
        ports={"80": 8080},
        restart="always",
    )
    stored = task_of(request, 42.0)
    for field, value in changes.items():
        setattr(stored, field, value)
    assert submit_conflict(request, stored) == differs
