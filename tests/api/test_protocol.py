"""Validation of client API requests on decode: bad input names its field."""

from __future__ import annotations

from typing import Any, get_args

import msgspec
import pytest

from orion.api.protocol import (
    ApiError,
    GetTask,
    ListTasks,
    RaftInfo,
    RaftStatus,
    Reply,
    Request,
    RequestError,
    SubmitTask,
    decode_reply,
    decode_request,
    encode,
    encode_reply,
    encode_request,
    request_error,
    typed_result,
    validate_request,
)
from orion.model import Task


def submit(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"op": "SubmitTask", "id": "t1", "name": "web", "image": "nginx"}
    fields.update(overrides)
    return fields


def rejected(obj: Any) -> RequestError:
    with pytest.raises(RequestError) as info:
        decode_request(encode(obj))
    return info.value


def test_valid_requests_round_trip() -> None:
    request = SubmitTask(
        id="t1",
        name="web",
        image="nginx:1.27",
        memory=256 * 1024**2,
        cpu=0.5,
        port_bindings={"80/tcp": "8080", "53/udp": "5353"},
        node_selectors={"zone": "a"},
        command=["sh", "-c", "echo hi"],
        env={"MODE": "prod"},
    )
    assert decode_request(encode_request(request)) == request
    assert decode_request(encode_request(GetTask(id="t1", stale=True))) == GetTask(id="t1", stale=True)
    assert decode_request(encode_request(ListTasks())) == ListTasks()


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        (submit(memory=-1), "memory", "must be >= 0"),
        (submit(cpu=-0.5), "cpu", "must be >= 0"),
        (submit(disk=-3), "disk", "must be >= 0"),
        (submit(image=""), "image", "must not be empty"),
        (submit(memory="lots"), "memory", "Expected `int`, got `str`"),
        (submit(port_bindings={"80/tcp": "70000"}), "port_bindings", "not in 1-65535"),
        (submit(port_bindings={"0/tcp": "8080"}), "port_bindings", "not in 1-65535"),
        (submit(port_bindings={"80/xyz": "8080"}), "port_bindings", "protocol 'xyz' is not supported"),
        (submit(port_bindings={"80/tcp": "http"}), "port_bindings", "value does not match"),
        (submit(command=["ok", 5]), "command[1]", "Expected `str`, got `int`"),
        (submit(name="n" * 129), "name", "length must be <= 128"),
        (submit(surprise=1), "surprise", "unknown field"),
        ({"op": "SubmitTask", "name": "web", "image": "nginx"}, "id", "is required"),
        ({"op": "Reboot"}, "op", "Invalid value 'Reboot'"),
        ({"op": "GetTask", "id": "../etc"}, "id", "does not match"),
    ],
)
def test_bad_fields_are_named(fields: dict[str, Any], field: str, reason: str) -> None:
    error = rejected(fields)
    assert error.field == field
    assert reason in error.reason
    assert str(error).startswith(f"{field}: ")


def test_malformed_and_oversized_requests() -> None:
    with pytest.raises(RequestError, match="malformed request"):
        decode_request(b"\xc1\xc1")
    big = encode(submit(env={"BLOB": "x" * 30_000, "MORE": "y" * 30_000}))
    with pytest.raises(RequestError, match="request too large"):
        decode_request(big, max_size=len(big) - 1)
    assert isinstance(decode_request(big, max_size=len(big)), SubmitTask)


def test_replies_round_trip_and_results_come_back_typed() -> None:
    task = Task(id="t1", name="web", image="nginx", port_bindings={"80/tcp": "8080"})
    reply = decode_reply(encode_reply(Reply.success(task)))
    assert reply.ok
    assert typed_result(SubmitTask(id="t1", name="web", image="nginx"), reply.result) == task
    info = RaftInfo(node_id="n1", role="leader", term=2, voters=["n1"])
    assert typed_result(RaftStatus(), decode_reply(encode_reply(Reply.success(info))).result) == info
    failure = decode_reply(encode_reply(Reply.failure("not_found", "no task t9")))
    assert failure == Reply(ok=False, error=ApiError(code="not_found", message="no task t9"))
    assert msgspec.msgpack.decode(encode_reply(failure))["error"]["code"] == "not_found"


# msgspec raises UnicodeDecodeError (not its own DecodeError) for bad UTF-8 in some string fields
# and union tags; a fuzzed frame like this once killed a node's API server thread.
BAD_UTF8_STR = b"\xa2\xe0\x80"  # a 2-byte msgpack str that is not UTF-8


def test_api_decode_refuses_bad_utf8_in_op() -> None:
    with pytest.raises(RequestError, match="malformed request"):
        decode_request(b"\x81\xa2op" + BAD_UTF8_STR)


@pytest.mark.parametrize(
    "fields",
    [
        submit(memory=-1),
        submit(surprise=1),
        submit(command=["ok", 5]),
        {"op": "SubmitTask", "name": "web", "image": "nginx"},
        {"op": "Reboot"},
        {"op": ["SubmitTask"]},
        {"id": "t1"},
        {"op": "GetTask", "id": "../etc"},
        "SubmitTask",
    ],
)
def test_validating_builtins_by_op_answers_as_the_whole_union_does(fields: Any) -> None:
    # validate_request converts a known op straight into its class (msgspec caches that, not a
    # union): a refusal must still read as converting into Request would have it read.
    with pytest.raises(RequestError) as by_op:
        validate_request(fields)
    with pytest.raises(msgspec.ValidationError) as by_union:
        msgspec.convert(fields, Request)
    assert str(by_op.value) == str(request_error(by_union.value))


def test_a_known_op_comes_out_as_its_own_class() -> None:
    assert validate_request(submit()) == msgspec.convert(submit(), Request)
    assert validate_request({"op": "GetTask", "id": "t1"}) == GetTask(id="t1")
    no_required = [
        cls for cls in get_args(Request) if not any(f.required for f in msgspec.structs.fields(cls))
    ]
    assert ListTasks in no_required
    for cls in no_required:
        assert validate_request({"op": cls.__name__}) == cls()
