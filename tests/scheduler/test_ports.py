"""Host ports in the Judge: shared port spaces, counted reasons, dynamic picks, replay."""

from __future__ import annotations

import pytest

from orion.model import NodeMeta, PortClaim, Task
from orion.scheduler import NodeView, Plan, schedule
from orion.scheduler.ports import (
    FOREIGN_BLOCK_S,
    PortBook,
    PortMarks,
    PortRequest,
    parse_port_range,
    port_requests,
)

GiB = 1024**3
ENGINE = "engine-a"


def node(
    node_id: str,
    space: str = ENGINE,
    host_ip: str = "127.0.0.1",
    status: str = "alive",
    ports: tuple[PortClaim, ...] = (),
) -> NodeView:
    meta = NodeMeta(
        id=node_id,
        memory_total=16 * GiB,
        cpu_total=4.0,
        host_ip=host_ip,
        port_space=space,
        address="127.0.0.1",
    )
    return NodeView(id=node_id, status=status, meta=meta, ports=ports)


def web(task_id: str, **ports: str) -> Task:
    bindings = {f"{container.removeprefix('p')}/tcp": host for container, host in ports.items()}
    return Task(id=task_id, name=task_id, image="img", memory=64 * 1024**2, cpu=0.1, port_bindings=bindings)


def claim(
    node_id: str, port: int, kind: str = "task", host_ip: str = "127.0.0.1", until: float = 0.0
) -> PortClaim:
    return PortClaim(
        host_ip=host_ip, port=port, protocol="tcp", node_id=node_id, task_id="old", kind=kind, until=until
    )


def placed(plan: Plan) -> dict[str, str]:
    return dict(plan.assignments)


def test_one_static_port_per_shared_engine_and_the_second_waits_with_a_counted_reason() -> None:
    nodes = [node("n1"), node("n2"), node("n3")]
    plan = schedule(nodes, [web("a", p80="8080"), web("b", p80="8080")], "spread", seed=4)
    assert list(placed(plan)) == ["a"]
    assert plan.host_ports == {"a": {"80/tcp": 8080}}
    holder = placed(plan)["a"]
    assert plan.pending_reasons == {"b": f"0/3 nodes fit: 3 port 8080/tcp in use on {holder}"}


def test_separate_engines_or_addresses_can_each_publish_the_same_port() -> None:
    engines = [node("n1", space="e1"), node("n2", space="e2"), node("n3", space="e3")]
    plan = schedule(engines, [web(f"t{i}", p80="9090") for i in range(4)], "spread", seed=1)
    assert sorted(placed(plan).values()) == ["n1", "n2", "n3"]
    assert plan.pending_reasons["t3"] == (
        "0/3 nodes fit: 1 port 9090/tcp in use on n1, 1 port 9090/tcp in use on n2, "
        "1 port 9090/tcp in use on n3"
    )
    addresses = [node("n1", host_ip="127.0.0.1"), node("n2", host_ip="127.0.0.2")]
    plan = schedule(addresses, [web("a", p80="9090"), web("b", p80="9090")], "spread", seed=1)
    assert sorted(placed(plan).values()) == ["n1", "n2"]


def test_a_wildcard_address_collides_with_every_address_of_its_engine() -> None:
    nodes = [node("n1", host_ip="0.0.0.0"), node("n2", host_ip="127.0.0.2")]
    plan = schedule(nodes, [web("a", p80="7070"), web("b", p80="7070")], "binpack", seed=0)
    assert len(plan.assignments) == 1 and len(plan.pending_reasons) == 1


def test_ports_held_by_a_dead_node_block_its_engine_until_released() -> None:
    # The demo after kill -9: node1's old container still holds 8080 on the shared engine.
    nodes = [
        node("node1", status="dead", ports=(claim("node1", 8080, kind="held"),)),
        node("node2"),
        node("node3"),
    ]
    plan = schedule(nodes, [web("w", p80="8080")], "binpack", seed=2)
    assert plan.pending_reasons == {
        "w": "0/3 nodes fit: 2 port 8080/tcp in use on node1 (container not yet removed), 1 not alive"
    }
    # A node on another engine can take it at once.
    elsewhere = [*nodes, node("node4", space="engine-b")]
    assert placed(schedule(elsewhere, [web("w", p80="8080")], "binpack", seed=2)) == {"w": "node4"}


def test_a_foreign_block_lapses_after_its_time() -> None:
    blocked = claim("n1", 8080, kind="foreign", until=1000.0 + FOREIGN_BLOCK_S)
    nodes = [node("n1", ports=(blocked,)), node("n2")]
    early = schedule(nodes, [web("w", p80="8080")], "binpack", seed=0, now=1010.0)
    assert early.pending_reasons["w"] == (
        "0/2 nodes fit: 2 port 8080/tcp in use outside Orion on 127.0.0.1 (seen by n1)"
    )
    late = schedule(nodes, [web("w", p80="8080")], "binpack", seed=0, now=1000.0 + FOREIGN_BLOCK_S)
    assert list(placed(late)) == ["w"]


