"""Cluster IPAM: one subnet (a /24 by default) per node, carved out of the cluster CIDR.

Pure and deterministic: the FSM (orion/fsm/network.py) calls ``allocate`` while applying a
committed entry, so every replica hands the same node the same subnet. The lowest free subnet
is taken, which makes a released one the first to be reused and keeps allocations dense.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

NODE_PREFIX = 24  # each node's subnet: 254 task addresses (.0 the VTEP, .1 the bridge gateway)
MIN_CLUSTER_PREFIX = 8  # a /8 holds 65536 node subnets: the index stays small
MAX_CLUSTER_PREFIX = NODE_PREFIX


class IpamError(ValueError):
    """A cluster CIDR or subnet that cannot be used, or no subnet left; the message says why."""


def parse_cluster_cidr(cidr: str, field: str = "cluster_cidr") -> ipaddress.IPv4Network:
    """The cluster CIDR as a network; ``IpamError`` naming ``field`` when it is not an IPv4
    network of /8 to /24 with its host bits clear, or not a private range."""
    try:
        network = ipaddress.IPv4Network(cidr, strict=True)
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError) as exc:
        raise IpamError(f"{field}: not an IPv4 network like '10.42.0.0/16': {cidr!r} ({exc})") from None
    if not MIN_CLUSTER_PREFIX <= network.prefixlen <= MAX_CLUSTER_PREFIX:
        raise IpamError(
            f"{field}: the prefix must be /{MIN_CLUSTER_PREFIX} to /{MAX_CLUSTER_PREFIX} "
            f"(one /{NODE_PREFIX} per node), got {cidr!r}"
        )
    if not network.is_private:
        raise IpamError(f"{field}: must be a private range (RFC 1918), got {cidr!r}")
    return network


def capacity(cidr: str) -> int:
    """How many node subnets ``cidr`` holds."""
    return 1 << (NODE_PREFIX - parse_cluster_cidr(cidr).prefixlen)


def subnet_at(cidr: str, index: int) -> str:
    """The ``index``-th /24 of ``cidr`` ("10.42.3.0/24" for index 3 of 10.42.0.0/16)."""
    network = parse_cluster_cidr(cidr)
    if not 0 <= index < capacity(cidr):
        raise IpamError(f"subnet index {index} is outside {cidr}")
    base = int(network.network_address) + (index << (32 - NODE_PREFIX))
    return f"{ipaddress.IPv4Address(base)}/{NODE_PREFIX}"


def subnet_index(cidr: str, subnet: str) -> int | None:
    """The index of ``subnet`` within ``cidr``, or None when it is not one of its /24s."""
    network = parse_cluster_cidr(cidr)
    try:
        candidate = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError:
        return None
    if candidate.prefixlen != NODE_PREFIX or not candidate.subnet_of(network):
        return None
    return (int(candidate.network_address) - int(network.network_address)) >> (32 - NODE_PREFIX)


def allocate(cidr: str, taken: Iterable[str]) -> str:
    """The lowest /24 of ``cidr`` not in ``taken``; ``IpamError`` when every one is taken.

    Subnets in ``taken`` that are not /24s of ``cidr`` (allocated under another CIDR before a
    configuration change) take nothing from it."""
    size = capacity(cidr)
    used = {index for index in (subnet_index(cidr, subnet) for subnet in taken) if index is not None}
    if len(used) >= size:
        raise IpamError(f"no free /{NODE_PREFIX} left in {cidr}: all {size} are allocated to nodes")
    index = next(i for i in range(size) if i not in used)
    return subnet_at(cidr, index)


def vtep_address(subnet: str) -> str:
    """The node's own address on the VXLAN device: the subnet's .0 (flannel's convention)."""
    return str(ipaddress.IPv4Network(subnet).network_address)


def gateway_address(subnet: str) -> str:
    """The Docker bridge's gateway in the node's subnet: .1."""
    return str(ipaddress.IPv4Network(subnet).network_address + 1)
