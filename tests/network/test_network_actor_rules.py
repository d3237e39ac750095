"""The network actor's decisions that are plain functions: whom the leader gives a subnet,
which container is which task, which overlay addresses to report."""

from __future__ import annotations

from orion.actors.network_actor import (
    NodeSubnet,
    OwnTask,
    address_reports,
    subnets_to_allocate,
    subnets_to_release,
    task_of_container,
)

CIDR = "10.42.0.0/16"


def test_the_leader_allocates_for_live_members_without_a_subnet_in_the_cidr() -> None:
    nodes = [
        NodeSubnet("n1", "alive", "10.42.0.0/24"),
        NodeSubnet("n2", "alive", ""),
        NodeSubnet("n3", "suspect", "10.50.0.0/24"),  # from another CIDR: reallocated
        NodeSubnet("n4", "dead", ""),
        NodeSubnet("n5", "left", ""),
    ]
    assert subnets_to_allocate(nodes, CIDR) == ["n2", "n3"]


def test_container_names_map_back_to_task_ids() -> None:
    assert task_of_container("orion-node1-3f2a-b7c1-0c0ffee0", "node1") == "3f2a-b7c1"
    assert task_of_container("orion-node10-abc-0c0ffee0", "node1") == ""
    assert task_of_container("orion-node1-x", "node1") == ""
    assert task_of_container("web", "node1") == ""


def test_only_changed_addresses_are_reported() -> None:
    tasks = [OwnTask("a", ""), OwnTask("b", "10.42.0.3"), OwnTask("c", "10.42.0.9"), OwnTask("d", "")]
    addresses = {
        "orion-n1-a-12345678": "10.42.0.2",
        "orion-n1-b-12345678": "10.42.0.3",
        "orion-n1-c-12345678": "10.42.0.4",  # restarted with a new address
        "orion-n2-d-12345678": "10.42.0.5",  # another node's container on a shared engine
    }
    assert address_reports("n1", tasks, addresses) == {"a": "10.42.0.2", "c": "10.42.0.4"}


def test_the_leader_releases_subnets_of_nodes_gone_long_enough() -> None:
    nodes = [
        NodeSubnet("n1", "alive", "10.42.0.0/24", since=0.0),
        NodeSubnet("n2", "dead", "10.42.1.0/24", since=1000.0),
        NodeSubnet("n3", "left", "10.42.2.0/24", since=1500.0),
        NodeSubnet("n4", "dead", "", since=0.0),
    ]
    assert subnets_to_release(nodes, release_after=600.0, now=2000.0) == ["n2"]
    assert subnets_to_release(nodes, release_after=600.0, now=2100.0) == ["n2", "n3"]
