"""What a node loads at start from its ``[security]`` section, and the warnings it logs.

Only paths live in NodeConfig; the secrets themselves are read here, into objects whose
``repr`` does not show them, so a logged config or a traceback cannot leak them.

Client tokens can change while a node runs: ``NodeSecurity.reload_tokens`` re-reads the
token file into the TokenSet its API servers share. ``reload_all_tokens`` does that for
every node security loaded in this process; ``orion node`` calls it on SIGHUP.
"""

from __future__ import annotations

import stat
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from orion.config import NodeConfig
from orion.security.keys import ClusterKey, KeyFileError, TokenSet, load_cluster_key, read_tokens

# The token sets of the nodes in this process and their files. Weak: the API servers hold a
# node's TokenSet while they run, and it goes with them. A process normally runs one node.
_loaded: weakref.WeakKeyDictionary[TokenSet, Path] = weakref.WeakKeyDictionary()
_reload_lock = threading.Lock()  # reloads run on a thread of their own, never in a signal handler


@dataclass(frozen=True)
class NodeSecurity:
    """``peer_key`` for the transports and ``tokens`` for the API servers; both None when insecure."""

    peer_key: ClusterKey | None
    tokens: TokenSet | None
    token_path: Path | None = None

    @property
    def insecure(self) -> bool:
        return self.peer_key is None

    def reload_tokens(self) -> bool:
        """Re-read the token file; the API servers accept the new tokens at once and the old
        ones no longer. A missing, empty or unreadable file changes nothing (logged as an
        error): a typo during a rotation must not lock every client out. True if reloaded."""
        if self.tokens is None or self.token_path is None:
            logger.info("token reload: security is off, there are no client tokens to reload")
            return False
        return _reload(self.tokens, self.token_path)


def _reload(token_set: TokenSet, path: Path) -> bool:
    with _reload_lock:  # two signals in a row: one reader at a time
        try:
            tokens = read_tokens(path)
            _warn_if_readable_by_others(path)
        except (KeyFileError, OSError) as exc:
            logger.error("token reload failed, keeping the {} token(s) read before: {}", len(token_set), exc)
            return False
        before = len(token_set)
        token_set.replace(tokens)
    logger.info("token reload: {} now accepts {} token(s) (was {})", path, len(tokens), before)
    return True


def reload_all_tokens() -> int:
    """Re-read the token file of every secured node in this process (SIGHUP); how many were
    reloaded. Logs a line when there is none (security off)."""
    loaded = list(_loaded.items())
    if not loaded:
        logger.info("token reload: security is off, there are no client tokens to reload")
    return sum(_reload(token_set, path) for token_set, path in loaded)


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
    _loaded[tokens] = config.token_path
    return NodeSecurity(peer_key=key, tokens=tokens, token_path=config.token_path)


def _warn_if_readable_by_others(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("{} is readable by other users (mode {:o}): chmod 600 it", path, stat.S_IMODE(mode))
