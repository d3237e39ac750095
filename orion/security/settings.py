"""What a node loads at start from its ``[security]`` section, and the warnings it logs.

Only paths live in NodeConfig; the secrets themselves are read here, into objects whose
``repr`` does not show them, so a logged config or a traceback cannot leak them.

Client tokens can change while a node runs: ``NodeSecurity.reload_tokens`` re-reads the
token file into the TokenSet its API servers share. ``reload_all_tokens`` does that for
every node security loaded in this process; ``orion node`` calls it on SIGHUP.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from orion.config import NodeConfig
from orion.security.keys import (
    ClusterKey,
    KeyFileError,
    TokenSet,
    check_private,
    load_cluster_key,
    read_token_entries,
)

# The token sets of the nodes in this process, their files and whether loose modes are allowed.
# Weak: the API servers hold a node's TokenSet while they run, and it goes with them. A process
# normally runs one node.
_loaded: weakref.WeakKeyDictionary[TokenSet, tuple[Path, bool]] = weakref.WeakKeyDictionary()
_reload_lock = threading.Lock()  # reloads run on a thread of their own, never in a signal handler


@dataclass(frozen=True)
class NodeSecurity:
    """``peer_key`` for the transports, ``api_key`` (the ZeroMQ API's CURVE key pair) and
    ``tokens`` for the API servers; all None when insecure."""

    peer_key: ClusterKey | None
    tokens: TokenSet | None
    token_path: Path | None = None
    api_key: ClusterKey | None = None
    allow_loose_permissions: bool = False

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
        return _reload(self.tokens, self.token_path, self.allow_loose_permissions)


def _reload(token_set: TokenSet, path: Path, allow_loose: bool) -> bool:
    with _reload_lock:  # two signals in a row: one reader at a time
        try:
            _check_private(path, "token file", allow_loose)
            tokens = read_token_entries(path)
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
    return sum(_reload(token_set, path, loose) for token_set, (path, loose) in loaded)


def load_node_security(config: NodeConfig) -> NodeSecurity:
    """Read the cluster key and client tokens (KeyFileError when missing), or warn if insecure."""
    if config.insecure:
        logger.warning(
            "SECURITY IS OFF ([security] insecure = true): peer traffic is plain TCP, anyone who "
            "can reach the ports can join the cluster, and the API accepts every client. "
            "Use this for local experiments only."
        )
        return NodeSecurity(peer_key=None, tokens=None)
    loose = config.allow_loose_permissions
    secret_files = [("cluster key", config.cluster_key_path), ("token file", config.token_path)]
    if config.api_key_path is not None:
        secret_files.append(("API key", config.api_key_path))
    if config.tls_key is not None:
        secret_files.append(("TLS key", config.tls_key))
    for what, path in secret_files:
        if path.exists():  # a missing file is reported by its loader, with how to make it
            _check_private(path, what, loose)
    key = load_cluster_key(config.cluster_key_path)
    api_key = key if config.api_key_path is None else load_cluster_key(config.api_key_path)
    tokens = TokenSet(read_token_entries(config.token_path))
    logger.info(
        "security on: CURVE for peer traffic (cluster key {}), CURVE and a bearer token for clients "
        "(API key {} on {}), REST on {}{}",
        key.fingerprint,
        api_key.fingerprint,
        config.api_bind,
        config.http_bind,
        " with TLS" if config.tls_cert else "",
    )
    _loaded[tokens] = (config.token_path, loose)
    return NodeSecurity(
        peer_key=key,
        tokens=tokens,
        token_path=config.token_path,
        api_key=api_key,
        allow_loose_permissions=loose,
    )


def _check_private(path: Path, what: str, allow_loose: bool) -> None:
    """Refuse a secret file others may read, unless the operator allowed it (then warn)."""
    try:
        check_private(path, what)
    except KeyFileError as exc:
        if not allow_loose:
            raise
        logger.warning("{} (accepted: [security] allow_loose_permissions = true)", exc)
