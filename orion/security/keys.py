"""Key and token files: generate them (``orion keygen``), load them, compare tokens safely.

The cluster key is one CURVE key pair shared by every node of a cluster. It is stored in
ZeroMQ's certificate format (ZPL, as written by ``zmq.auth.create_certificates``): the
secret file holds the public and the secret key, the ``.key`` file only the public key.
Client tokens are random URL-safe strings, one per line (several lines allow rotation); a
line may end in ``expires=2025-12-31T00:00:00Z`` (ISO 8601, UTC when no zone is given), after
which the node refuses that token. Secret files are created with mode 0600 and a node refuses
to read one that others may read (``check_private``). A client bundle
(``write_client_bundle``) carries what a client needs: the API's public key and a token.
Nothing here ever logs a key or a token.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
import time
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import zmq
from zmq.utils.z85 import decode as z85_decode

CLUSTER_KEY_NAME = "cluster"
TOKEN_NAME = "client.token"
TOKEN_BYTES = 32
MAX_TOKEN_LEN = 512
_ZPL_KEY = re.compile(r'^\s*(public|secret)-key\s*=\s*"(?P<key>[^"]{40})"\s*$', re.MULTILINE)


class KeyFileError(OSError):
    """A key or token file is missing or unusable; the message says which and what to do."""


@dataclass(frozen=True)
class ClusterKey:
    """One CURVE key pair (Z85, 40 ASCII characters each). ``repr`` never shows the secret."""

    public: bytes
    secret: bytes = field(repr=False)

    @property
    def fingerprint(self) -> str:
        """A short, safe-to-log name for the public key."""
        return fingerprint(self.public)

    @classmethod
    def generate(cls) -> ClusterKey:
        public, secret = zmq.curve_keypair()
        return cls(public=public, secret=secret)


def fingerprint(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:12]


@dataclass(frozen=True)
class TokenEntry:
    """One line of a token file: the token and when it stops being accepted (None: never)."""

    token: str = field(repr=False)
    expires: float | None = None

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires


class TokenSet:
    """The client tokens a node accepts; ``accepts`` compares in constant time.

    One TokenSet is shared by a node's API servers; ``replace`` swaps its tokens while they
    serve (SIGHUP re-reads the token file): the digest list is replaced as one reference,
    never changed in place, so a check running on a server thread sees the old list or the
    new one, whole.
    """

    def __init__(self, tokens: list[str] | list[TokenEntry]) -> None:
        self._digests = self._digest(tokens)

    @staticmethod
    def _digest(tokens: list[str] | list[TokenEntry]) -> list[tuple[bytes, float | None]]:
        if not tokens:
            raise ValueError("at least one token is required")
        entries = [t if isinstance(t, TokenEntry) else TokenEntry(t) for t in tokens]
        return [(hashlib.sha256(e.token.encode()).digest(), e.expires) for e in entries]

    def __repr__(self) -> str:
        return f"TokenSet({len(self._digests)} tokens)"

    def __len__(self) -> int:
        return len(self._digests)

    def replace(self, tokens: list[str] | list[TokenEntry]) -> None:
        """Accept ``tokens`` from now on, and no other (ValueError if empty: nothing changes)."""
        self._digests = self._digest(tokens)

    def accepts(self, presented: bytes, now: float | None = None) -> bool:
        return self.check(presented, now) == "ok"

    def check(self, presented: bytes, now: float | None = None) -> str:
        """ "ok", "wrong" (no such token) or "expired" (a known token past its expiry)."""
        # Compare fixed-size digests, and every one of them, so neither the length of a
        # token nor which one matched shows in the time taken.
        if not presented or len(presented) > MAX_TOKEN_LEN:
            return "wrong"
        digest = hashlib.sha256(presented).digest()
        now = time.time() if now is None else now
        matched = expired = False
        for known, expires in self._digests:  # read once: a concurrent replace swaps the whole list
            same = hmac.compare_digest(digest, known)
            late = expires is not None and now >= expires
            matched |= same and not late
            expired |= same and late
        return "ok" if matched else "expired" if expired else "wrong"


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)  # the mode given to open is masked by the umask; this is not
    with os.fdopen(fd, "w") as out:
        out.write(text)


def check_private(path: Path, what: str) -> None:
    """KeyFileError unless ``path`` is readable by its owner only (group and others: no access)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{what} {path} is readable by other users (mode {mode:04o}): run `chmod 600 {path}`, "
            "or set [security] allow_loose_permissions = true to accept it"
        )


