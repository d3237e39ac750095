"""The overlay's netlink shell: the VXLAN device and its routes, ARP and FDB entries (pyroute2).

It does what orion/network/overlay_plan.py computed, in the network namespace of the handle it
is given (``pyroute2.IPRoute()`` for the node's own, ``pyroute2.NetNS(name)`` in tests). Every
route, neighbour and FDB entry on the device is the overlay's: ``read`` reports them all, so a
pass of ``apply(diff(plan, read()))`` also removes what a removed peer left behind.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from orion.network.overlay_plan import Changes, Forwarding, Neighbour, Route, Tables

DEFAULT_DEVICE = "orion.vxlan"
_NUD_PERMANENT = 0x80
_RTNH_F_ONLINK = 4
_RTPROT_STATIC = 4
_ZERO_MAC = "00:00:00:00:00:00"


class OverlayError(OSError):
    """The overlay cannot be set up here; the message says what is missing (an OSError: the
    node then refuses to start with that one line)."""


@dataclass(frozen=True, slots=True)
class Underlay:
    """The interface VXLAN packets leave by: the one holding the node's underlay address."""

    index: int
    name: str
    address: str
    mtu: int


@dataclass(frozen=True, slots=True)
class VxlanSettings:
    name: str = DEFAULT_DEVICE
    vni: int = 1
    port: int = 8472  # the Linux kernel's (and flannel's) VXLAN port, not IANA's 4789


def find_underlay(ipr: Any, address: str, interface: str = "") -> Underlay:
    """The interface named ``interface``, else the one holding ``address``; ``OverlayError``
    when there is none (e.g. [node] bind is 0.0.0.0 and no [network] underlay_interface)."""
    if interface:
        found = ipr.link_lookup(ifname=interface)
        if not found:
            raise OverlayError(f"network.underlay_interface: no interface named {interface!r}")
        index = found[0]
        if not address:
            addrs = ipr.get_addr(index=index, family=socket.AF_INET)
            if not addrs:
                raise OverlayError(f"network.underlay_interface: {interface} has no IPv4 address")
            address = addrs[0].get_attr("IFA_ADDRESS")
    else:
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            raise OverlayError(
                f"the underlay address must be an IPv4 address ([node] bind/advertise), got {address!r}"
            ) from None
        matches = [
            a["index"] for a in ipr.get_addr(family=socket.AF_INET) if a.get_attr("IFA_ADDRESS") == address
        ]
        if not matches:
            raise OverlayError(
                f"no interface holds the underlay address {address} (set network.underlay_interface)"
            )
        index = matches[0]
    link = ipr.get_links(index)[0]
    return Underlay(
        index=index, name=link.get_attr("IFLA_IFNAME"), address=address, mtu=link.get_attr("IFLA_MTU")
    )


