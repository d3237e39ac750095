"""The overlay on a bed of three real hosts in miniature (issue 19): every node gets its own
/24 through Raft, tasks get flat addresses in it, and a task on one host reaches a task on
another by that address over VXLAN; when a host dies its routes go and its tasks run
elsewhere with new addresses, reachable again."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from typing import Any

import pytest

from orion.testing.hosts import HostBed, netns
from orion.testing.localcluster import wait_for
from tests.hosts.conftest import restore

pytestmark = [pytest.mark.hosts, pytest.mark.cluster, pytest.mark.docker]

IMAGE = "orion-busybox:latest"
SLEEP = ["sleep", "3600"]
WEB = ["httpd", "-f", "-p", "80", "-h", "/www"]
SETTINGS = {"resources": {"memory": "16GiB", "cpu": 4.0}}
# Host 1 runs the probing task; the task it reaches runs on host 2 or 3, so either can die.
TAGS = {i: {"tags": {"host": f"h{i}", "role": "probe" if i == 1 else "worker"}} for i in (1, 2, 3)}


@pytest.fixture(scope="module")
def overlay_bed(make_bed: Any) -> HostBed:
    return make_bed(3, settings=SETTINGS, per_node=TAGS, overlay=True)


@pytest.fixture
def bed(overlay_bed: HostBed) -> Iterator[HostBed]:
    yield overlay_bed
    restore(overlay_bed)


def host_subnet(bed: HostBed, index: int, timeout: float = 30.0) -> ipaddress.IPv4Network:
    """The /24 of host ``index``, as its Docker bridge for tasks holds it (gateway .1), once
    the node has its subnet from the leader and made the network."""
    command = ["ip", "-n", bed.host(index).netns, "-j", "-4", "addr", "show", "orion0"]
    shown = wait_for(lambda: json.loads(netns.run(command)), timeout, what=f"h{index}'s orion0 bridge")
    info = shown[0]["addr_info"][0]
    assert info["local"].endswith(".1")
    return ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False)


def overlay_routes(bed: HostBed, index: int) -> set[str]:
    routes = json.loads(
        netns.run(["ip", "-n", bed.host(index).netns, "-j", "-4", "route", "show", "dev", "orion.vxlan"])
    )
    return {r["dst"] for r in routes}


def running_with_ip(client: Any, task_id: str, timeout: float = 90.0, elsewhere_than: str = "") -> Any:
    def check() -> Any:
        task = client.task(task_id)
        ok = task.state == "Running" and task.overlay_ip and task.node_id != elsewhere_than
        return ok and task

    return wait_for(check, timeout, what=f"task {task_id} Running with an overlay address")


def fetch(bed: HostBed, client_task: Any, address: str) -> str:
    """An HTTP GET from inside ``client_task``'s container to ``address``:80 (busybox nc)."""
    host = bed.host_of(client_task.node_id)
    with bed.engine(host) as engine:
        (container,) = engine.containers.list(filters={"label": f"orion.task.id={client_task.id}"})
        request = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {address} 80"
        result = container.exec_run(["sh", "-c", request])
    return result.output.decode(errors="replace") if result.exit_code == 0 else ""


def test_each_node_has_its_own_subnet_and_routes_to_the_others(bed: HostBed) -> None:
    subnets = {index: host_subnet(bed, index) for index in (1, 2, 3)}
    assert len(set(subnets.values())) == 3
    cluster = ipaddress.ip_network("10.42.0.0/16")
    assert all(subnet.subnet_of(cluster) and subnet.prefixlen == 24 for subnet in subnets.values())
    for index in (1, 2, 3):
        others = {str(subnets[i]) for i in (1, 2, 3) if i != index}
        wait_for(lambda i=index, o=others: overlay_routes(bed, i) == o, 30, what=f"h{index}'s overlay routes")
        link = json.loads(
            netns.run(["ip", "-n", bed.host(index).netns, "-j", "-d", "link", "show", "orion.vxlan"])
        )
        assert link[0]["mtu"] == 1450  # the bed's 1500 less VXLAN's 50
        assert link[0]["linkinfo"]["info_data"]["learning"] is False


