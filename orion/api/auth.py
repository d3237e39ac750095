"""The one check of a client token, shared by the ZeroMQ API and the REST mirror.

A secured cluster wants a client token with every request: the ZeroMQ client sends it as a
frame before the request, a REST client as ``Authorization: Bearer TOKEN`` (``bearer_token``
reads that header; any other scheme counts as no token). ``refusal`` says whether the token
is missing or wrong, because the fix differs (give one, or give the right one); each front end
words the answer for its own clients (``refusal_message``). The token is never logged.
"""

from __future__ import annotations

from enum import StrEnum

from orion.security.keys import TokenSet


class AuthRefusal(StrEnum):
    MISSING = "missing"  # no token given
    WRONG = "wrong"  # a token this node does not accept
    EXPIRED = "expired"  # a token of the token file past its expires= time


class Front(StrEnum):
    ZMQ = "zmq"
    REST = "rest"


_MESSAGES = {
    (Front.ZMQ, AuthRefusal.MISSING): (
        "unauthorized: no token given (set ORION_TOKEN_FILE or ORION_TOKEN, or use --token-file): "
        "this cluster requires a client token"
    ),
    (Front.ZMQ, AuthRefusal.WRONG): (
        "unauthorized: token not accepted (not in the token file of the node that answered; "
        "check ORION_TOKEN_FILE, ORION_TOKEN or --token-file)"
    ),
    (Front.REST, AuthRefusal.MISSING): (
        "no token given: send Authorization: Bearer TOKEN (the cluster's client token)"
    ),
    (Front.REST, AuthRefusal.WRONG): "token not accepted: not in the token file of this node",
    (
        Front.ZMQ,
        AuthRefusal.EXPIRED,
    ): "unauthorized: token expired (its expires= time in the token file has passed)",
    (Front.REST, AuthRefusal.EXPIRED): "token expired: its expires= time in the token file has passed",
}


def refusal(tokens: TokenSet | None, presented: bytes) -> AuthRefusal | None:
    """None when the request may run: no token is required (``tokens`` is None) or
    ``presented`` is one of them; else why not."""
    if tokens is None:
        return None
    if not presented:
        return AuthRefusal.MISSING
    verdict = tokens.check(presented)
    return None if verdict == "ok" else AuthRefusal.EXPIRED if verdict == "expired" else AuthRefusal.WRONG


def bearer_token(header: str | None) -> bytes:
    """The token of an ``Authorization: Bearer TOKEN`` header (the scheme in any case), or b""."""
    scheme, _, token = (header or "").strip().partition(" ")
    return token.strip().encode() if scheme.lower() == "bearer" else b""


def refusal_message(front: Front, why: AuthRefusal) -> str:
    return _MESSAGES[(front, why)]