class VxlanShell:
    def __init__(self, ipr: Any, settings: VxlanSettings | None = None) -> None:
        self.ipr = ipr
        self.settings = settings or VxlanSettings()
        self.index = 0

    # -- the device ---------------------------------------------------------------------------

    def ensure_device(self, underlay: Underlay, mac: str, mtu: int) -> int:
        """Make the VXLAN device (learning off, local underlay address, on the underlay
        interface), or keep one that matches; one left with other settings is made again."""
        settings = self.settings
        found = self.ipr.link_lookup(ifname=settings.name)
        if found:
            link = self.ipr.get_links(found[0])[0]
            if self._matches(link, underlay, mac):
                self.index = found[0]
                if link.get_attr("IFLA_MTU") != mtu:
                    self.ipr.link("set", index=self.index, mtu=mtu)
                self.ipr.link("set", index=self.index, state="up")
                return self.index
            self.ipr.link("del", index=found[0])
        self.ipr.link(
            "add",
            ifname=settings.name,
            kind="vxlan",
            vxlan_id=settings.vni,
            vxlan_local=underlay.address,
            vxlan_link=underlay.index,
            vxlan_port=settings.port,
            vxlan_learning=0,
            address=mac,
            mtu=mtu,
        )
        self.index = self.ipr.link_lookup(ifname=settings.name)[0]
        self.ipr.link("set", index=self.index, state="up")
        return self.index

    def _matches(self, link: Any, underlay: Underlay, mac: str) -> bool:
        info = link.get_attr("IFLA_LINKINFO")
        if info is None or info.get_attr("IFLA_INFO_KIND") != "vxlan":
            return False
        data = info.get_attr("IFLA_INFO_DATA")
        return (
            data is not None
            and data.get_attr("IFLA_VXLAN_ID") == self.settings.vni
            and data.get_attr("IFLA_VXLAN_LOCAL") == underlay.address
            and data.get_attr("IFLA_VXLAN_LINK") == underlay.index
            and data.get_attr("IFLA_VXLAN_PORT") == self.settings.port
            and not data.get_attr("IFLA_VXLAN_LEARNING")
            and str(link.get_attr("IFLA_ADDRESS")).lower() == mac.lower()
        )

    def device_mac(self) -> str:
        return str(self.ipr.get_links(self.index)[0].get_attr("IFLA_ADDRESS"))

    def set_address(self, address: str) -> None:
        """``address``/32 is the device's only IPv4 address (the node's VTEP address)."""
        have = {
            a.get_attr("IFA_ADDRESS"): a["prefixlen"]
            for a in self.ipr.get_addr(index=self.index, family=socket.AF_INET)
        }
        for other, prefixlen in have.items():
            if (other, prefixlen) != (address, 32):
                self.ipr.addr("del", index=self.index, address=other, prefixlen=prefixlen)
        if have.get(address) != 32:
            self.ipr.addr("add", index=self.index, address=address, prefixlen=32)

    def remove_device(self) -> None:
        """Delete the device; its routes, neighbours and FDB entries go with it."""
        found = self.ipr.link_lookup(ifname=self.settings.name)
        if found:
            self.ipr.link("del", index=found[0])
        self.index = 0

    # -- the tables ---------------------------------------------------------------------------

    def read(self) -> Tables:
        index = self.index
        routes = {
            Route(f"{r.get_attr('RTA_DST')}/{r['dst_len']}", r.get_attr("RTA_GATEWAY"))
            for r in self.ipr.get_routes(family=socket.AF_INET, oif=index, table=254)
            if r.get_attr("RTA_OIF") == index and r.get_attr("RTA_GATEWAY") and r.get_attr("RTA_DST")
        }
        neighbours = {
            Neighbour(n.get_attr("NDA_DST"), str(n.get_attr("NDA_LLADDR")).lower())
            for n in self.ipr.get_neighbours(family=socket.AF_INET, ifindex=index)
            if n["ifindex"] == index and n["state"] & _NUD_PERMANENT and n.get_attr("NDA_LLADDR")
        }
        forwarding = {
            Forwarding(str(f.get_attr("NDA_LLADDR")).lower(), f.get_attr("NDA_DST"))
            for f in self.ipr.fdb("dump", ifindex=index)
            if f["ifindex"] == index and f.get_attr("NDA_DST") and f.get_attr("NDA_LLADDR") != _ZERO_MAC
        }
        return Tables(frozenset(routes), frozenset(neighbours), frozenset(forwarding))

    def apply(self, changes: Changes) -> None:
        index = self.index
        for route in changes.del_routes:
            self._quietly("del", self.ipr.route, dst=route.subnet, gateway=route.gateway, oif=index)
        for neighbour in changes.del_neighbours:
            self._quietly("del", self.ipr.neigh, dst=neighbour.address, lladdr=neighbour.mac, ifindex=index)
        for entry in changes.del_forwarding:
            self._quietly("del", self.ipr.fdb, ifindex=index, lladdr=entry.mac, dst=entry.underlay_ip)
        for entry in changes.add_forwarding:
            # "append", not "add": one MAC may stand for several destinations in the kernel's
            # model, and "add" would refuse a second one while the old is being replaced.
            self._quietly(
                "append",
                self.ipr.fdb,
                ifindex=index,
                lladdr=entry.mac,
                dst=entry.underlay_ip,
                state=_NUD_PERMANENT,
            )
        for neighbour in changes.add_neighbours:
            self._quietly(
                "replace",
                self.ipr.neigh,
                dst=neighbour.address,
                lladdr=neighbour.mac,
                ifindex=index,
                state=_NUD_PERMANENT,
            )
        for route in changes.add_routes:
            self._quietly(
                "replace",
                self.ipr.route,
                dst=route.subnet,
                gateway=route.gateway,
                oif=index,
                flags=_RTNH_F_ONLINK,
                proto=_RTPROT_STATIC,
            )

    @staticmethod
    def _quietly(command: str, call: Any, **spec: Any) -> None:
        """Adding what is there or deleting what is gone is no error: a pass is level-triggered."""
        try:
            call(command, **spec)
        except NetlinkError as exc:
            if exc.code not in (errno.EEXIST, errno.ENOENT, errno.ESRCH):
                raise
