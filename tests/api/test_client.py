"""orion.client against a real ApiServer whose handler is the in-memory node (tests/api/memory_node.py)."""

from __future__ import annotations

import threading

import msgspec
import pytest
import zmq

from orion.api.protocol import NodeInfo, RaftInfo, decode_reply, encode
from orion.api.server import ApiServer
from orion.client import Client, InvalidRequest, NoQuorum, NotFound, OrionError, Timeout, Unavailable
from orion.model import Task, TaskState
from tests.api.memory_node import MemoryNode


def free_port() -> int:
    """A port nothing listens on (bound then released by a throwaway server)."""
    probe = ApiServer("127.0.0.1", 0, MemoryNode())
    probe.start()
    port = probe.port
    probe.stop()
    return port


def test_submit_get_list_stop(api: ApiServer, node: MemoryNode) -> None:
    with Client([f"127.0.0.1:{api.port}"], timeout=2.0) as client:
        task = client.submit(
            "nginx",
            name="web",
            memory="256MiB",
            cpu=0.5,
            ports={"80/tcp": 8080, "53": "5353"},
            env={"A": "1"},
        )
        assert isinstance(task, Task)
        assert (task.name, task.image, task.memory) == ("web", "nginx", 256 * 1024**2)
        assert task.port_bindings == {"80/tcp": "8080", "53/tcp": "5353"}
        assert len(task.id) == 32
        assert client.task(task.id) == task
        assert [t.id for t in client.tasks()] == [task.id]
        assert client.stop(task.id).state == TaskState.STOPPED
        nodes = client.nodes()
        assert (
            isinstance(nodes[0], NodeInfo)
            and nodes[0].meta is not None
            and nodes[0].meta.tags == {"zone": "a"}
        )
        raft = client.raft()
        assert isinstance(raft, RaftInfo) and raft.leader_id == "node1"


def test_errors_become_exceptions(api: ApiServer, node: MemoryNode) -> None:
    with Client([f"127.0.0.1:{api.port}"], timeout=2.0) as client:
        with pytest.raises(NotFound, match="no task nope"):
            client.task("nope")
        with pytest.raises(InvalidRequest, match="memory: must be >= 0"):
            client.submit("nginx", memory=-5)
        with pytest.raises(InvalidRequest, match="memory: cannot parse size"):
            client.submit("nginx", memory="much")
        with pytest.raises(InvalidRequest, match="image: must not be empty"):
            client.submit("")
        node.no_quorum = True
        with pytest.raises(NoQuorum, match="2 of 3 voters unreachable"):
            client.submit("nginx")
        assert node.tasks == {}


def test_server_rejects_bad_input_before_the_handler(api: ApiServer, node: MemoryNode) -> None:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{api.port}")
    try:
        for body, expected in [
            (b"\xc1garbage", "malformed request"),
            (
                encode({"op": "SubmitTask", "id": "x", "name": "n", "image": "i", "memory": -1}),
                "memory: must be >= 0",
            ),
            (encode({"op": "GetTask", "id": "y" * 70_000}), "request too large"),
        ]:
            sock.send(body)
            assert sock.poll(5000)
            reply = decode_reply(sock.recv())
            assert not reply.ok and reply.error is not None
            assert reply.error.code == "invalid"
            assert expected in reply.error.message
    finally:
        sock.close(0)
    assert node.submits_seen == []
    assert api.stats["invalid"] == 3


