"""Service names for tasks on the overlay: which addresses a name stands for, and the DNS
answers that say so (pure: bytes in, bytes out; orion/network/dns_server.py serves them).

A service ``web`` resolves, from inside any task, to the overlay addresses of its replicas that
may take traffic now: Running, healthy (or without a health check), not being drained, with an
address. Each node runs the resolver on its task bridge's gateway (.1), and its containers get
that address as their DNS server: Docker's embedded resolver (127.0.0.11 on a user-defined
network) answers container names itself and forwards every other name there. Answers carry a
TTL of 1 s: the set changes as replicas come and go, and the next lookup sees it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence

from orion.model import Health, Task, TaskState

SUFFIX = "orion"  # "web" and "web.orion" both name service web
TTL_S = 1
_HEADER = struct.Struct("!HHHHHH")
_QR, _AA = 0x8000, 0x0400
_OPCODE_MASK, _RD = 0x7800, 0x0100
NOERROR, FORMERR, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 3, 4, 5
TYPE_A, CLASS_IN = 1, 1
MAX_ANSWERS = 32  # keeps a UDP answer under 512 bytes


def serving(task: Task) -> bool:
    """May take traffic by its overlay address now."""
    return (
        task.state == TaskState.RUNNING
        and task.health in (Health.NONE, Health.HEALTHY)
        and not task.drain_at
        and bool(task.overlay_ip)
    )


def service_records(tasks_by_service: Mapping[str, Iterable[Task]]) -> dict[str, list[str]]:
    """Service name (lower case) -> the sorted overlay addresses of its serving replicas."""
    return {
        name.lower(): sorted({task.overlay_ip for task in tasks if serving(task)})
        for name, tasks in tasks_by_service.items()
    }


def _question(query: bytes) -> tuple[str, int, int, int] | None:
    """(name, type, class, offset after the question) of the first question, None if malformed."""
    labels: list[str] = []
    offset = _HEADER.size
    while True:
        if offset >= len(query):
            return None
        length = query[offset]
        offset += 1
        if length == 0:
            break
        if length > 63 or offset + length > len(query):  # no compression pointers in a question
            return None
        labels.append(query[offset : offset + length].decode("ascii", errors="replace").lower())
        offset += length
    if offset + 4 > len(query):
        return None
    qtype, qclass = struct.unpack_from("!HH", query, offset)
    return ".".join(labels), qtype, qclass, offset + 4


def service_of(name: str, suffix: str = SUFFIX) -> str:
    """The service a query name asks for: "web", "web.orion" -> "web" ("" for none)."""
    name = name.rstrip(".")
    if name.endswith("." + suffix):
        name = name[: -len(suffix) - 1]
    return "" if "." in name or not name else name


def answer(query: bytes, records: Mapping[str, Sequence[str]], suffix: str = SUFFIX) -> bytes | None:
    """The response to one DNS query, or None for something not worth answering (too short
    to carry an id, or a response itself)."""
    if len(query) < _HEADER.size:
        return None
    ident, flags, qdcount, _, _, _ = _HEADER.unpack_from(query)
    if flags & _QR:
        return None
    reply_flags = _QR | _AA | (flags & (_OPCODE_MASK | _RD))
    question = _question(query) if qdcount == 1 else None
    if (flags & _OPCODE_MASK) != 0:
        return _HEADER.pack(ident, reply_flags | NOTIMP, 0, 0, 0, 0)
    if question is None:
        return _HEADER.pack(ident, reply_flags | FORMERR, 0, 0, 0, 0)
    name, qtype, qclass, end = question
    echoed = query[_HEADER.size : end]
    service = service_of(name, suffix)
    if not service or service not in records:
        # Not a service: NXDOMAIN inside our suffix, else REFUSED (not ours to say).
        code = NXDOMAIN if name.rstrip(".").endswith(suffix) or service else REFUSED
        return _HEADER.pack(ident, reply_flags | code, 1, 0, 0, 0) + echoed
    addresses = list(records[service])[:MAX_ANSWERS] if (qtype, qclass) == (TYPE_A, CLASS_IN) else []
    body = b"".join(
        struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL_S, 4)
        + bytes(int(part) for part in address.split("."))
        for address in addresses
    )
    return _HEADER.pack(ident, reply_flags | NOERROR, 1, len(addresses), 0, 0) + echoed + body


def query(ident: int, name: str, qtype: int = TYPE_A) -> bytes:
    """A DNS query (recursion desired) for ``name``: for tests and probes."""
    labels = b"".join(
        bytes([len(part)]) + part.encode("ascii") for part in name.rstrip(".").split(".") if part
    )
    return _HEADER.pack(ident, _RD, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", qtype, CLASS_IN)


def addresses_in(response: bytes) -> tuple[int, list[str]]:
    """(rcode, A addresses) of a response made by ``answer`` (answers as name pointers)."""
    _, flags, _, ancount, _, _ = _HEADER.unpack_from(response)
    question = _question(response)
    offset = question[3] if question else _HEADER.size
    found = []
    for _ in range(ancount):
        _, rtype, _, _, length = struct.unpack_from("!HHHIH", response, offset)
        offset += 12
        if rtype == TYPE_A and length == 4:
            found.append(".".join(str(b) for b in response[offset : offset + 4]))
        offset += length
    return flags & 0xF, found
