"""orion/codec.py: every decoder of outside input is bounded and raises only msgspec errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from orion.api.protocol import MAX_REPLY, decode_reply
from orion.cluster.forwarding import MAX_FORWARD_FRAME, decode_forward
from orion.codec import TooLarge, bounded_decode
from orion.fsm.commands import MAX_COMMAND_BYTES, decode_command
from orion.gossip import messages as gossip
from orion.raft import messages as raft
from orion.raft.envelope import decode_envelope
from orion.raft.snapshot_stream import decode_stream_message

BAD_STR = b"\xa2\xe0\x80"  # a 2-byte msgpack str that is not UTF-8


def test_a_buffer_over_the_limit_is_refused_before_parsing() -> None:
    decoder = msgspec.msgpack.Decoder(str)
    with pytest.raises(TooLarge, match="note of 4 bytes exceeds 3"):
        bounded_decode(decoder, b"\xa3abc", 3, "note")
    assert bounded_decode(decoder, b"\xa3abc", 4, "note") == "abc"


class TextDecoder:
    """Decodes UTF-8 text: bad bytes escape as UnicodeDecodeError, as msgspec let them from some
    str fields and union tags (the nemesis found one that killed the Raft actor)."""

    def decode(self, buf: bytes) -> str:
        return buf.decode()


def test_bad_utf8_is_a_decode_error_naming_the_message() -> None:
    assert bounded_decode(TextDecoder(), b"fine", 100, "note") == "fine"
    with pytest.raises(msgspec.DecodeError, match="invalid UTF-8 in note"):
        bounded_decode(TextDecoder(), b"\xe0\x80", 100, "note")


def test_too_large_is_caught_as_a_decode_and_a_validation_error() -> None:
    # Callers catch msgspec.DecodeError (the Raft actor also ValidationError): both see it.
    assert issubclass(TooLarge, msgspec.DecodeError)
    assert issubclass(TooLarge, msgspec.ValidationError)


@pytest.mark.parametrize(
    ("decode", "limit"),
    [
        (raft.decode_message, raft.MAX_MESSAGE_BYTES),
        (decode_envelope, raft.MAX_MESSAGE_BYTES),
        (decode_stream_message, raft.MAX_MESSAGE_BYTES),
        (decode_forward, MAX_FORWARD_FRAME),
        (gossip.decode_message, gossip.MAX_MESSAGE_BYTES),
        (decode_command, MAX_COMMAND_BYTES),
        (decode_reply, MAX_REPLY),
    ],
    ids=["raft", "envelope", "snapshot_stream", "forward", "gossip", "command", "reply"],
)
def test_every_decoder_is_bounded(decode: Callable[[bytes], Any], limit: int) -> None:
    with pytest.raises(TooLarge):
        decode(b"\x00" * (limit + 1))
    with pytest.raises(msgspec.DecodeError):
        decode(b"\x91" + BAD_STR)  # within the limit: bad UTF-8 (or a bad shape), never UnicodeDecodeError