def _zpl(key: ClusterKey, with_secret: bool) -> str:
    lines = [
        "#   ****  Orion cluster CURVE key: generated by `orion keygen`  ****",
        "#   ZeroMQ CURVE "
        + (
            "**Secret** Certificate: DO NOT SHARE beyond the cluster's nodes"
            if with_secret
            else "Public Certificate"
        ),
        "",
        "metadata",
        "curve",
        f'    public-key = "{key.public.decode()}"',
    ]
    if with_secret:
        lines.append(f'    secret-key = "{key.secret.decode()}"')
    return "\n".join(lines) + "\n"


def cluster_key_paths(directory: Path) -> tuple[Path, Path]:
    """(secret file, public file) of the cluster key in ``directory``."""
    return directory / f"{CLUSTER_KEY_NAME}.key_secret", directory / f"{CLUSTER_KEY_NAME}.key"


def write_cluster_key(directory: Path, key: ClusterKey | None = None) -> tuple[Path, Path]:
    """Write a (new) cluster key pair; refuses to overwrite existing files."""
    key = key or ClusterKey.generate()
    secret_path, public_path = cluster_key_paths(directory)
    for path in (secret_path, public_path):
        if path.exists():
            raise KeyFileError(f"{path} exists: refusing to overwrite a key (remove it first)")
    _write_secret(secret_path, _zpl(key, with_secret=True))
    public_path.write_text(_zpl(key, with_secret=False))
    return secret_path, public_path


def write_token(path: Path, token: str | None = None) -> Path:
    """Write a client token (a new random one by default; mode 0600); refuses to overwrite."""
    if path.exists():
        raise KeyFileError(f"{path} exists: refusing to overwrite a token (remove it first)")
    _write_secret(path, (token or secrets.token_urlsafe(TOKEN_BYTES)) + "\n")
    return path


