"""The ingress's pure parts: which tasks are endpoints, the slot diff HAProxy is told, the
``show servers state`` reader and the rendered configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from orion.ingress.haproxy_config import MIN_SLOTS, render_config
from orion.ingress.routing import (
    Endpoint,
    Mode,
    ServerSlot,
    endpoint_mode,
    haproxy_table,
    parse_servers_state,
    plan_changes,
    routing_table,
)
from orion.model import Desired, Health, HealthCheck, Task, TaskState
from orion.services.spec import Service, ServicePort, ServiceSpec, TaskTemplate

CHECK = HealthCheck(kind="tcp", port=80)


def service(name: str = "web", ports: tuple[tuple[int, int], ...] = ((8080, 80),)) -> Service:
    spec = ServiceSpec(
        name=name,
        template=TaskTemplate(image="orion-busybox:latest"),
        ports=[ServicePort(published=p, target=t) for p, t in ports],
    )
    return Service(name=name, spec=spec)


def task(
    slot: int,
    port: int,
    *,
    state: str = TaskState.RUNNING,
    host_ip: str = "127.0.0.2",
    target: int = 80,
    check: HealthCheck | None = None,
    health: str = Health.NONE,
    drain_at: float = 0.0,
    desired: str = Desired.RUN,
    node_id: str = "n2",
) -> Task:
    return Task(
        id=f"t{slot}-{port}",
        name=f"web.{slot}",
        image="orion-busybox:latest",
        state=state,
        service="web",
        slot=slot,
        host_ip=host_ip,
        host_ports={f"{target}/tcp": port},
        health_check=check,
        health=health,
        drain_at=drain_at,
        desired=desired,
        node_id=node_id,
    )


def slot(number: int, address: str = "127.0.0.1", port: int = 1, mode: Mode = Mode.MAINT) -> ServerSlot:
    return ServerSlot(f"s{number}", address, port, mode)


# ---------------------------------------------------------------------------- endpoints


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, Mode.READY),
        ({"check": CHECK, "health": Health.HEALTHY}, Mode.READY),
        ({"check": CHECK, "health": Health.STARTING}, None),
        ({"check": CHECK, "health": Health.UNHEALTHY}, None),
        ({"drain_at": 5.0}, Mode.DRAIN),
        ({"desired": Desired.STOP}, Mode.DRAIN),  # being stopped: keeps what it serves
        ({"drain_at": 5.0, "check": CHECK, "health": Health.UNHEALTHY}, Mode.DRAIN),
        ({"state": TaskState.SCHEDULED}, None),
        ({"state": TaskState.PENDING}, None),
        ({"state": TaskState.STOPPED}, None),
        ({"state": TaskState.FAILED}, None),
    ],
)
def test_endpoint_mode_follows_availability(kwargs: dict, expected: Mode | None) -> None:
    assert endpoint_mode(task(1, 20001, **kwargs)) == expected


def test_routing_table_sends_each_published_port_to_the_tasks_target() -> None:
    web = service(ports=((8080, 80), (8443, 443)))
    tasks = [
        task(1, 20001),
        task(1, 20002, target=443),
        task(2, 20003, host_ip="127.0.0.3", drain_at=1.0),
        task(3, 20004, state=TaskState.SCHEDULED),
    ]
    table = routing_table([web, service("plain", ports=())], lambda name: tasks if name == "web" else [])
    assert table == {
        8080: (Endpoint("127.0.0.2", 20001), Endpoint("127.0.0.3", 20003, Mode.DRAIN)),
        8443: (Endpoint("127.0.0.2", 20002),),
    }


def test_a_service_without_available_tasks_still_listens() -> None:
    table = routing_table([service()], lambda _: [task(1, 20001, state=TaskState.PENDING)])
    assert table == {8080: ()}


def test_wildcard_host_ip_is_reached_at_the_nodes_address() -> None:
    tasks = [task(1, 20001, host_ip="0.0.0.0", node_id="n7"), task(2, 20002, host_ip="", node_id="gone")]
    table = routing_table([service()], lambda _: tasks, {"n7": "127.0.0.7"}.get)
    assert table == {8080: (Endpoint("127.0.0.7", 20001),)}


def test_a_ready_task_wins_an_endpoint_shared_with_a_draining_one() -> None:
    tasks = [task(1, 20001, drain_at=1.0), task(2, 20001)]
    assert routing_table([service()], lambda _: tasks) == {8080: (Endpoint("127.0.0.2", 20001),)}


# ---------------------------------------------------------------------------- the diff


def test_a_new_endpoint_takes_a_free_slot_and_a_gone_one_goes_to_maint() -> None:
    current = {8080: [slot(1, "127.0.0.2", 20001, Mode.READY), slot(2)]}
    table = {8080: (Endpoint("127.0.0.3", 20009),)}
    changes = plan_changes(table, current)
    assert not changes.needs_reload
    assert changes.commands == [
        "set server port_8080/s2 addr 127.0.0.3 port 20009",
        "set server port_8080/s2 state ready",
        "set server port_8080/s1 state maint",  # last: the backend is never empty meanwhile
    ]


def test_draining_changes_state_only_and_is_ordered_after_additions() -> None:
    current = {8080: [slot(1, "127.0.0.2", 20001, Mode.READY), slot(2)]}
    table = {8080: (Endpoint("127.0.0.2", 20001, Mode.DRAIN), Endpoint("127.0.0.2", 20002))}
    assert plan_changes(table, current).commands == [
        "set server port_8080/s2 addr 127.0.0.2 port 20002",
        "set server port_8080/s2 state ready",
        "set server port_8080/s1 state drain",
    ]


def test_a_draining_endpoint_never_routed_here_is_not_added() -> None:
    current = {8080: [slot(1), slot(2)]}
    table = {8080: (Endpoint("127.0.0.2", 20001, Mode.DRAIN),)}
    assert plan_changes(table, current).commands == []


def test_a_stopped_drained_endpoint_leaves_its_slot() -> None:
    current = {8080: [slot(1, "127.0.0.2", 20001, Mode.DRAIN), slot(2, "127.0.0.2", 20002, Mode.READY)]}
    table = {8080: (Endpoint("127.0.0.2", 20002),)}
    assert plan_changes(table, current).commands == ["set server port_8080/s1 state maint"]


def test_an_endpoint_back_in_its_maint_slot_is_only_set_ready() -> None:
    current = {8080: [slot(1), slot(2, "127.0.0.2", 20001, Mode.MAINT)]}
    table = {8080: (Endpoint("127.0.0.2", 20001),)}
    assert plan_changes(table, current).commands == ["set server port_8080/s2 state ready"]


def test_a_full_backend_grows_with_add_server() -> None:
    current = {8080: [slot(1, "127.0.0.2", 20001, Mode.READY)]}
    table = {8080: (Endpoint("127.0.0.2", 20001), Endpoint("127.0.0.2", 20002), Endpoint("127.0.0.2", 20003))}
    assert plan_changes(table, current).commands == [
        "add server port_8080/s2 127.0.0.2:20002",
        "set server port_8080/s2 state ready",
        "add server port_8080/s3 127.0.0.2:20003",
        "set server port_8080/s3 state ready",
    ]


def test_maint_slots_are_filled_before_repointing_a_serving_one() -> None:
    current = {8080: [slot(1, "127.0.0.2", 20001, Mode.READY), slot(2)]}
    table = {8080: (Endpoint("127.0.0.2", 20005),)}
    commands = plan_changes(table, current).commands
    assert commands[0] == "set server port_8080/s2 addr 127.0.0.2 port 20005"


def test_a_converged_backend_needs_nothing() -> None:
    current = {
        8080: [slot(1, "127.0.0.2", 20001, Mode.READY), slot(2, "127.0.0.2", 20002, Mode.DRAIN), slot(3)]
    }
    table = {8080: (Endpoint("127.0.0.2", 20001), Endpoint("127.0.0.2", 20002, Mode.DRAIN))}
    changes = plan_changes(table, current)
    assert changes.commands == [] and not changes.needs_reload


def test_a_duplicate_slot_for_one_endpoint_is_released() -> None:
    current = {8080: [slot(1, "127.0.0.2", 20001, Mode.MAINT), slot(2, "127.0.0.2", 20001, Mode.READY)]}
    table = {8080: (Endpoint("127.0.0.2", 20001),)}
    assert plan_changes(table, current).commands == []  # s2 serves it; s1 is already in maint


def test_new_or_removed_published_ports_need_a_reload() -> None:
    current = {8080: [slot(1, "127.0.0.2", 20001, Mode.READY)]}
    grown = plan_changes(
        {8080: (Endpoint("127.0.0.2", 20002),), 9090: (Endpoint("127.0.0.2", 20003),)}, current
    )
    assert grown.needs_reload
    # The port both have is brought up to date meanwhile.
    assert grown.commands == [
        "set server port_8080/s1 addr 127.0.0.2 port 20002",
        "set server port_8080/s1 state ready",
    ]
    assert plan_changes({}, current).needs_reload


# ---------------------------------------------------------------------------- HAProxy's answers

COLUMNS = (
    "be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight"
    " srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state"
    " srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl"
    " srv_check_port srv_check_addr srv_agent_addr srv_agent_port"
)
# HAProxy 2.6's answer after: s1 "disabled" in the file, then set ready with a new address;
# s2 set to drain; s10 added at runtime (new servers start in maint).
SERVERS_STATE = f"""1
# {COLUMNS}
3 port_8080 1 s1 127.0.0.2 2 4 1 1 0 1 0 0 8 0 0 0 - 9999 - 0 0 - - 0
3 port_8080 2 s2 127.0.0.1 2 12 1 1 0 1 0 0 8 0 0 0 - 1 - 0 0 - - 0
3 port_8080 10 s10 127.0.0.1 0 5 1 1 1 1 0 0 8 0 0 0 - 1 - 0 0 - - 0
4 other 1 web1 10.0.0.1 2 0 1 1 0 1 0 0 8 0 0 0 - 80 - 0 0 - - 0