def test_dynamic_ports_are_the_lowest_free_and_differ_within_a_task_and_a_batch() -> None:
    nodes = [node("n1", ports=(claim("n1", 20000), claim("n1", 20002)))]
    tasks = [web("a", p80="0", p81="0"), web("b", p80="0"), web("c", p80="20001")]
    plan = schedule(nodes, tasks, "binpack", seed=0, dynamic_ports=(20000, 20010))
    assert plan.host_ports == {"a": {"80/tcp": 20001, "81/tcp": 20003}, "b": {"80/tcp": 20004}}
    # c asked for 20001 statically: a took it first.
    assert plan.pending_reasons == {"c": "0/1 nodes fit: 1 port 20001/tcp in use on n1"}


def test_a_static_port_and_a_dynamic_one_in_one_task_never_collide() -> None:
    plan = schedule(
        [node("n1")], [web("a", p80="0", p81="20000")], "binpack", seed=0, dynamic_ports=(20000, 20001)
    )
    assert plan.host_ports == {"a": {"80/tcp": 20001, "81/tcp": 20000}}


def test_an_exhausted_dynamic_range_is_the_reason() -> None:
    nodes = [node("n1", ports=(claim("n1", 30000), claim("n1", 30001)))]
    plan = schedule(nodes, [web("a", p80="0")], "binpack", seed=0, dynamic_ports=(30000, 30001))
    assert plan.pending_reasons == {"a": "0/1 nodes fit: 1 no free dynamic port 30000-30001/tcp"}


def test_ports_are_checked_after_resources_so_each_node_is_counted_once() -> None:
    small = NodeView(
        id="small",
        status="alive",
        meta=NodeMeta(id="small", memory_total=GiB, cpu_total=4.0, port_space=ENGINE),
    )
    task = web("big", p80="8080")
    task.memory = 2 * GiB
    plan = schedule([small, node("n1", ports=(claim("n1", 8080),))], [task], "binpack", seed=0)
    reason = plan.pending_reasons["big"]
    assert reason.startswith("0/2 nodes fit: 1 insufficient memory")
    assert reason.endswith("1 port 8080/tcp in use on n1")


@pytest.mark.parametrize("limit", [None, 2])
def test_the_plan_replays_from_the_same_inputs(limit: int | None) -> None:
    nodes = [node(f"n{i}", space=f"e{i % 3}") for i in range(9)]
    tasks = [web(f"t{i}", p80="0" if i % 2 else str(8000 + i % 4)) for i in range(40)]
    first = schedule(nodes, tasks, "spread", seed=11, limit=limit, dynamic_ports=(21000, 21003))
    again = schedule(
        list(reversed(nodes)), tasks, "spread", seed=11, limit=limit, dynamic_ports=(21000, 21003)
    )
    assert first == again
    # No two placements share a port on one engine.
    seen: set[tuple[str, int]] = set()
    space_of = {n.id: n.meta.port_space for n in nodes}
    for task_id, node_id in first.assignments:
        for port in first.host_ports[task_id].values():
            assert (space_of[node_id], port) not in seen
            seen.add((space_of[node_id], port))


def test_tasks_without_ports_are_unaffected_by_a_full_port_space() -> None:
    nodes = [node("n1", ports=tuple(claim("n1", port) for port in range(20000, 20010)))]
    plain = Task(id="p", name="p", image="img", memory=GiB, cpu=1.0)
    assert placed(schedule(nodes, [plain], "binpack", seed=0, dynamic_ports=(20000, 20009))) == {"p": "n1"}


def test_port_book_floor_never_skips_a_port_left_out_for_one_task() -> None:
    book = PortBook()
    assert book.lowest_free("s", "127.0.0.1", "tcp", 100, 110, skip={100}) == 101
    # 100 was only skipped for that task: the next task still gets it.
    assert book.lowest_free("s", "127.0.0.1", "tcp", 100, 110) == 100


def test_port_requests_and_ranges_parse() -> None:
    task = Task(id="t", name="t", image="i", port_bindings={"80/tcp": "8080", "53/udp": "0", "81": ""})
    assert port_requests(task) == [
        PortRequest("80/tcp", "tcp", 8080),
        PortRequest("53/udp", "udp", 0),
        PortRequest("81", "tcp", 0),
    ]
    assert parse_port_range("20000-32000") == (20000, 32000)
    for bad in ("32000-20000", "0-10", "20000", "a-b", "1-70000"):
        with pytest.raises(ValueError, match="dynamic_ports: expected 'LOW-HIGH'"):
            parse_port_range(bad)


def test_port_marks_say_when_waiting_tasks_deserve_another_look() -> None:
    judged = PortMarks.read(releases=4, unblocks=[90.0, 130.0, 110.0], now=100.0)
    assert judged == PortMarks(4, 110.0)  # the lapsed block at 90 no longer matters
    assert not judged.freed_since(PortMarks(4, 110.0), now=105.0)
    assert judged.freed_since(PortMarks(5, 110.0), now=105.0)  # a claim was given up
    assert judged.freed_since(PortMarks(4, 130.0), now=110.0)  # a block lapsed
    # Tasks judged across a sweep are covered by the earliest count and the soonest lapse.
    assert judged.merge(PortMarks(6, 105.0)) == PortMarks(4, 105.0)
    assert PortMarks() == PortMarks(0, float("inf"))
