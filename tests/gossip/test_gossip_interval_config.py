"""``[gossip] gossip_interval`` reaches the core (default: memberlist's 200 ms, as before)."""

from __future__ import annotations

from pathlib import Path

from orion.actors.gossip_actor import gossip_config_from
from orion.config import parse_config


def node_toml(tmp_path: Path, gossip: str = "") -> str:
    return f'[node]\nid = "a"\ndata_dir = "{tmp_path}"\n{gossip}[security]\ninsecure = true\n'


def test_default_gossip_interval_is_memberlists(tmp_path: Path) -> None:
    assert gossip_config_from(parse_config(node_toml(tmp_path))).gossip_interval == 0.2


def test_gossip_interval_is_read_from_the_gossip_section(tmp_path: Path) -> None:
    config = parse_config(node_toml(tmp_path, '[gossip]\ngossip_interval = "800ms"\n'))
    assert gossip_config_from(config).gossip_interval == 0.8
