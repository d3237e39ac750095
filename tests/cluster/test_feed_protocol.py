"""The feed's wire messages across versions: fields added last are ignored by an older peer,
and missing ones take their defaults in a newer one."""

from __future__ import annotations

import msgspec
import pytest

from orion.cluster.feed_protocol import FeedAnswer, FeedWatch, decode_feed, encode_feed


class _NewerWatch(msgspec.Struct, tag="watch", array_like=True, frozen=True):
    node_id: str
    origin: str
    since: int
    wait_ms: int
    resume_token: str = ""  # a field a later version might add


class _OlderAnswer(msgspec.Struct, tag="answer", array_like=True, frozen=True):
    node_id: str
    index: int
    changed: bool


def test_an_older_receiver_ignores_fields_added_after_it() -> None:
    frame = msgspec.msgpack.encode(_NewerWatch("w1", "127.0.0.1:7001", 12, 5000, "tok"))
    assert decode_feed(frame) == FeedWatch("w1", "127.0.0.1:7001", 12, 5000)


def test_a_newer_receiver_fills_fields_an_older_sender_lacks() -> None:
    answer = decode_feed(msgspec.msgpack.encode(_OlderAnswer("w1", 40, False)))
    assert isinstance(answer, FeedAnswer)
    assert (answer.index, answer.changed, answer.tasks, answer.volumes, answer.member) == (
        40,
        False,
        [],
        [],
        False,
    )


def test_bad_fields_are_named() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"\$\[3\]"):
        decode_feed(encode_feed(FeedWatch("w1", "127.0.0.1:1", -1, 0)))
    with pytest.raises(msgspec.ValidationError, match="<= 120000"):
        decode_feed(msgspec.msgpack.encode(_NewerWatch("w1", "127.0.0.1:1", 0, 10**7)))