def load_cluster_key(path: Path) -> ClusterKey:
    """The key pair from a secret certificate file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise KeyFileError(
            f"no cluster key at {path}: create one with `orion keygen` and copy it to every node, "
            "or set [security] insecure = true for a local experiment"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot read cluster key {path}: {exc.strerror}") from None
    keys = {m.group(1): m.group("key").encode() for m in _ZPL_KEY.finditer(text)}
    if "secret" not in keys or "public" not in keys:
        raise KeyFileError(
            f"{path} is not a secret cluster key (want the .key_secret file from `orion keygen`)"
        )
    try:
        derived = zmq.curve_public(keys["secret"])
    except zmq.ZMQError:
        raise KeyFileError(f"{path}: the secret key is not a valid Z85 CURVE key") from None
    if derived != keys["public"]:
        raise KeyFileError(f"{path}: the public key does not belong to the secret key")
    return ClusterKey(public=keys["public"], secret=keys["secret"])


def parse_expiry(text: str, where: str) -> float:
    """Seconds since the epoch of ``expires=`` in a token line (ISO 8601; UTC without a zone)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise KeyFileError(
            f"{where}: expires={text!r} is not an ISO 8601 time (e.g. 2025-12-31T00:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def read_token_entries(path: Path) -> list[TokenEntry]:
    """Every token line of a token file: ``TOKEN [expires=ISO-8601]``; # starts a comment line."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise KeyFileError(
            f"no client token at {path}: create one with `orion keygen`, "
            "or set [security] insecure = true for a local experiment"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot read token file {path}: {exc.strerror}") from None
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        token, *options = line.split()
        if len(token) > MAX_TOKEN_LEN or not token.isascii():
            raise KeyFileError(f"{path}: tokens must be ASCII and at most {MAX_TOKEN_LEN} characters")
        expires = None
        for option in options:
            name, sep, value = option.partition("=")
            if name != "expires" or not sep:
                raise KeyFileError(f"{path} line {number}: unknown option {name!r} (only expires=TIME)")
            expires = parse_expiry(value, f"{path} line {number}")
        entries.append(TokenEntry(token, expires))
    if not entries:
        raise KeyFileError(f"{path} holds no token")
    return entries


def read_tokens(path: Path, *, unexpired: bool = False) -> list[str]:
    """The tokens of a token file (``unexpired``: only those not past their expiry)."""
    now = time.time()
    tokens = [e.token for e in read_token_entries(path) if not (unexpired and e.expired(now))]
    if not tokens:
        raise KeyFileError(f"{path}: every token in it has expired")
    return tokens


def load_public_key(path: Path) -> bytes:
    """The Z85 public key in a certificate (``cluster.key``, ``.key_secret``) or a client bundle."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise KeyFileError(
            f"no server key at {path}: want the cluster's public key (secrets/cluster.key from "
            "`orion keygen`) or a client bundle (`orion keygen --client-bundle FILE`)"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot read server key {path}: {exc.strerror}") from None
    if BUNDLE_MARK in text:
        return read_client_bundle(path).server_key
    keys = {m.group(1): m.group("key").encode() for m in _ZPL_KEY.finditer(text)}
    if "public" not in keys:
        raise KeyFileError(f"{path} holds no CURVE public key (want secrets/cluster.key from `orion keygen`)")
    return checked_public_key(keys["public"], str(path))


def checked_public_key(key: bytes, where: str) -> bytes:
    """``key`` if it is a Z85 CURVE public key (40 characters), else KeyFileError naming ``where``."""
    try:
        if len(key) != 40:
            raise ValueError
        z85_decode(key)
    except ValueError:
        raise KeyFileError(f"{where}: not a CURVE public key (40 Z85 characters)") from None
    return key


BUNDLE_MARK = "# Orion client bundle"


@dataclass(frozen=True)
class ClientBundle:
    """What a client needs to reach a secured cluster: the API's public key and a token."""

    server_key: bytes
    token: str = field(repr=False)
    endpoints: tuple[str, ...] = ()


def write_client_bundle(path: Path, bundle: ClientBundle) -> Path:
    """A TOML file (mode 0600: it holds a token); refuses to overwrite."""
    if path.exists():
        raise KeyFileError(f"{path} exists: refusing to overwrite a client bundle (remove it first)")
    endpoints = ", ".join(f'"{e}"' for e in bundle.endpoints)
    _write_secret(
        path,
        f"{BUNDLE_MARK}: `orion keygen --client-bundle`. Holds a client token: keep it private.\n"
        f'server_key = "{bundle.server_key.decode()}"\n'
        f'token = "{bundle.token}"\n'
        f"endpoints = [{endpoints}]\n",
    )
    return path


def read_client_bundle(path: Path) -> ClientBundle:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise KeyFileError(
            f"no client bundle at {path} (make one with `orion keygen --client-bundle FILE`)"
        ) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise KeyFileError(f"cannot read client bundle {path}: {exc}") from None
    key, token, endpoints = data.get("server_key"), data.get("token"), data.get("endpoints", [])
    if not isinstance(key, str) or not isinstance(token, str) or not token:
        raise KeyFileError(f"{path}: a client bundle needs server_key and token")
    if not isinstance(endpoints, list) or not all(isinstance(e, str) for e in endpoints):
        raise KeyFileError(f"{path}: endpoints must be a list of host:port strings")
    return ClientBundle(checked_public_key(key.encode(), str(path)), token, tuple(endpoints))
