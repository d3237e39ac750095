"""The overlay's plan: from this node's subnet and its peers' (subnet, underlay address, VTEP
MAC), the VXLAN device's settings and every route, ARP neighbour and FDB entry it should hold.

Flannel's vxlan backend is the model. Each node owns one /24 of the cluster CIDR; its VXLAN
device ("VTEP") carries the subnet's .0 and a MAC that peers learn from gossip (never by
flooding: the device is made with learning off). To reach a peer's /24 the kernel needs three
entries on the device, one per peer:

- a route ``peer/24 via peer.0 dev vxlan onlink`` (onlink: peer.0 is not in any local subnet);
- an ARP neighbour ``peer.0 -> peer's VTEP MAC`` (so no ARP request is ever sent);
- an FDB entry ``peer's VTEP MAC -> peer's underlay address`` (where to send the UDP packet).

Pure: ``plan`` and ``diff`` only compute; orion/network/vxlan.py applies the result with
netlink, and orion/actors/network_actor.py calls it whenever gossip or the FSM change
(level-triggered: every pass computes the whole desired state and removes what is not in it).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from orion.network.ipam import vtep_address

VXLAN_OVERHEAD = 50  # outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass(frozen=True, slots=True, order=True)
class Peer:
    """Another node as the overlay needs it: its subnet (FSM) and VTEP (gossip meta)."""

    node_id: str
    subnet: str
    underlay_ip: str
    vtep_mac: str


@dataclass(frozen=True, slots=True, order=True)
class Route:
    subnet: str  # a peer's /24
    gateway: str  # the peer's VTEP address (.0), reached on-link through the VXLAN device


@dataclass(frozen=True, slots=True, order=True)
class Neighbour:
    address: str  # a peer's VTEP address (.0)
    mac: str  # the peer's VTEP MAC


@dataclass(frozen=True, slots=True, order=True)
class Forwarding:
    mac: str  # a peer's VTEP MAC
    underlay_ip: str  # where its VXLAN packets go


@dataclass(frozen=True, slots=True)
class OverlayPlan:
    """What the VXLAN device and its tables should hold; ``skipped`` says which peers were
    left out and why (logged by the actor)."""

    address: str  # this node's VTEP address (its subnet's .0), as a /32 on the device
    mtu: int
    routes: frozenset[Route] = frozenset()
    neighbours: frozenset[Neighbour] = frozenset()
    forwarding: frozenset[Forwarding] = frozenset()
    skipped: tuple[str, ...] = field(default=())


def overlay_mtu(underlay_mtu: int) -> int:
    """The MTU of the VXLAN device, and of the task bridge behind it: room for the VXLAN headers."""
    if underlay_mtu < 576 + VXLAN_OVERHEAD:
        raise ValueError(f"underlay MTU {underlay_mtu} leaves no room for VXLAN ({VXLAN_OVERHEAD} bytes)")
    return underlay_mtu - VXLAN_OVERHEAD


def peer_problem(peer: Peer) -> str:
    """Why ``peer`` cannot be routed to ("" when it can)."""
    if not peer.subnet:
        return "no subnet yet"
    if not peer.underlay_ip or not peer.vtep_mac:
        return "no VTEP in its gossip meta yet"
    try:
        ipaddress.IPv4Network(peer.subnet, strict=True)
        ipaddress.IPv4Address(peer.underlay_ip)
    except ValueError as exc:
        return f"bad address: {exc}"
    if not _MAC.match(peer.vtep_mac):
        return f"bad VTEP MAC {peer.vtep_mac!r}"
    return ""


def plan(own_subnet: str, own_underlay_ip: str, underlay_mtu: int, peers: Iterable[Peer]) -> OverlayPlan:
    """The desired state for a node owning ``own_subnet``. A peer without a subnet or VTEP is
    skipped, as is one claiming this node's subnet, underlay address or another peer's subnet or
    VTEP MAC (the lowest node id keeps it): a route or MAC must never point two ways."""
    routes: set[Route] = set()
    neighbours: set[Neighbour] = set()
    forwarding: set[Forwarding] = set()
    skipped: list[str] = []
    claimed: dict[str, str] = {own_subnet: "this node"}
    macs: dict[str, str] = {}
    for peer in sorted(peers):
        problem = peer_problem(peer)
        if not problem and peer.underlay_ip == own_underlay_ip:
            problem = "has this node's underlay address"
        if not problem and peer.subnet in claimed:
            problem = f"subnet {peer.subnet} is {claimed[peer.subnet]}'s"
        if not problem and peer.vtep_mac in macs:
            problem = f"VTEP MAC {peer.vtep_mac} is {macs[peer.vtep_mac]}'s"
        if problem:
            skipped.append(f"{peer.node_id}: {problem}")
            continue
        claimed[peer.subnet] = peer.node_id
        macs[peer.vtep_mac] = peer.node_id
        gateway = vtep_address(peer.subnet)
        mac = peer.vtep_mac
        routes.add(Route(peer.subnet, gateway))
        neighbours.add(Neighbour(gateway, mac))
        forwarding.add(Forwarding(mac, peer.underlay_ip))
    return OverlayPlan(
        address=vtep_address(own_subnet),
        mtu=overlay_mtu(underlay_mtu),
        routes=frozenset(routes),
        neighbours=frozenset(neighbours),
        forwarding=frozenset(forwarding),
        skipped=tuple(skipped),
    )


@dataclass(frozen=True, slots=True)
class Tables:
    """What the VXLAN device holds now (read by the shell), in the plan's terms."""

    routes: frozenset[Route] = frozenset()
    neighbours: frozenset[Neighbour] = frozenset()
    forwarding: frozenset[Forwarding] = frozenset()


