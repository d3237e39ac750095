"""The forwarding codec between nodes: invalid UTF-8 in a frame is a decode error its callers
catch, never a UnicodeDecodeError (msgspec raises that for some string fields and union tags;
the nemesis fuzzer found one that killed a node's Raft actor)."""

from __future__ import annotations

import msgspec
import pytest

from orion.cluster.forwarding import decode_forward

BAD_STR = b"\xa2\xe0\x80"  # a 2-byte msgpack str that is not UTF-8


@pytest.mark.parametrize(
    "frame",
    [
        b"\x93" + BAD_STR + b"\x01\xa1a",  # a bad tag
        b"\x94\xa7propose\x01" + BAD_STR + b"\xc4\x00",  # ForwardPropose with a bad origin
    ],
)
def test_forward_decode_refuses_bad_utf8(frame: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_forward(frame)