def test_many_clients_at_once(api: ApiServer, node: MemoryNode) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with Client([f"127.0.0.1:{api.port}"], timeout=5.0) as client:
                for i in range(20):
                    client.submit("busybox", id=f"c{n}-{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(node.tasks) == 160


def test_failover_to_the_next_endpoint() -> None:
    dead = f"127.0.0.1:{free_port()}"
    node = MemoryNode("node2")
    live = ApiServer("127.0.0.1", 0, node)
    live.start()
    try:
        with Client([dead, f"127.0.0.1:{live.port}"], timeout=0.3, retries=2) as client:
            task = client.submit("nginx")
            assert list(node.tasks) == [task.id]
            assert client.raft().node_id == "node2"
    finally:
        live.stop()


def test_unavailable_node_sends_the_client_elsewhere() -> None:
    starting, ready = MemoryNode("node1"), MemoryNode("node2")
    starting.unavailable = True
    first, second = ApiServer("127.0.0.1", 0, starting), ApiServer("127.0.0.1", 0, ready)
    first.start()
    second.start()
    try:
        with Client([f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"], timeout=2.0) as client:
            client.submit("nginx")
        assert len(ready.tasks) == 1 and starting.tasks == {}
    finally:
        first.stop()
        second.stop()


def test_a_node_without_leader_is_retried_after_a_backoff(api: ApiServer, node: MemoryNode) -> None:
    node.unavailable_next = 2
    with Client([f"127.0.0.1:{api.port}"], timeout=2.0, retries=3) as client:
        client.submit("nginx")
    assert len(node.tasks) == 1
    node.unavailable_next = 3
    with (
        Client([f"127.0.0.1:{api.port}"], timeout=2.0, retries=3) as client,
        pytest.raises(Unavailable) as info,
    ):
        client.tasks()
    assert "no leader known yet" in info.value.message


def test_not_leader_is_asked_again_within_the_timeout(api: ApiServer, node: MemoryNode) -> None:
    node.not_leader_next = 3  # more refusals than the one attempt that retries=1 allows
    with Client([f"127.0.0.1:{api.port}"], timeout=5.0, retries=1) as client:
        task = client.submit("nginx")
    assert list(node.tasks) == [task.id]
    node.not_leader_next = 1000  # a hand-over that does not end: given up after the timeout
    with (
        Client([f"127.0.0.1:{api.port}"], timeout=0.3, retries=1) as client,
        pytest.raises(Unavailable, match="not the leader"),
    ):
        client.submit("nginx")
    assert len(node.tasks) == 1


def test_a_retried_submit_creates_no_duplicate(api: ApiServer, node: MemoryNode) -> None:
    node.swallow_next = 1  # the first attempt is applied but its answer is lost
    with Client([f"127.0.0.1:{api.port}"], timeout=0.3, retries=3) as client:
        task = client.submit("nginx", name="once")
    assert node.submits_seen == [task.id, task.id]
    assert list(node.tasks) == [task.id]


def test_a_changed_timeout_bounds_the_next_wait_for_an_answer(api: ApiServer, node: MemoryNode) -> None:
    """The socket's receive timeout follows ``client.timeout``: a call after it was lowered
    gives up on a lost answer at the new timeout, not the one the socket was opened with."""
    client = Client([f"127.0.0.1:{api.port}"], timeout=60.0, retries=3)
    client.tasks()  # the socket is open, waiting up to 60 s for each answer
    client.timeout = 0.3
    node.swallow_next = 1
    answered: list[Task] = []
    caller = threading.Thread(target=lambda: answered.append(client.submit("nginx")), daemon=True)
    caller.start()
    try:
        caller.join(20.0)
        assert answered, "the lost answer was waited for with the old 60-s timeout"
    finally:
        caller.join(90.0)  # a socket is closed only once no thread is in a call on it
        client.close()
    assert list(node.tasks) == [answered[0].id]


def test_all_endpoints_down_lists_them() -> None:
    endpoints = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    with Client(endpoints, timeout=0.1, retries=1) as client, pytest.raises(Unavailable) as info:
        client.tasks()
    for endpoint in endpoints:
        assert endpoint in info.value.message


def test_wait_returns_on_state_and_times_out(api: ApiServer, node: MemoryNode) -> None:
    with Client([f"127.0.0.1:{api.port}"], timeout=2.0) as client:
        task = client.submit("nginx")
        with pytest.raises(Timeout, match="still Pending"):
            client.wait(task.id, TaskState.RUNNING, timeout=0.2, interval=0.05)
        with node.lock:
            node.tasks[task.id].state = TaskState.RUNNING
        assert client.wait(task.id, TaskState.RUNNING, timeout=5).state == TaskState.RUNNING
        with node.lock:
            node.tasks[task.id].state = TaskState.FAILED
        with pytest.raises(OrionError, match="is Failed"):
            client.wait(task.id, TaskState.RUNNING, timeout=5)


def test_module_level_helpers_use_orion_endpoints(
    api: ApiServer, node: MemoryNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_ENDPOINTS", f"127.0.0.1:{api.port}")
    # A fresh thread gets a fresh default client that reads the environment.
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(_submit_with_module_helpers()))
    thread.start()
    thread.join()
    assert isinstance(result[0], Task)
    assert list(node.tasks) == [result[0].id]  # type: ignore[attr-defined]


def _submit_with_module_helpers() -> Task:
    from orion import client

    task = client.submit("nginx", ports={"80/tcp": "8080"})
    assert msgspec.structs.asdict(client.task(task.id)) == msgspec.structs.asdict(task)
    return task


def test_rate_limit_answers_unavailable_without_reaching_the_handler() -> None:
    node = MemoryNode()
    server = ApiServer("127.0.0.1", 0, node, rate_limit_per_s=0.01)  # one request, then one per 100 s
    server.start()
    try:
        with Client([f"127.0.0.1:{server.port}"], timeout=2.0, retries=1) as client:
            client.submit("nginx")
            with pytest.raises(Unavailable, match="rate limited"):
                client.submit("nginx")
        assert len(node.submits_seen) == 1
        assert server.stats["rate_limited"] == 1
    finally:
        server.stop()
