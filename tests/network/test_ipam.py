"""Cluster IPAM (orion/network/ipam.py): one /24 per node out of the cluster CIDR."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orion.network.ipam import (
    IpamError,
    allocate,
    capacity,
    gateway_address,
    parse_cluster_cidr,
    subnet_at,
    subnet_index,
    vtep_address,
)

CIDR = "10.42.0.0/16"


def test_lowest_free_subnet_first() -> None:
    assert allocate(CIDR, []) == "10.42.0.0/24"
    assert allocate(CIDR, ["10.42.0.0/24", "10.42.2.0/24"]) == "10.42.1.0/24"


def test_subnets_of_another_cidr_take_nothing() -> None:
    assert allocate(CIDR, ["10.43.0.0/24", "garbage"]) == "10.42.0.0/24"


def test_exhaustion_names_the_cidr_and_the_count() -> None:
    small = "10.42.0.0/23"
    with pytest.raises(IpamError, match=r"no free /24 left in 10\.42\.0\.0/23: all 2 are allocated"):
        allocate(small, ["10.42.0.0/24", "10.42.1.0/24"])


@pytest.mark.parametrize(
    ("cidr", "reason"),
    [
        ("10.42.0.1/16", "host bits"),
        ("10.42.0.0/25", "prefix"),
        ("10.0.0.0/7", "prefix"),
        ("8.8.0.0/16", "private"),
        ("nonsense", "IPv4 network"),
    ],
)
def test_bad_cluster_cidr_is_refused_with_the_field(cidr: str, reason: str) -> None:
    with pytest.raises(IpamError, match=r"network\.cluster_cidr") as excinfo:
        parse_cluster_cidr(cidr, "network.cluster_cidr")
    assert reason in str(excinfo.value) or cidr in str(excinfo.value)


def test_addresses_in_a_subnet() -> None:
    assert vtep_address("10.42.7.0/24") == "10.42.7.0"
    assert gateway_address("10.42.7.0/24") == "10.42.7.1"
    assert subnet_at(CIDR, 255) == "10.42.255.0/24"
    assert subnet_index(CIDR, "10.42.255.0/24") == 255
    assert subnet_index(CIDR, "10.42.1.0/25") is None
    assert capacity("10.0.0.0/8") == 65536


@given(st.lists(st.booleans(), max_size=40))
def test_allocations_never_overlap_and_releases_are_reused(steps: list[bool]) -> None:
    """A random run of joins (True) and releases of the oldest node (False): no two nodes ever
    share a subnet, every subnet lies inside the CIDR, and a released subnet is the next given."""
    cidr = "10.42.0.0/20"  # 16 subnets: the run reaches exhaustion too
    held: list[str] = []
    released: list[str] = []
    for join in steps:
        if join:
            if len(held) == capacity(cidr):
                with pytest.raises(IpamError):
                    allocate(cidr, held)
                continue
            subnet = allocate(cidr, held)
            if released:
                assert subnet == min(released, key=lambda s: ipaddress.IPv4Network(s).network_address)
            assert subnet not in held
            assert ipaddress.IPv4Network(subnet).subnet_of(ipaddress.IPv4Network(cidr))
            held.append(subnet)
            if subnet in released:
                released.remove(subnet)
        elif held:
            released.append(held.pop(0))
    assert len(set(held)) == len(held)