def test_a_task_reaches_another_hosts_task_by_overlay_ip_and_again_after_that_host_dies(bed: HostBed) -> None:
    with bed.cluster.client() as client:
        probe = client.submit(IMAGE, name="ov-probe", command=SLEEP, node_selectors={"role": "probe"})
        web = client.submit(IMAGE, name="ov-web", command=WEB, node_selectors={"role": "worker"})
        probe, web = running_with_ip(client, probe.id), running_with_ip(client, web.id)
    victim = bed.host_of(web.node_id)
    (survivor,) = {2, 3} - {victim}
    assert ipaddress.ip_address(probe.overlay_ip) in host_subnet(bed, 1)
    assert ipaddress.ip_address(web.overlay_ip) in host_subnet(bed, victim)
    assert not web.host_ports  # nothing published: reached by its own address only
    page = wait_for(lambda: fetch(bed, probe, web.overlay_ip), 30, what=f"a page from {web.overlay_ip}")
    assert "200 OK" in page and "served by orion" in page

    # The web task's host dies with its engine: its subnet's route goes from the others, and
    # the task runs again on the other worker host, with an address of that host's subnet.
    victim_subnet = str(host_subnet(bed, victim))
    bed.kill_host(victim)
    for index in (1, survivor):
        wait_for(
            lambda i=index: victim_subnet not in overlay_routes(bed, i),
            30,
            what=f"h{victim}'s route gone from h{index}",
        )
    with bed.cluster.client(1, survivor) as client:
        moved = running_with_ip(client, web.id, elsewhere_than=web.node_id)
    assert bed.host_of(moved.node_id) == survivor
    assert ipaddress.ip_address(moved.overlay_ip) in host_subnet(bed, survivor)
    assert moved.overlay_ip != web.overlay_ip
    page = wait_for(lambda: fetch(bed, probe, moved.overlay_ip), 30, what=f"a page from {moved.overlay_ip}")
    assert "served by orion" in page
    # The dead host comes back: the others route to its subnet again within seconds (it kept
    # its subnet: it was gone for less than [network] release_after).
    bed.restart_host(victim)
    for index in (1, survivor):
        wait_for(
            lambda i=index: victim_subnet in overlay_routes(bed, i),
            30,
            what=f"h{victim}'s route back on h{index}",
        )
    assert host_subnet(bed, victim, timeout=60) == ipaddress.ip_network(victim_subnet)
    with bed.cluster.client(1, survivor) as client:
        for task in (probe, moved):
            client.remove(task.id, force=True)


def lookup(bed: HostBed, client_task: Any, name: str) -> list[str]:
    """The addresses ``name`` resolves to inside ``client_task``'s container (busybox nslookup,
    through Docker's embedded resolver, which forwards it to the node's)."""
    host = bed.host_of(client_task.node_id)
    with bed.engine(host) as engine:
        (container,) = engine.containers.list(filters={"label": f"orion.task.id={client_task.id}"})
        result = container.exec_run(["sh", "-c", f"nslookup -type=a {name}"])  # a busybox applet of sh
    text = result.output.decode(errors="replace")
    answers = text.split(f"Name:\t{name}")[1:] if result.exit_code == 0 else []
    return sorted(
        line.split("Address:")[1].strip()
        for part in answers
        for line in part.splitlines()
        if "Address:" in line
    )


def test_a_service_name_resolves_to_its_replicas_overlay_addresses(bed: HostBed) -> None:
    with bed.cluster.client() as client:
        probe = client.submit(IMAGE, name="ov-dns-probe", command=SLEEP, node_selectors={"role": "probe"})
        probe = running_with_ip(client, probe.id)
        client.create_service("ovweb", IMAGE, command=WEB, replicas=2, constraints={"role": "worker"})

        def replicas_with_ips() -> list[str]:
            tasks = [
                t for t in client.tasks() if t.service == "ovweb" and t.state == "Running" and t.overlay_ip
            ]
            return len(tasks) == 2 and sorted(t.overlay_ip for t in tasks)

        addresses = wait_for(replicas_with_ips, 90, what="two replicas of ovweb with overlay addresses")
        wait_for(lambda: lookup(bed, probe, "ovweb") == addresses, 30, what=f"ovweb resolving to {addresses}")
        assert lookup(bed, probe, "ovweb.orion") == addresses
        page = fetch(bed, probe, addresses[0])
        assert "served by orion" in page
        # Scaled down to one: the name follows.
        client.scale_service("ovweb", 1)
        wait_for(lambda: len(lookup(bed, probe, "ovweb")) == 1, 60, what="ovweb resolving to one replica")
        assert set(lookup(bed, probe, "ovweb")) <= set(addresses)
        client.remove_service("ovweb")
        client.remove(probe.id, force=True)