"""


def test_show_servers_state_is_read_by_column_name_and_admin_bits() -> None:
    servers = parse_servers_state(SERVERS_STATE)
    assert servers["port_8080"] == [
        ServerSlot("s1", "127.0.0.2", 9999, Mode.READY),  # 0x04: configured disabled, then enabled
        ServerSlot("s2", "127.0.0.1", 1, Mode.DRAIN),  # 0x08 forced drain
        ServerSlot("s10", "127.0.0.1", 1, Mode.MAINT),  # 0x01 forced maint
    ]
    table = haproxy_table(servers)
    assert list(table) == [8080]  # "other" is not the ingress's
    assert [s.name for s in table[8080]] == ["s1", "s2", "s10"]


def test_a_truncated_servers_state_is_an_error() -> None:
    with pytest.raises(ValueError, match="short line"):
        parse_servers_state("1\n# be_id be_name srv_id srv_name\n3 port_8080 1\n")


# ---------------------------------------------------------------------------- the configuration


def test_config_listens_per_port_with_ready_endpoints_and_spare_slots() -> None:
    table = {
        9090: (),
        8080: (Endpoint("127.0.0.2", 20001), Endpoint("127.0.0.3", 20002, Mode.DRAIN)),
    }
    text = render_config("127.0.0.4", Path("/run/x/admin.sock"), table)
    assert "stats socket /run/x/admin.sock mode 600 level admin expose-fd listeners" in text
    assert "option redispatch 1" in text and "mode tcp" in text
    listen_8080 = text[text.index("listen port_8080") : text.index("listen port_9090")]
    assert "bind 127.0.0.4:8080" in listen_8080
    assert "    server s1 127.0.0.2:20001\n" in listen_8080
    assert "127.0.0.3" not in listen_8080  # draining: not routed by a fresh process
    assert listen_8080.count("disabled") == MIN_SLOTS - 1
    assert text.index("listen port_8080") < text.index("listen port_9090")


def test_config_without_ports_is_refused() -> None:
    with pytest.raises(ValueError, match="no published port"):
        render_config("127.0.0.1", Path("/tmp/a.sock"), {})
