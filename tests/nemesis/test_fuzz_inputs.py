"""Bad input at every socket of a live cluster: random and mutated frames at the Raft and
gossip ports, random and mutated requests at the ZeroMQ API (REQ and raw DEALER) and the
REST port. Afterwards every node is still up, a leader is known, and the tasks are as they
were (apart from tasks whose fuzzed submit the cluster acknowledged as valid).

Frames at the peer ports are garbage, truncations of real messages, or real messages for a
node id that does not exist: a well-formed message from a forged peer is a Byzantine fault,
which Raft and SWIM do not claim to survive, so it is out of scope here.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orion.api.protocol import MAX_REPLY, Reply, SubmitTask
from orion.gossip.messages import Ping
from orion.gossip.messages import encode_message as encode_gossip
from orion.raft.messages import AppendEntries, RequestVote
from orion.raft.messages import encode_message as encode_raft
from orion.raft.types import Entry
from orion.testing.localcluster import LocalCluster, wait_for
from orion.transport.frames import Channel, encode_header

pytestmark = [pytest.mark.nemesis, pytest.mark.cluster, pytest.mark.docker]

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # CI runs the same inputs every time
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BASELINE_IDS = ("fuzz-baseline-task-1", "fuzz-baseline-task-2")


@dataclass
class Fuzzed:
    cluster: LocalCluster
    baseline: dict[str, tuple[str, str]]  # task id -> (state, node id)
    accepted: set[str] = field(default_factory=set)  # ids of fuzzed submits the cluster took
    context: zmq.Context = field(default_factory=zmq.Context.instance)

    def state(self) -> dict[str, tuple[str, str]]:
        with self.cluster.client(timeout=5.0, retries=3) as client:
            return {t.id: (t.state, t.node_id) for t in client.tasks()}

    def assert_unharmed(self) -> None:
        for node in self.cluster.nodes:
            assert node.running, f"{node.node_id} died:\n{self.cluster.logs()}"
        wait_for(self.cluster.leader_index, 30, what="a leader after the fuzzing")
        state = self.state()
        for task_id, before in self.baseline.items():
            assert state.get(task_id) == before, f"{task_id}: {before} became {state.get(task_id)}"
        unexpected = set(state) - set(self.baseline) - self.accepted
        assert not unexpected, f"tasks appeared from rejected input: {sorted(unexpected)}"


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    base: Path = tmp_path_factory.mktemp("fuzz-cluster")
    # Insecure (plain TCP, no token) so that garbage reaches the decoders behind the sockets;
    # a secured cluster refuses it earlier, at the CURVE handshake or the token check.
    with LocalCluster(3, base, insecure=True) as cluster:
        cluster.start(timeout=90)
        with cluster.client(timeout=5.0, retries=3) as client:
            for task_id in BASELINE_IDS:
                client.submit("orion-busybox:latest", id=task_id, memory="8MiB", command=["sleep", "3600"])
            for task_id in BASELINE_IDS:
                client.wait(task_id, "Running", timeout=60)
        target = Fuzzed(cluster, baseline={})
        target.baseline = target.state()
        yield target


# --------------------------------------------------------------------------- peer ports

addresses = st.one_of(
    st.just("127.0.0.1:1"),
    st.text(min_size=0, max_size=40),
    st.from_regex(r"\A[a-z0-9.]{1,20}:[0-9]{1,6}\Z"),
)
channels = st.integers(0, 255)


def header_for(channel: int, sender: str) -> bytes:
    raw = sender.encode("utf-8", "replace")[:255]
    return bytes([0xA7, 1, channel, len(raw)]) + raw


def real_payloads() -> list[bytes]:
    """Well-formed messages addressed to a node that does not exist, to truncate and flip."""
    nobody = "fuzz-no-such-node"
    return [
        encode_raft(
            RequestVote(src=nobody, dst=nobody, term=10**6, last_log_index=10**6, last_log_term=10**6)
        ),
        encode_raft(
            AppendEntries(
                src=nobody,
                dst=nobody,
                term=10**6,
                prev_index=0,
                prev_term=0,
                entries=[Entry(1, 10**6, 0, b"junk")],
                leader_commit=1,
            )
        ),
        encode_gossip(Ping(seq=1, sender="127.0.0.1:1", target_id=nobody)),
    ]


@st.composite
def mutated(draw: st.DrawFn, bases: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(bases)))
    how = draw(st.sampled_from(["truncate", "flip", "insert", "append"]))
    if how == "truncate":
        return bytes(data[: draw(st.integers(0, max(0, len(data) - 1)))])
    position = draw(st.integers(0, max(0, len(data) - 1)))
    if how == "flip":
        data[position] ^= draw(st.integers(1, 255))
    elif how == "insert":
        data[position:position] = draw(st.binary(min_size=1, max_size=16))
    else:
        data += draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=10), inner, max_size=6),
    max_leaves=20,
)
payloads = st.one_of(
    st.binary(max_size=2048),
    msgpack_values.map(msgspec.msgpack.encode),
    mutated(real_payloads()),
)
peer_frames = st.one_of(
    st.lists(st.binary(max_size=300), min_size=1, max_size=4),  # any multipart at all
    st.tuples(channels, addresses, payloads).map(lambda t: [header_for(t[0], t[1]), t[2]]),
    st.tuples(st.sampled_from(list(Channel)), payloads).map(
        lambda t: [encode_header(t[0], "127.0.0.1:1"), t[1]]
    ),
)


def send_frames(fuzzed: Fuzzed, port_of: str, frames: list[list[bytes]]) -> None:
    for node in fuzzed.cluster.nodes:
        sock = fuzzed.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 2000)
        sock.setsockopt(zmq.SNDTIMEO, 10_000)  # a node that went away fails the test, never hangs it
        sock.connect(f"tcp://{node.address}:{getattr(node, port_of)}")
        try:
            for frame in frames:
                sock.send_multipart(frame)
        finally:
            sock.close(2000)  # wait for the frames to leave before the next check


@pytest.mark.parametrize("port_of", ["raft_port", "gossip_port"])
def test_peer_ports_survive_bad_frames(fuzzed: Fuzzed, port_of: str) -> None:
    @FUZZ
    @given(frames=st.lists(peer_frames, min_size=1, max_size=20))
    def fuzz(frames: list[list[bytes]]) -> None:
        send_frames(fuzzed, port_of, frames)

    fuzz()
    fuzzed.assert_unharmed()


# --------------------------------------------------------------------------- API port

requests = st.one_of(
    st.binary(max_size=1024),
    msgpack_values.map(msgspec.msgpack.encode),
    st.fixed_dictionaries(
        {"op": st.sampled_from(["SubmitTask", "StopTask", "GetTask", "ListTasks", "Nope", "BlockPeers"])},
        optional={
            "id": st.text(max_size=70) | st.integers(-(2**63), 2**64 - 1),
            "name": st.text(max_size=10),
            "image": st.text(max_size=10) | st.none(),
            "memory": st.integers(-(2**63), 2**64 - 1) | st.text(max_size=5),
            "cpu": st.floats(),
            "command": st.lists(st.text(max_size=5), max_size=3) | st.integers(-(2**63), 2**64 - 1),
            "addresses": st.lists(st.text(max_size=20), max_size=3),
            "extra": msgpack_values,
        },
    ).map(msgspec.msgpack.encode),
    mutated([msgspec.msgpack.encode(SubmitTask(id="fuzz-mutant", name="m", image="orion-busybox:latest"))]),
)


def note_accepted(fuzzed: Fuzzed, body: bytes, reply: Reply) -> None:
    """A fuzzed submit that was valid and acknowledged legitimately adds a task."""
    if not reply.ok or not isinstance(reply.result, dict):
        return
    try:
        request = msgspec.msgpack.decode(body)
    except msgspec.DecodeError:
        return
    if isinstance(request, dict) and request.get("op") == "SubmitTask" and "id" in reply.result:
        fuzzed.accepted.add(str(reply.result["id"]))


def test_api_port_answers_bad_requests(fuzzed: Fuzzed) -> None:
    endpoint = fuzzed.cluster.node(1).api_endpoint

    @FUZZ
    @given(body=requests)
    def fuzz(body: bytes) -> None:
        sock = fuzzed.context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_REPLY)
        sock.connect(f"tcp://{endpoint}")
        try:
            sock.send(body)
            assert sock.poll(15_000), "no answer to a bad request"
            reply = msgspec.msgpack.decode(sock.recv(), type=Reply)
        finally:
            sock.close(0)
        note_accepted(fuzzed, body, reply)
        if not reply.ok:
            assert reply.error is not None and reply.error.message, reply

    fuzz()
    fuzzed.assert_unharmed()


def test_api_port_survives_raw_dealer_frames(fuzzed: Fuzzed) -> None:
    """No REQ envelope: there is nobody to answer, but nothing must break either."""

    @FUZZ
    @given(
        frames=st.lists(st.lists(st.binary(max_size=200), min_size=1, max_size=4), min_size=1, max_size=10)
    )
    def fuzz(frames: list[list[bytes]]) -> None:
        send_frames(fuzzed, "api_port", frames)

    fuzz()
    fuzzed.assert_unharmed()


# --------------------------------------------------------------------------- REST port

json_bodies = st.one_of(
    st.binary(max_size=512),
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
        max_leaves=15,
    ).map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries(
        {"image": st.text(max_size=12)},
        optional={
            "memory": st.integers(-(2**64), 2**64) | st.text(max_size=8),
            "portBindings": st.dictionaries(
                st.text(max_size=8), st.text(max_size=6) | st.integers(), max_size=3
            ),
            "cpu": st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=3),
            "id": st.text(max_size=70),
        },
    ).map(lambda value: json.dumps(value).encode()),
)
paths = st.one_of(
    st.sampled_from(
        ["/tasks", "/tasks/", "/nodes", "/raft", "/tasks/fuzz-baseline-task-1x", "/", "/tasks/a/b"]
    ),
    st.from_regex(r"\A/[\x21-\x7e]{0,40}\Z"),
)


def test_rest_port_answers_bad_requests(fuzzed: Fuzzed) -> None:
    node = fuzzed.cluster.node(2)

    @FUZZ
    @given(method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH"]), path=paths, body=json_bodies)
    def fuzz(method: str, path: str, body: bytes) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=15)
        try:
            connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = response.read()
        finally:
            connection.close()
        if method == "POST" and response.status == 201:
            fuzzed.accepted.add(json.loads(answer)["id"])
        # 4xx says what was wrong; 503/504 would mean the cluster is unwell, and 500 is a bug.
        # Methods without a route get the standard library's 501 Not Implemented.
        unsupported = method not in ("GET", "POST", "DELETE") and response.status == 501
        assert response.status < 500 or unsupported, (method, path, body, response.status, answer)

    fuzz()
    fuzzed.assert_unharmed()


@FUZZ
@given(data=st.binary(min_size=1, max_size=1024))
def raw_rest_bytes(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(4096):  # the server answers (400) or closes; either ends the read
            pass


def test_rest_port_survives_raw_bytes(fuzzed: Fuzzed) -> None:
    raw_rest_bytes(fuzzed.cluster.node(3).http_port)
    fuzzed.assert_unharmed()
    with fuzzed.cluster.client(3, timeout=5.0) as client:
        assert client.raft().node_id == fuzzed.cluster.node(3).node_id
