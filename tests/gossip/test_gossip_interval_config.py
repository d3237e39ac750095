"""``[gossip] gossip_interval`` reaches the core (default: memberlist's 200 ms, as before)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orion.actors.gossip_actor import gossip_config_from
from orion.config import ConfigError, parse_config


def node_toml(tmp_path: Path, gossip: str = "") -> str:
    return f'[node]\nid = "a"\ndata_dir = "{tmp_path}"\n{gossip}[security]\ninsecure = true\n'


def test_default_gossip_interval_is_memberlists(tmp_path: Path) -> None:
    assert gossip_config_from(parse_config(node_toml(tmp_path))).gossip_interval == 0.2


def test_gossip_interval_is_read_from_the_gossip_section(tmp_path: Path) -> None:
    config = parse_config(node_toml(tmp_path, '[gossip]\ngossip_interval = "800ms"\n'))
    assert gossip_config_from(config).gossip_interval == 0.8


@pytest.mark.parametrize("name", ["probe_interval", "probe_timeout", "gossip_interval"])
def test_a_zero_gossip_period_is_refused_naming_the_field(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=f"gossip.{name}: must be longer than 0, got '0ms'"):
        parse_config(node_toml(tmp_path, f'[gossip]\n{name} = "0ms"\n'))
