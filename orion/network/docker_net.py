"""The Docker bridge network a node's tasks run on: its /24 of the cluster CIDR, gateway .1,
the VXLAN device's MTU, and no masquerading towards other subnets (orion/network/firewall.py)."""

from __future__ import annotations

import time
from typing import Any

import docker
import docker.errors
from docker.types import IPAMConfig, IPAMPool

from orion.network.ipam import gateway_address

LABEL = "orion.overlay"


class NetworkNotReady(RuntimeError):
    """The node's overlay network does not exist (yet): its subnet is not allocated or applied."""


def _matches(network: Any, subnet: str, mtu: int) -> bool:
    attrs = network.attrs
    configs = (attrs.get("IPAM") or {}).get("Config") or []
    options = attrs.get("Options") or {}
    return [c.get("Subnet") for c in configs] == [subnet] and options.get(
        "com.docker.network.driver.mtu"
    ) == str(mtu)


def ensure_network(
    client: docker.DockerClient, name: str, bridge: str, subnet: str, mtu: int
) -> tuple[Any, str]:
    """The network ``name`` on ``subnet``, made (or made again when its subnet or MTU differ and
    no container is on it) as needed. Returns (network, "") or (network or None, why not)."""
    try:
        network = client.networks.get(name)
    except docker.errors.NotFound:
        network = None
    if network is not None:
        if _matches(network, subnet, mtu):
            return network, ""
        if network.attrs.get("Containers"):
            return network, (
                f"docker network {name} is on another subnet or MTU than {subnet}/{mtu} and still has "
                "containers: it is made again once they are gone"
            )
        network.remove()
    pool = IPAMPool(subnet=subnet, gateway=gateway_address(subnet))
    network = client.networks.create(
        name,
        driver="bridge",
        ipam=IPAMConfig(pool_configs=[pool]),
        options={"com.docker.network.bridge.name": bridge, "com.docker.network.driver.mtu": str(mtu)},
        labels={LABEL: "1"},
        check_duplicate=True,
    )
    return network, ""


def overlay_addresses(client: docker.DockerClient, name: str) -> dict[str, str]:
    """Container name -> IPv4 address of the containers on network ``name`` ({} when it is absent)."""
    try:
        network = client.networks.get(name)
    except docker.errors.NotFound:
        return {}
    found: dict[str, str] = {}
    for endpoint in (network.attrs.get("Containers") or {}).values():
        address = str(endpoint.get("IPv4Address") or "").split("/")[0]
        if endpoint.get("Name") and address:
            found[endpoint["Name"]] = address
    return found


def await_network(client: docker.DockerClient, name: str, timeout: float) -> str:
    """Wait (on a worker thread) until network ``name`` exists, and return its gateway (the
    node's service-name resolver, orion/network/dns.py): a task placed on a node that just
    joined may arrive before the node's subnet was allocated and its network made."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            network = client.networks.get(name)
            configs = (network.attrs.get("IPAM") or {}).get("Config") or []
            gateway = str(configs[0].get("Gateway") or "") if configs else ""
            if gateway:
                return gateway
        except docker.errors.NotFound:
            pass
        if time.monotonic() >= deadline:
            raise NetworkNotReady(
                f"the overlay network {name} is not ready on this node after {timeout:g} s "
                "(no subnet allocated yet?)"
            )
        time.sleep(0.25)  # polling Docker for a condition, with the deadline above
