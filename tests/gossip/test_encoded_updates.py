"""Updates encoded once and reused (``EncodedUpdates``): every message encodes to the bytes a
plain encoder gives, whatever the cache holds, and the cache stays bounded."""

from __future__ import annotations

from random import Random

import msgspec
import pytest

from orion.gossip.config import GossipConfig
from orion.gossip.core import SwimCore
from orion.gossip.messages import (
    Ack,
    Alive,
    Dead,
    EncodedUpdates,
    Gossip,
    MemberState,
    Ping,
    PingReq,
    PushPull,
    SharedAlives,
    SharedDecoder,
    Suspect,
    decode_message,
    encode_message,
    encoded_size,
    encoded_updates,
    shared_alives,
)
from orion.model import NodeMeta, NodeStatus
from tests.gossip.test_messages import META, SAMPLES

PLAIN = msgspec.msgpack.Encoder()
UPDATES = [Alive("n1", 3, META), Suspect("n2", 1, "n3"), Dead("n4", 2, "n4", left=True)]
CARRIERS = [
    Gossip("127.0.0.1:7200", UPDATES, "c1"),
    Ping(7, "127.0.0.1:7200", "n9", UPDATES, "c1"),
    Ack(7, "127.0.0.1:7200", UPDATES),
    PingReq(8, "127.0.0.1:7200", "n9", "127.0.0.1:7209", True, UPDATES, "c1"),
]


@pytest.mark.parametrize("msg", [*SAMPLES, *CARRIERS], ids=lambda m: type(m).__name__)
def test_a_message_encodes_to_the_plain_encoders_bytes_cached_or_not(msg: object) -> None:
    first = encode_message(msg)  # type: ignore[arg-type]
    again = encode_message(msg)  # type: ignore[arg-type]  # from the cache this time
    assert first == again == PLAIN.encode(msg)
    assert decode_message(first) == msg


def test_an_update_relayed_by_a_pool_is_sent_as_the_bytes_it_came_in() -> None:
    decoder = SharedDecoder()
    heard = decoder.decode(encode_message(Gossip("127.0.0.1:7200", UPDATES)))
    assert isinstance(heard, Gossip)
    relayed = Gossip("127.0.0.1:7201", list(heard.updates))
    assert encode_message(relayed) == PLAIN.encode(Gossip("127.0.0.1:7201", UPDATES))
    assert [encoded_size(u) for u in heard.updates] == [len(PLAIN.encode(u)) for u in UPDATES]


def test_equal_updates_that_are_different_objects_encode_alike() -> None:
    one, other = Suspect("n2", 1, "n3"), Suspect("n2", 1, "n3")
    assert encoded_updates.raw(one) == encoded_updates.raw(other) == msgspec.Raw(PLAIN.encode(one))


def test_the_cache_is_dropped_whole_past_its_bound_and_still_answers() -> None:
    cache = EncodedUpdates(max_entries=4)
    updates = [Suspect(f"n{i}", i, "me") for i in range(10)]
    for update in updates:
        assert bytes(cache.raw(update)) == PLAIN.encode(update)
        assert len(cache._raw) <= 4
    assert [bytes(cache.raw(u)) for u in updates] == [PLAIN.encode(u) for u in updates]


def test_shared_alives_give_one_alive_per_state_object_and_keep_nothing_on_a_real_node() -> None:
    state = MemberState("n1", 3, NodeStatus.ALIVE, META)
    pool = SharedAlives(max_entries=2)
    alive = pool(state)
    assert alive == Alive("n1", 3, META) and pool(state) is alive
    assert pool(MemberState("n1", 3, NodeStatus.ALIVE, META)) is not alive  # equal, another object
    assert [pool(MemberState(f"n{i}", i, NodeStatus.ALIVE, META)).node_id for i in range(5)] == [
        f"n{i}" for i in range(5)
    ]
    assert len(pool._alive) <= 2
    node = SharedAlives()  # max_entries 0: a real node's states are its own
    assert node(state) == alive and node(state) is not node(state) and node._alive == {}


def test_cores_of_a_pool_merging_one_answer_queue_the_same_alive_objects() -> None:
    decoder = SharedDecoder()
    states = [MemberState(f"m{i}", 1, NodeStatus.ALIVE, META) for i in range(3)]
    answer = encode_message(PushPull("127.0.0.1:7200", "seed", states, join=True, reply=True))
    saved = shared_alives.max_entries
    shared_alives.max_entries = 1000
    try:
        cores = [
            SwimCore(NodeMeta(id=f"c{i}", gossip_port=7300 + i), GossipConfig(), Random(i), 0.0)
            for i in range(2)
        ]
        for core in cores:
            core.receive(decoder.decode(answer), 0.0)
        queued = [{u.node_id: u for u in core._broadcasts.take(1 << 20, 99)} for core in cores]
    finally:
        shared_alives.max_entries = saved
    assert [queued[0][f"m{i}"] == Alive(f"m{i}", 1, META) for i in range(3)] == [True] * 3
    assert all(queued[0][f"m{i}"] is queued[1][f"m{i}"] for i in range(3))
