"""The hollow pool's shared decoder: the same messages as ``decode_message``, the same refusals,
and one object for the same update or member state however many cores receive it."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orion.codec import TooLarge
from orion.gossip.messages import (
    MAX_MESSAGE_BYTES,
    Alive,
    Gossip,
    PushPull,
    SharedDecoder,
    decode_message,
    encode_message,
)
from tests.gossip.test_messages import GARBAGE, META, SAMPLES


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_decodes_as_decode_message_does(msg: object) -> None:
    payload = encode_message(msg)  # type: ignore[arg-type]
    decoder = SharedDecoder()
    first, again = decoder.decode(payload), decoder.decode(payload)
    assert first == again == decode_message(payload) == msg
    assert type(first) is type(msg)


def test_an_update_heard_twice_is_one_object() -> None:
    decoder = SharedDecoder()
    one = decoder.decode(encode_message(Gossip("127.0.0.1:7200", [Alive("n1", 3, META)])))
    other = decoder.decode(encode_message(Gossip("127.0.0.1:7201", [Alive("n1", 3, META)])))
    assert isinstance(one, Gossip) and isinstance(other, Gossip)
    assert one.updates[0] is other.updates[0] and (decoder.hits, decoder.misses) == (1, 1)
    states = decoder.decode(encode_message(PushPull("127.0.0.1:7200", "n1", [], join=True)))
    assert isinstance(states, PushPull) and states.states == [] and states.join


def test_the_caches_are_dropped_past_their_bound() -> None:
    decoder = SharedDecoder(max_entries=3)
    for incarnation in range(10):
        decoder.decode(encode_message(Gossip("127.0.0.1:7200", [Alive("n1", incarnation, META)])))
    assert len(decoder._updates) <= 3


@pytest.mark.parametrize("bad", GARBAGE)
def test_garbage_is_refused_alike(bad: bytes) -> None:
    with pytest.raises(msgspec.MsgspecError):
        SharedDecoder().decode(bad)


def test_oversized_buffer_is_refused_before_parsing() -> None:
    with pytest.raises(TooLarge):
        SharedDecoder().decode(b"\x00" * (MAX_MESSAGE_BYTES + 1))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_are_accepted_or_refused_as_decode_message_does(data: bytes) -> None:
    try:
        expected: object = decode_message(data)
    except msgspec.MsgspecError:
        expected = None
    try:
        got: object = SharedDecoder().decode(data)
    except msgspec.MsgspecError:
        got = None
    assert got == expected
