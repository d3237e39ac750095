"""Where a client (orion.client.Client, the CLI, the tools) finds its token and the API's public key.

One resolution for every client, first found wins:

- token: ``token=`` / ``--token-file``, else ``ORION_TOKEN``, else the file ``ORION_TOKEN_FILE``
  names, else the client bundle's token;
- server key (the API's CURVE public key, 40 Z85 characters): ``server_key=`` / ``--server-key``
  (a key or a file), else ``ORION_SERVER_KEY`` (the key itself), else the file
  ``ORION_SERVER_KEY_FILE`` names, else the client bundle's key, else ``cluster.key`` beside the
  token file (where ``orion keygen`` writes both, so ``ORION_TOKEN_FILE=secrets/client.token``
  alone is enough on a machine that ran keygen);
- client bundle (``orion keygen --client-bundle FILE``: key, token and endpoints in one file):
  ``bundle=`` / ``--bundle``, else ``ORION_CLIENT_BUNDLE``.

A key file may be ``cluster.key`` (public), a ``.key_secret`` (only its public half is used)
or a bundle. Nothing here logs a token or a key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from orion.security.keys import (
    CLUSTER_KEY_NAME,
    ClientBundle,
    KeyFileError,
    checked_public_key,
    load_public_key,
    read_client_bundle,
    read_tokens,
)


@dataclass(frozen=True)
class ClientCredentials:
    token: str | None = field(default=None, repr=False)
    server_key: bytes | None = None  # None: plain TCP (an insecure cluster)
    endpoints: tuple[str, ...] = ()  # from a bundle; the caller's own endpoints come first


def read_token_file(path: str | os.PathLike[str], source: str = "token file") -> str:
    """The first unexpired token of a token file (as written by ``orion keygen``)."""
    file = Path(path)
    if not file.is_file():
        reason = "is a directory" if file.is_dir() else "no such file"
        raise KeyFileError(
            f"{source} {file}: {reason} (want the client token file from `orion keygen`, "
            "e.g. secrets/client.token)"
        )
    try:
        return read_tokens(file, unexpired=True)[0]
    except KeyFileError as exc:
        raise KeyFileError(f"{source}: {exc}") from None


def server_key_from(value: str | bytes | os.PathLike[str], source: str) -> bytes:
    """A Z85 key given as such, or the key in the file it names."""
    if isinstance(value, bytes | str) and len(value) == 40 and not Path(os.fsdecode(value)).exists():
        return checked_public_key(value.encode() if isinstance(value, str) else value, source)
    try:
        return load_public_key(Path(os.fsdecode(value)))
    except KeyFileError as exc:
        raise KeyFileError(f"{source}: {exc}") from None


def resolve(
    *,
    token: str | None = None,
    token_file: str | os.PathLike[str] | None = None,
    server_key: str | bytes | os.PathLike[str] | None = None,
    bundle: str | os.PathLike[str] | None = None,
) -> ClientCredentials:
    """The credentials a client uses (see the module doc); KeyFileError names a bad source.

    ``token=""`` means "no token": an insecure cluster, so no key either unless ``server_key``
    is given; ``server_key=""`` means plain TCP. Neither looks in the environment."""
    env = os.environ
    bundle_path = bundle or env.get("ORION_CLIENT_BUNDLE", "").strip() or None
    loaded: ClientBundle | None = None
    if bundle_path is not None:
        source = "--bundle" if bundle else "ORION_CLIENT_BUNDLE"
        try:
            loaded = read_client_bundle(Path(bundle_path))
        except KeyFileError as exc:
            raise KeyFileError(f"{source}: {exc}") from None

    insecure = token == ""
    token_path: Path | None = None
    if token is None and token_file is not None:
        token_path = Path(token_file)
        token = read_token_file(token_path, "--token-file")
    if token is None:
        token = env.get("ORION_TOKEN", "").strip() or None
    if token is None and env.get("ORION_TOKEN_FILE", "").strip():
        token_path = Path(env["ORION_TOKEN_FILE"].strip())
        token = read_token_file(token_path, "ORION_TOKEN_FILE")
    if token is None and loaded is not None:
        token = loaded.token

    key: bytes | None = None
    if server_key is not None:
        key = server_key_from(server_key, "--server-key") if server_key else None
    elif insecure:
        key = None
    elif env.get("ORION_SERVER_KEY", "").strip():
        key = checked_public_key(env["ORION_SERVER_KEY"].strip().encode(), "ORION_SERVER_KEY")
    elif env.get("ORION_SERVER_KEY_FILE", "").strip():
        key = server_key_from(env["ORION_SERVER_KEY_FILE"].strip(), "ORION_SERVER_KEY_FILE")
    elif loaded is not None:
        key = loaded.server_key
    elif token_path is not None and (token_path.parent / f"{CLUSTER_KEY_NAME}.key").is_file():
        key = load_public_key(token_path.parent / f"{CLUSTER_KEY_NAME}.key")
    return ClientCredentials(
        token=token or None,
        server_key=key,
        endpoints=loaded.endpoints if loaded is not None else (),
    )


NO_SERVER_KEY = (
    "this cluster's API is encrypted (CURVE) and the client has no server key: set "
    "ORION_SERVER_KEY_FILE to the cluster's public key (secrets/cluster.key from `orion keygen`), "
    "use --server-key FILE, or a client bundle (ORION_CLIENT_BUNDLE, --bundle)"
)
