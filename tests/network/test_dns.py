"""Service names (orion/network/dns.py): which replicas a name stands for, the DNS answers, and
the UDP resolver on a loopback address."""

from __future__ import annotations

import socket

from orion.model import Health, Task, TaskState
from orion.network.dns import (
    NXDOMAIN,
    REFUSED,
    TYPE_A,
    addresses_in,
    answer,
    query,
    service_of,
    service_records,
)
from orion.network.dns_server import DnsServer


def replica(task_id: str, ip: str, **changes: object) -> Task:
    fields: dict[str, object] = {"state": TaskState.RUNNING, "overlay_ip": ip, "service": "web"}
    fields.update(changes)
    return Task(id=task_id, name=task_id, image="x", **fields)  # type: ignore[arg-type]


def test_only_serving_replicas_are_named() -> None:
    tasks = [
        replica("a", "10.42.1.3"),
        replica("b", "10.42.0.2", health=Health.HEALTHY),
        replica("c", "10.42.2.2", health=Health.UNHEALTHY),
        replica("d", "10.42.2.3", health=Health.STARTING),
        replica("e", "10.42.2.4", drain_at=5.0),
        replica("f", "10.42.2.5", state=TaskState.SCHEDULED),
        replica("g", ""),
    ]
    assert service_records({"Web": tasks, "empty": []}) == {"web": ["10.42.0.2", "10.42.1.3"], "empty": []}


def test_names_with_and_without_the_suffix() -> None:
    assert service_of("web") == service_of("web.orion.") == "web"
    assert service_of("example.com") == ""
    assert service_of("orion") == "orion"


def test_answers() -> None:
    records = {"web": ["10.42.0.2", "10.42.1.3"], "empty": []}
    code, found = addresses_in(answer(query(7, "web"), records) or b"")
    assert (code, found) == (0, ["10.42.0.2", "10.42.1.3"])
    assert addresses_in(answer(query(8, "WEB.orion"), records) or b"") == (0, ["10.42.0.2", "10.42.1.3"])
    assert addresses_in(answer(query(9, "empty"), records) or b"") == (0, [])  # exists, none serving
    assert addresses_in(answer(query(10, "web", qtype=28), records) or b"") == (0, [])  # AAAA: none
    assert addresses_in(answer(query(11, "nope"), records) or b"")[0] == NXDOMAIN
    assert addresses_in(answer(query(12, "example.com"), records) or b"")[0] == REFUSED
    response = answer(query(13, "web"), records) or b""
    assert response[:2] == (13).to_bytes(2, "big")  # the asker's id
    assert answer(b"\x00\x01", records) is None  # too short
    assert answer(response, records) is None  # a response is never answered
    truncated = query(14, "web")[:-3]
    assert addresses_in(answer(truncated, records) or b"")[0] == 1  # FORMERR


def test_the_resolver_answers_over_udp_and_follows_new_records() -> None:
    server = DnsServer("127.0.0.1", port=0).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            client.sendto(query(1, "web", TYPE_A), ("127.0.0.1", server.port))
            assert addresses_in(client.recv(512))[0] == NXDOMAIN
            server.set_records({"web": ["10.42.0.9"]})
            client.sendto(query(2, "web", TYPE_A), ("127.0.0.1", server.port))
            assert addresses_in(client.recv(512)) == (0, ["10.42.0.9"])
    finally:
        server.stop()
