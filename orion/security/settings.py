"""What a node loads at start from its ``[security]`` section, and the warnings it logs.

Only paths live in NodeConfig; the secrets themselves are read here, once, into objects
whose ``repr`` does not show them, so a logged config or a traceback cannot leak them.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from orion.config import NodeConfig
from orion.security.keys import ClusterKey, TokenSet, load_cluster_key, read_tokens


@dataclass(frozen=True)
class NodeSecurity:
    """``peer_key`` for the transports and ``tokens`` for the API servers; both None when insecure."""

    peer_key: ClusterKey | None
    tokens: TokenSet | None

    @property
    def insecure(self) -> bool:
        return self.peer_key is None


def load_node_security(config: NodeConfig) -> NodeSecurity:
    """Read the cluster key and client tokens (KeyFileError when missing), or warn if insecure."""
    if config.insecure:
        logger.warning(
            "SECURITY IS OFF ([security] insecure = true): peer traffic is plain TCP, anyone who "
            "can reach the ports can join the cluster, and the API accepts every client. "
            "Use this for local experiments only."
        )
        return NodeSecurity(peer_key=None, tokens=None)
    key = load_cluster_key(config.cluster_key_path)
    tokens = TokenSet(read_tokens(config.token_path))
    for path in (config.cluster_key_path, config.token_path):
        _warn_if_readable_by_others(path)
    logger.info(
        "security on: CURVE for peer traffic (cluster key {}), bearer token for clients, REST on {}",
        key.fingerprint,
        config.http_bind,
    )
    return NodeSecurity(peer_key=key, tokens=tokens)


def _warn_if_readable_by_others(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("{} is readable by other users (mode {:o}): chmod 600 it", path, stat.S_IMODE(mode))
