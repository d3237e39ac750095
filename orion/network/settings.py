"""The [network] section of the node's configuration (orion/config.py reads it)."""

from __future__ import annotations

import re
from typing import Annotated

import msgspec

from orion.network.ipam import IpamError, parse_cluster_cidr
from orion.units import parse_duration

_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")  # Linux interface names: at most 15 bytes


class NetworkSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``overlay = false`` (the default, and what local clusters sharing one host use): tasks
    publish ports on the host as before and nothing below is touched. ``true`` (real hosts, the
    test bed): each node owns a /24 of ``cluster_cidr``, runs its tasks on a Docker bridge
    network on it, and a VXLAN device carries traffic between nodes' subnets."""

    cluster_cidr: str = "10.42.0.0/16"
    overlay: bool = False
    vxlan_id: Annotated[int, msgspec.Meta(ge=1, le=(1 << 24) - 1)] = 1
    vxlan_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8472
    # The interface VXLAN packets leave by; "" = the one holding the underlay address ([node]
    # advertise, else bind).
    underlay_interface: str = ""
    device: str = "orion.vxlan"  # the VXLAN device's name
    docker_network: str = "orion-overlay"  # the Docker bridge network tasks run on
    bridge: str = "orion0"  # its Linux bridge's name
    # A node dead or gone this long gives its subnet back (the leader proposes ReleaseSubnet); it
    # gets one again if it returns. Read as seconds by ``check_network``.
    release_after: float | int | str = "10m"


def check_network(section: NetworkSection) -> NetworkSection:
    """The section with ``release_after`` in seconds; ``ValueError`` naming the key when a
    value cannot be used."""
    try:
        parse_cluster_cidr(section.cluster_cidr, "network.cluster_cidr")
    except IpamError as exc:
        raise ValueError(str(exc)) from None
    release_after = parse_duration(section.release_after, "network.release_after")
    if release_after < 60:
        # Shorter would hand a briefly unreachable node's subnet, and its tasks' addresses, to another.
        raise ValueError(f"network.release_after: at least 1m, got {section.release_after!r}")
    for key in ("device", "bridge"):
        value = getattr(section, key)
        if not _IFNAME.match(value):
            raise ValueError(
                f"network.{key}: an interface name of 1-15 letters, digits, '_', '.', '-', got {value!r}"
            )
    if section.underlay_interface and not _IFNAME.match(section.underlay_interface):
        raise ValueError(f"network.underlay_interface: not an interface name: {section.underlay_interface!r}")
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", section.docker_network):
        raise ValueError(f"network.docker_network: not a Docker network name: {section.docker_network!r}")
    return msgspec.structs.replace(section, release_after=release_after)
