"""Decoding what arrives from outside: bounded in size, and only ever a msgspec error.

Every decoder of a peer frame, a gossip datagram, a forwarded request, a client request or an
FSM command goes through ``bounded_decode``, so each gets the same two guards:

- a size limit checked before any parsing (DESIGN rule 5), refused with ``TooLarge``;
- bad UTF-8 reported as ``msgspec.DecodeError``: msgspec lets it escape as
  ``UnicodeDecodeError`` from some string fields and union tags, and uncaught that once killed
  the Raft actor and the API server thread (found by the nemesis and by hypothesis).

So callers catch ``msgspec.DecodeError`` (``ValidationError`` and ``TooLarge`` are kinds of it)
and nothing else.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import msgspec

T = TypeVar("T", covariant=True)


class TooLarge(msgspec.ValidationError):
    """A buffer over its limit, refused before parsing; the message names what and both sizes."""


class _Decoder(Protocol[T]):
    def decode(self, buf: Any, /) -> T: ...


def bounded_decode(decoder: _Decoder[T], buf: bytes | bytearray | memoryview, limit: int, what: str) -> T:
    """``decoder.decode(buf)`` for a buffer of at most ``limit`` bytes; ``what`` names the
    message in errors ("raft message", "gossip message", ...)."""
    if len(buf) > limit:
        raise TooLarge(f"{what} of {len(buf)} bytes exceeds {limit}")
    try:
        return decoder.decode(buf)
    except UnicodeDecodeError as exc:
        raise msgspec.DecodeError(f"invalid UTF-8 in {what}: {exc}") from exc
