"""Regression: invalid UTF-8 inside a message is a decode error, never a UnicodeDecodeError.

msgspec raises UnicodeDecodeError (not its own DecodeError) for bad UTF-8 in some string
fields and union tags. The nemesis fuzzer found that one such frame at a node's Raft port
killed its Raft actor, and with it the node; the same escape in the API decoder ended the
API server thread. Each decoder must turn it into the error its callers catch.
"""

from __future__ import annotations

import msgspec
import pytest

from orion.api.protocol import RequestError, decode_request
from orion.cluster.forwarding import decode_forward
from orion.raft.messages import decode_message

BAD_STR = b"\xa2\xe0\x80"  # a 2-byte msgpack str that is not UTF-8


@pytest.mark.parametrize(
    "frame",
    [
        b"\x96\x01" + BAD_STR + b"\xa1b\x01\x01\x01",  # RequestVote with a bad src
        b"\x93" + BAD_STR + b"\xa1a\xa1b",  # a bad tag
    ],
)
def test_raft_decode_refuses_bad_utf8(frame: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_message(frame)


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


def test_api_decode_refuses_bad_utf8_in_op() -> None:
    with pytest.raises(RequestError, match="malformed request"):
        decode_request(b"\x81\xa2op" + BAD_STR)
