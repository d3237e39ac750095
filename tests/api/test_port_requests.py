"""How each way in says "any free host port": the CLI's `-p 0:80` and `-p 80`, the
client's 0 / "" / None, REST's "" / null / 0; and what the request validation refuses."""

from __future__ import annotations

import pytest

from orion.api.http import RequestError as HttpRequestError
from orion.api.http import submit_request
from orion.api.protocol import RequestError, SubmitTask, decode_request, encode
from orion.cli import UsageError, format_ports, parse_publish
from orion.client import normalize_ports
from orion.model import Task


def test_cli_publish_forms() -> None:
    assert parse_publish(["8080:80", "0:81/udp", "82", "53/udp"]) == {
        "80/tcp": "8080",
        "81/udp": "0",
        "82/tcp": "0",
        "53/udp": "0",
    }
    for bad in ("web:80", "8080:", "x"):
        with pytest.raises(UsageError, match="-p: expected"):
            parse_publish([bad])


def test_client_ports_without_a_host_port_are_dynamic() -> None:
    assert normalize_ports({"80": 0, "81/tcp": "", "82/udp": None, "83": 8083}) == {
        "80/tcp": "0",
        "81/tcp": "0",
        "82/udp": "0",
        "83/tcp": "8083",
    }


def test_rest_empty_null_and_zero_host_ports_are_dynamic() -> None:
    request = submit_request(b'{"image": "nginx", "portBindings": {"80/tcp": "", "81": null, "82": 0}}')
    assert isinstance(request, SubmitTask)
    assert request.port_bindings == {"80/tcp": "0", "81/tcp": "0", "82/tcp": "0"}
    with pytest.raises(HttpRequestError, match="given twice"):
        submit_request(b'{"image": "nginx", "portBindings": {"80/tcp": "8080", "81/tcp": 8080}}')


def test_protocol_accepts_dynamic_and_refuses_a_static_port_given_twice() -> None:
    base = {"op": "SubmitTask", "id": "t1", "name": "web", "image": "nginx"}
    ok = decode_request(encode({**base, "port_bindings": {"80/tcp": "0", "81/tcp": "0", "53/udp": "53"}}))
    assert ok.port_bindings == {"80/tcp": "0", "81/tcp": "0", "53/udp": "53"}
    # The same number on two protocols is two ports.
    decode_request(encode({**base, "port_bindings": {"53/tcp": "53", "53/udp": "53"}}))
    with pytest.raises(RequestError) as info:
        decode_request(encode({**base, "port_bindings": {"80/tcp": "8080", "81": "8080"}}))
    assert info.value.field == "port_bindings" and "8080/tcp is given twice" in info.value.reason


def test_ports_are_shown_as_assigned_or_as_any() -> None:
    task = Task(id="t", name="t", image="i", port_bindings={"80/tcp": "0", "81/tcp": "8081"})
    assert format_ports(task) == ["any->80/tcp", "8081->81/tcp"]
    task.host_ports, task.host_ip = {"80/tcp": 20000, "81/tcp": 8081}, "127.0.0.1"
    assert format_ports(task) == ["127.0.0.1:20000->80/tcp", "127.0.0.1:8081->81/tcp"]
