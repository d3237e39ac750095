"""The PRD scenarios and the host faults on a bed of three real hosts in miniature: each host
a network namespace with its own underlay address, dockerd and ``orion node``."""

from __future__ import annotations

import ipaddress
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from orion.testing.hosts import HostBed, netns
from orion.testing.hosts.cgroups import pids
from orion.testing.localcluster import wait_for
from tests.hosts.conftest import restore

pytestmark = [pytest.mark.hosts, pytest.mark.cluster, pytest.mark.docker]

IMAGE = "orion-busybox:latest"
SLEEP = ["sleep", "3600"]
SETTINGS = {"resources": {"memory": "16GiB", "cpu": 4.0}}
TAGS = {i: {"tags": {"host": f"h{i}"}} for i in (1, 2, 3)}  # a task can ask for a host by name


@pytest.fixture(scope="module")
def shared_bed(make_bed: Any) -> HostBed:
    return make_bed(3, settings=SETTINGS, per_node=TAGS)


@pytest.fixture
def bed(shared_bed: HostBed) -> Iterator[HostBed]:
    yield shared_bed
    restore(shared_bed)


def running(client: Any, task_id: str, timeout: float = 60.0, elsewhere_than: str = "") -> Any:
    def check() -> Any:
        task = client.task(task_id)
        return task.state == "Running" and task.node_id != elsewhere_than and task

    where = f" off {elsewhere_than}" if elsewhere_than else ""
    return wait_for(check, timeout, what=f"task {task_id} Running{where}")


def one_container(bed: HostBed, task_id: str, node_id: str) -> bool:
    """Exactly one running container of the task among all hosts' engines, on its node's host."""
    found = bed.containers(task_id)
    return sum(len(c) for c in found.values()) == 1 and list(found) == [bed.host_of(node_id)]


def test_bed_has_three_hosts_on_a_private_lan_and_a_raft_cluster(bed: HostBed) -> None:
    subnet = bed.subnet
    assert subnet.is_private and subnet.prefixlen == 24
    for host in bed.hosts:
        addr = json.loads(netns.run(["ip", "-n", host.netns, "-j", "-4", "addr", "show", "eth0"]))[0]
        assert addr["mtu"] == 1500
        assert [a["local"] for a in addr["addr_info"]] == [host.address]
        routes = json.loads(netns.run(["ip", "-n", host.netns, "-j", "-4", "route"]))
        destinations = {r["dst"] for r in routes}
        # Only the bed's /24 and the engine's own bridge: no way out of the bed.
        assert "default" not in destinations
        assert all(ipaddress.ip_network(d).is_private for d in destinations), destinations
        with bed.engine(host.index) as engine:
            names = {tag for image in engine.images.list() for tag in image.tags}
            assert IMAGE in names
            bridge = engine.networks.get("bridge").attrs["IPAM"]["Config"][0]["Subnet"]
            assert bridge == f"172.31.{host.index}.0/24"
    lan = json.loads(netns.run(["ip", "-n", f"{bed.id}-lan", "-j", "link", "show", "master", "br0"]))
    assert sorted(link["ifname"] for link in lan) == ["h1", "h2", "h3", "root"]
    root_routes = json.loads(netns.run(["ip", "-j", "-4", "route", "show", "dev", bed.id]))
    assert [r["dst"] for r in root_routes] == [str(subnet)]
    with bed.cluster.client() as client:
        raft = client.raft()
        assert sorted(raft.voters) == sorted(n.node_id for n in bed.cluster.nodes)


def test_scenario_a_bootstrap_and_join_by_underlay_address(bed: HostBed) -> None:
    with bed.cluster.client() as client:
        nodes = wait_for(
            lambda: (ns := client.nodes()) and len(ns) == 3 and all(n.status == "alive" for n in ns) and ns,
            30,
            what="3 alive members",
        )
        assert {n.suffrage for n in nodes} == {"voter"}
        assert sum(1 for n in nodes if n.role == "leader") == 1
        addresses = {n.id: n.meta.address for n in nodes}
        assert addresses == {node.node_id: bed.host(node.index).address for node in bed.cluster.nodes}


