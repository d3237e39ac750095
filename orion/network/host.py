"""One node's overlay, put together: the VXLAN device (orion/network/vxlan.py), the iptables
rules beside Docker's (firewall.py) and the Docker bridge network its tasks run on
(docker_net.py). ``start`` runs before gossip starts, so the node's first gossip meta already
carries its VTEP; ``converge`` is called by the network actor on every pass."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any

import docker
from pyroute2 import IPRoute

from orion.network.docker_net import ensure_network, overlay_addresses
from orion.network.firewall import Firewall
from orion.network.overlay_plan import Changes, Peer, diff, overlay_mtu, plan, vtep_mac_for
from orion.network.settings import NetworkSection
from orion.network.vxlan import OverlayError, Underlay, VxlanSettings, VxlanShell, find_underlay

FIREWALL_CHECK_S = 10.0


@dataclass(frozen=True, slots=True)
class Vtep:
    """What this node tells its peers through gossip."""

    underlay_ip: str
    mac: str


@dataclass(frozen=True, slots=True)
class Pass:
    """What one ``converge`` did: the netlink changes made and the peers left out (and why)."""

    changes: Changes = field(default_factory=Changes)
    skipped: tuple[str, ...] = ()
    problem: str = ""  # why the Docker network is not right yet ("" when it is)


def underlay_address(advertise: str, bind: str) -> str:
    """The address peers send VXLAN packets to: [node] advertise when it is an IPv4 address,
    else bind. Loopback is refused: VXLAN between nodes needs a real (or namespaced) link."""
    for candidate in (advertise, bind):
        try:
            address = ipaddress.IPv4Address(candidate)
        except ValueError:
            continue
        if address.is_unspecified:
            continue
        if address.is_loopback:
            raise OverlayError(
                f"network.overlay = true needs a node address on a real link, not loopback ({candidate}): "
                "local clusters on one host keep overlay = false"
            )
        return candidate
    raise OverlayError(
        "network.overlay = true: [node] advertise or bind must be the node's IPv4 address "
        "(or set network.underlay_interface)"
    )


class OverlayHost:
    def __init__(
        self,
        node_id: str,
        settings: NetworkSection,
        underlay_ip: str,
        client: docker.DockerClient | None = None,
        ipr: Any = None,
    ) -> None:
        self.node_id = node_id
        self.settings = settings
        self.underlay_ip = underlay_ip
        self.client = client or docker.from_env()
        self.ipr = ipr if ipr is not None else IPRoute()
        vxlan = VxlanSettings(name=settings.device, vni=settings.vxlan_id, port=settings.vxlan_port)
        self.shell = VxlanShell(self.ipr, vxlan)
        self.firewall = Firewall(settings.cluster_cidr)
        self.underlay: Underlay | None = None
        self._network_id = ""
        self._firewall_due = 0.0
        self.mac = vtep_mac_for(node_id, f"{settings.cluster_cidr}/{settings.vxlan_id}")

    def start(self) -> Vtep:
        """Make the VXLAN device (no address yet: the subnet comes through Raft) and the rules."""
        underlay = find_underlay(self.ipr, self.underlay_ip, self.settings.underlay_interface)
        self.underlay = underlay
        self.shell.ensure_device(underlay, self.mac, overlay_mtu(underlay.mtu))
        self.firewall.ensure()
        _enable_forwarding()
        return Vtep(underlay_ip=underlay.address, mac=self.shell.device_mac().lower())

    def converge(self, subnet: str, peers: list[Peer]) -> Pass:
        """Bring the device, its tables and the Docker network to the plan for ``subnet``."""
        underlay = self.underlay
        if underlay is None:
            raise OverlayError("the overlay was not started")
        desired = plan(subnet, underlay.address, underlay.mtu, peers)
        self.shell.ensure_device(underlay, self.mac, desired.mtu)
        self.shell.set_address(desired.address)
        changes = diff(desired, self.shell.read())
        if not changes.empty:
            self.shell.apply(changes)
        network, problem = ensure_network(
            self.client, self.settings.docker_network, self.settings.bridge, subnet, desired.mtu
        )
        # Checking the rules takes a few iptables processes: at once when Docker just made the
        # network (it puts its own rules on top then), else every FIREWALL_CHECK_S.
        network_id = network.id if network is not None else ""
        now = time.monotonic()
        if network_id != self._network_id or now >= self._firewall_due:
            self.firewall.ensure()
            self._network_id = network_id
            self._firewall_due = now + FIREWALL_CHECK_S
        return Pass(changes=changes, skipped=desired.skipped, problem=problem)

    def addresses(self) -> dict[str, str]:
        """Container name -> overlay address, for the containers on this node's network."""
        return overlay_addresses(self.client, self.settings.docker_network)

    def stop(self) -> None:
        """Take the iptables rules out; the device and the Docker network stay for a restart
        (tasks may still run in them, and the next start adopts both)."""
        self.firewall.remove()
        self.ipr.close()


def _enable_forwarding() -> None:
    # Per network namespace; Docker sets it too, but only once it has made a network.
    with open("/proc/sys/net/ipv4/ip_forward", "w") as flag:
        flag.write("1")
