"""The overlay planner (orion/network/overlay_plan.py): routes, ARP and FDB entries per peer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orion.network.overlay_plan import (
    Changes,
    Forwarding,
    Neighbour,
    Peer,
    Route,
    Tables,
    diff,
    overlay_mtu,
    plan,
    vtep_mac_for,
)

B = Peer("b", "10.42.1.0/24", "10.99.0.2", "02:00:00:00:00:0b")
C = Peer("c", "10.42.2.0/24", "10.99.0.3", "02:00:00:00:00:0c")


def test_one_route_neighbour_and_fdb_entry_per_peer() -> None:
    desired = plan("10.42.0.0/24", "10.99.0.1", 1500, [C, B])
    assert desired.address == "10.42.0.0"
    assert desired.mtu == 1450
    assert desired.routes == {Route("10.42.1.0/24", "10.42.1.0"), Route("10.42.2.0/24", "10.42.2.0")}
    assert desired.neighbours == {
        Neighbour("10.42.1.0", "02:00:00:00:00:0b"),
        Neighbour("10.42.2.0", "02:00:00:00:00:0c"),
    }
    assert desired.forwarding == {
        Forwarding("02:00:00:00:00:0b", "10.99.0.2"),
        Forwarding("02:00:00:00:00:0c", "10.99.0.3"),
    }
    assert desired.skipped == ()


@pytest.mark.parametrize(
    ("peer", "why"),
    [
        (Peer("d", "", "10.99.0.4", "02:00:00:00:00:0d"), "no subnet yet"),
        (Peer("d", "10.42.3.0/24", "", ""), "no VTEP"),
        (Peer("d", "10.42.3.0/24", "10.99.0.4", "zz"), "bad VTEP MAC"),
        (Peer("d", "10.42.0.0/24", "10.99.0.4", "02:00:00:00:00:0d"), "this node's"),
        (Peer("d", "10.42.1.0/24", "10.99.0.4", "02:00:00:00:00:0d"), "b's"),
        (Peer("d", "10.42.3.0/24", "10.99.0.1", "02:00:00:00:00:0d"), "underlay address"),
    ],
)
def test_peers_that_cannot_be_routed_are_skipped_with_the_reason(peer: Peer, why: str) -> None:
    desired = plan("10.42.0.0/24", "10.99.0.1", 1500, [B, peer])
    assert desired.routes == {Route("10.42.1.0/24", "10.42.1.0")}
    assert len(desired.skipped) == 1
    assert desired.skipped[0].startswith("d: ") and why in desired.skipped[0]


def test_diff_removes_what_is_gone_and_replaces_a_changed_vtep() -> None:
    before = plan("10.42.0.0/24", "10.99.0.1", 1500, [B, C])
    actual = Tables(before.routes, before.neighbours, before.forwarding)
    moved_b = Peer("b", B.subnet, "10.99.0.9", "02:00:00:00:00:1b")  # b restarted elsewhere
    changes = diff(plan("10.42.0.0/24", "10.99.0.1", 1500, [moved_b]), actual)
    assert changes.del_routes == (Route("10.42.2.0/24", "10.42.2.0"),)
    assert set(changes.del_neighbours) == {
        Neighbour("10.42.1.0", "02:00:00:00:00:0b"),
        Neighbour("10.42.2.0", "02:00:00:00:00:0c"),
    }
    assert changes.add_neighbours == (Neighbour("10.42.1.0", "02:00:00:00:00:1b"),)
    assert changes.add_forwarding == (Forwarding("02:00:00:00:00:1b", "10.99.0.9"),)
    assert changes.add_routes == ()  # same subnet, same gateway: the route stays
    assert diff(before, actual).empty
    assert Changes().empty


def test_mtu_leaves_room_for_the_vxlan_headers() -> None:
    assert overlay_mtu(9000) == 8950
    with pytest.raises(ValueError, match="underlay MTU 600"):
        overlay_mtu(600)


def test_vtep_macs_are_stable_unicast_and_local() -> None:
    mac = vtep_mac_for("node1", "cluster")
    assert mac == vtep_mac_for("node1", "cluster")
    assert mac != vtep_mac_for("node2", "cluster")
    assert int(mac[:2], 16) & 0b11 == 0b10  # locally administered, not multicast


peers = st.lists(
    st.builds(
        Peer,
        node_id=st.sampled_from(["n1", "n2", "n3", "n4", "n5"]),
        subnet=st.sampled_from(["", "10.42.0.0/24", "10.42.1.0/24", "10.42.2.0/24", "10.42.3.0/24"]),
        underlay_ip=st.sampled_from(["", "10.99.0.1", "10.99.0.2", "10.99.0.3"]),
        vtep_mac=st.sampled_from(["", "02:00:00:00:00:01", "02:00:00:00:00:02", "bad"]),
    ),
    max_size=8,
)


@given(peers, peers)
def test_applying_the_diff_reaches_the_plan_and_no_subnet_points_two_ways(
    first: list[Peer], second: list[Peer]
) -> None:
    start = plan("10.42.0.0/24", "10.99.0.1", 1500, first)
    target = plan("10.42.0.0/24", "10.99.0.1", 1500, second)
    for desired in (start, target):
        subnets = [route.subnet for route in desired.routes]
        assert len(subnets) == len(set(subnets))
        assert "10.42.0.0/24" not in subnets
        macs = [entry.mac for entry in desired.forwarding]
        assert len(macs) == len(set(macs))
    actual = Tables(start.routes, start.neighbours, start.forwarding)
    changes = diff(target, actual)
    routes = (actual.routes - set(changes.del_routes)) | set(changes.add_routes)
    neighbours = (actual.neighbours - set(changes.del_neighbours)) | set(changes.add_neighbours)
    forwarding = (actual.forwarding - set(changes.del_forwarding)) | set(changes.add_forwarding)
    assert (routes, neighbours, forwarding) == (target.routes, target.neighbours, target.forwarding)
