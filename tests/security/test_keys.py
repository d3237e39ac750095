"""Key and token files: generation, loading, refusal to overwrite, constant-time token check."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import zmq.auth

from orion.config import ConfigError, parse_config
from orion.security.keys import (
    ClusterKey,
    KeyFileError,
    TokenSet,
    load_cluster_key,
    read_tokens,
    write_cluster_key,
    write_token,
)


def test_cluster_key_round_trip_with_private_mode(tmp_path: Path) -> None:
    key = ClusterKey.generate()
    secret_path, public_path = write_cluster_key(tmp_path, key)
    assert load_cluster_key(secret_path) == key
    assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600
    assert key.secret.decode() not in public_path.read_text()
    assert key.public.decode() in public_path.read_text()
    # The format is ZeroMQ's own certificate format.
    assert zmq.auth.load_certificate(secret_path) == (key.public, key.secret)


def test_secrets_never_show_in_repr(tmp_path: Path) -> None:
    key = ClusterKey.generate()
    tokens = TokenSet(["s3cret-token-value"])
    assert key.secret.decode() not in repr(key)
    assert "s3cret" not in repr(tokens)


def test_keys_and_tokens_are_never_overwritten(tmp_path: Path) -> None:
    write_cluster_key(tmp_path)
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        write_cluster_key(tmp_path)
    write_token(tmp_path / "client.token")
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        write_token(tmp_path / "client.token")


def test_unusable_key_files_are_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="orion keygen"):
        load_cluster_key(tmp_path / "missing.key_secret")
    _, public_path = write_cluster_key(tmp_path)
    with pytest.raises(KeyFileError, match="not a secret cluster key"):
        load_cluster_key(public_path)
    mixed = tmp_path / "mixed.key_secret"
    other = ClusterKey.generate()
    mine = ClusterKey.generate()
    mixed.write_text(
        f'curve\n    public-key = "{other.public.decode()}"\n    secret-key = "{mine.secret.decode()}"\n'
    )
    with pytest.raises(KeyFileError, match="does not belong"):
        load_cluster_key(mixed)
    empty = tmp_path / "empty.token"
    empty.write_text("# nothing\n\n")
    with pytest.raises(KeyFileError, match="no token"):
        read_tokens(empty)


def test_token_set_accepts_exactly_its_tokens(tmp_path: Path) -> None:
    path = tmp_path / "client.token"
    path.write_text("# rotation: old and new\nold-token\nnew-token\n")
    tokens = TokenSet(read_tokens(path))
    assert tokens.accepts(b"old-token") and tokens.accepts(b"new-token")
    for wrong in (b"", b"old-toke", b"old-token ", b"OLD-TOKEN", b"x" * 10_000):
        assert not tokens.accepts(wrong)


def test_security_section_defaults_to_secure(tmp_path: Path) -> None:
    config = parse_config('[node]\nid = "n1"\n', tmp_path)
    assert config.insecure is False
    assert config.cluster_key_path == tmp_path / "secrets/cluster.key_secret"
    assert config.token_path == tmp_path / "secrets/client.token"
    assert config.http_bind == "127.0.0.1"
    assert config.max_request == 1024 * 1024
    explicit = parse_config(
        '[node]\nid = "n1"\n[security]\ninsecure = true\nmax_request = "64KiB"\nclient_rate_limit = 5\n',
        tmp_path,
    )
    assert explicit.insecure and explicit.max_request == 64 * 1024 and explicit.client_rate_limit == 5
    with pytest.raises(ConfigError, match=r"security\.max_request"):
        parse_config('[node]\nid = "n1"\n[security]\nmax_request = 10\n', tmp_path)
    with pytest.raises(ConfigError, match="security"):
        parse_config('[node]\nid = "n1"\n[security]\ntoken = "inline secrets are not accepted"\n', tmp_path)