@dataclass(frozen=True, slots=True)
class Changes:
    """Entries to add and to delete, deletions first: a peer whose VTEP MAC or underlay
    address changed has its old entries removed before the new ones go in. Neighbours and FDB
    entries go in before the routes that need them; routes go first when deleting."""

    del_routes: tuple[Route, ...] = ()
    del_neighbours: tuple[Neighbour, ...] = ()
    del_forwarding: tuple[Forwarding, ...] = ()
    add_forwarding: tuple[Forwarding, ...] = ()
    add_neighbours: tuple[Neighbour, ...] = ()
    add_routes: tuple[Route, ...] = ()

    @property
    def empty(self) -> bool:
        return not any(
            (
                self.del_routes,
                self.del_neighbours,
                self.del_forwarding,
                self.add_forwarding,
                self.add_neighbours,
                self.add_routes,
            )
        )


def diff(desired: OverlayPlan, actual: Tables) -> Changes:
    """What turns ``actual`` into ``desired`` (sorted, so a pass is reproducible). A neighbour
    or FDB entry for the same key with another value counts as one to delete and one to add."""
    want_routes = desired.routes
    want_neighbours = desired.neighbours
    want_forwarding = desired.forwarding
    return Changes(
        del_routes=tuple(sorted(actual.routes - want_routes)),
        del_neighbours=tuple(sorted(actual.neighbours - want_neighbours)),
        del_forwarding=tuple(sorted(actual.forwarding - want_forwarding)),
        add_forwarding=tuple(sorted(want_forwarding - actual.forwarding)),
        add_neighbours=tuple(sorted(want_neighbours - actual.neighbours)),
        add_routes=tuple(sorted(want_routes - actual.routes)),
    )


def vtep_mac_for(node_id: str, cluster_key: str = "") -> str:
    """A stable, locally administered unicast MAC for a node's VTEP: the same after a restart,
    so peers' FDB and ARP entries stay right while the node's gossip meta catches up."""
    digest = hashlib.sha256(f"orion-vtep/{cluster_key}/{node_id}".encode()).digest()
    octets = [0x02, *digest[:5]]  # 0x02: locally administered, unicast
    return ":".join(f"{octet:02x}" for octet in octets)
