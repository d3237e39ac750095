"""The [network] section of the node's configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from orion.config import ConfigError, parse_config
from orion.network.host import underlay_address
from orion.network.vxlan import OverlayError

BASE = '[node]\nid = "n1"\n'


def test_defaults_keep_the_overlay_off() -> None:
    network = parse_config(BASE, Path("/tmp")).network
    assert network.overlay is False
    assert network.cluster_cidr == "10.42.0.0/16"
    assert (network.vxlan_id, network.vxlan_port, network.underlay_interface) == (1, 8472, "")
    assert network.release_after == 600.0


def test_overlay_settings_are_read() -> None:
    keys = 'overlay = true\ncluster_cidr = "10.50.0.0/20"\nvxlan_id = 7\nunderlay_interface = "eth1"\n'
    text = BASE + "[network]\n" + keys
    network = parse_config(text, Path("/tmp")).network
    assert (network.overlay, network.cluster_cidr, network.vxlan_id, network.underlay_interface) == (
        True,
        "10.50.0.0/20",
        7,
        "eth1",
    )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('cluster_cidr = "10.42.0.0/25"', "network.cluster_cidr: the prefix"),
        ('cluster_cidr = "100.64.0.0/16"', "network.cluster_cidr: must be a private range"),
        ('device = "a-name-far-too-long"', "network.device"),
        ("vxlan_id = 0", "vxlan_id"),
        ("mtu = 1400", "mtu"),
        ('release_after = "5s"', "network.release_after: at least 1m"),
    ],
)
def test_bad_values_name_the_key(section: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config(BASE + "[network]\n" + section + "\n", Path("/tmp"))


def test_the_underlay_is_the_nodes_own_address_never_loopback() -> None:
    assert underlay_address("10.77.0.2", "0.0.0.0") == "10.77.0.2"
    assert underlay_address("node-a.example", "10.77.0.3") == "10.77.0.3"
    with pytest.raises(OverlayError, match="not loopback"):
        underlay_address("127.0.0.2", "127.0.0.2")
    with pytest.raises(OverlayError, match="underlay_interface"):
        underlay_address("node-a.example", "0.0.0.0")