def test_scenario_b_task_runs_in_the_chosen_hosts_engine(bed: HostBed) -> None:
    with bed.cluster.client() as client:
        task = client.submit(
            IMAGE,
            name="web",
            command=["httpd", "-f", "-p", "80", "-h", "/www"],
            ports={"80/tcp": "8080"},
            memory="64MiB",
            cpu=0.1,
            node_selectors={"host": "h3"},
        )
        task = running(client, task.id)
    assert task.node_id == bed.cluster.node(3).node_id
    found = bed.containers(task.id)
    assert list(found) == [3]  # in host 3's `docker ps`, in no other engine's
    (container,) = found[3]
    assert container.labels["orion.node.id"] == task.node_id
    assert container.attrs["HostConfig"]["Memory"] == 64 * 1024**2
    assert container.attrs["HostConfig"]["NanoCpus"] == 100_000_000
    # Published on host 3's underlay address, reached from the root namespace through the LAN.
    assert task.host_ip == bed.host(3).address
    url = f"http://{bed.host(3).address}:8080/"
    page = wait_for(lambda: urllib.request.urlopen(url, timeout=2).read(), 30, what=url)
    assert b"served by orion" in page
    with bed.cluster.client() as client:
        client.remove(task.id, force=True)


def test_scenario_c_impossible_memory_stays_pending_and_the_cluster_serves(bed: HostBed) -> None:
    with bed.cluster.client() as client:
        huge = client.submit(IMAGE, name="huge", memory="100GiB", command=SLEEP)
        reason = wait_for(lambda: "nodes fit" in (r := client.task(huge.id).reason) and r, 20)
        assert reason.startswith("0/3 nodes fit: 3 insufficient memory")
        small = client.submit(IMAGE, name="small", memory="64MiB", command=SLEEP)
        small = running(client, small.id)
        assert client.task(huge.id).state == "Pending"
        assert not any(bed.containers(huge.id))
        wait_for(lambda: one_container(bed, small.id, small.node_id), 30, what="one container of small")
        client.remove(huge.id, force=True)
        client.remove(small.id, force=True)


def test_partitioned_hosts_tasks_are_not_duplicated_after_heal(bed: HostBed) -> None:
    with bed.cluster.client() as client:
        task = running(client, client.submit(IMAGE, name="cut", command=SLEEP).id)
        victim = bed.host_of(task.node_id)
        others = [h.index for h in bed.hosts if h.index != victim]
        bed.isolate(victim)
        assert netns.cut_addresses(bed.host(victim).netns) == sorted(bed.host(i).address for i in others)
    with bed.cluster.client(*others) as majority:
        moved = running(majority, task.id, timeout=90, elsewhere_than=task.node_id)
    bed.heal()
    with bed.cluster.client() as client:
        wait_for(
            lambda: all(n.status == "alive" for n in client.nodes()) and len(client.nodes()) == 3,
            60,
            what="the healed host alive again",
        )
        settled = running(client, task.id)
        assert settled.node_id == moved.node_id
    wait_for(lambda: one_container(bed, task.id, moved.node_id), 60, what="exactly one running container")


def test_killed_host_dies_whole_and_its_tasks_run_elsewhere(bed: HostBed) -> None:
    with bed.cluster.client() as client:
        tasks = [running(client, client.submit(IMAGE, name=f"k{i}", command=SLEEP).id) for i in range(3)]
    victim_id = tasks[0].node_id
    victim = bed.host_of(victim_id)
    on_victim = [t for t in tasks if t.node_id == victim_id]
    with bed.engine(victim) as engine:
        container_pids = [c.attrs["State"]["Pid"] for c in engine.containers.list()]
    assert len(container_pids) >= len(on_victim)
    killed = bed.kill_host(victim)
    host = bed.host(victim)
    assert not pids(host.cgroup) and not netns.netns_pids(host.netns)
    assert set(container_pids) <= set(killed)  # the host's containers died with it
    assert not any(netns.pid_alive(pid) for pid in container_pids)
    survivors = [h.index for h in bed.hosts if h.index != victim]
    with bed.cluster.client(*survivors) as client:
        moved = {t.id: running(client, t.id, timeout=90, elsewhere_than=victim_id) for t in on_victim}
    for task in moved.values():
        assert one_container(bed, task.id, task.node_id)
    bed.restart_host(victim)
    with bed.cluster.client() as client:
        wait_for(
            lambda: any(n.id == victim_id and n.status == "alive" for n in client.nodes()),
            60,
            what="the restarted host alive",
        )
        for task in tasks:
            final = running(client, task.id)
            wait_for(
                lambda t=final: one_container(bed, t.id, t.node_id), 60, what=f"one container of {final.id}"
            )
