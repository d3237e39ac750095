"""Wire format: round trips, and garbage is rejected by decode and changes no state."""

from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orion.codec import TooLarge
from orion.gossip.config import GossipConfig
from orion.gossip.messages import (
    MAX_MESSAGE_BYTES,
    Ack,
    Alive,
    Dead,
    Gossip,
    MemberState,
    Nack,
    Ping,
    PingReq,
    PushPull,
    Suspect,
    decode_message,
    encode_message,
)
from orion.model import NodeMeta
from orion.sim.gossip_cluster import GossipCluster

META = NodeMeta(
    id="node-with-a-realistic-name-01",
    role="node",
    address="192.168.100.200",
    raft_port=7100,
    gossip_port=7200,
    api_port=7300,
    http_port=7400,
    memory_total=64 * 2**30,
    memory_used=13 * 2**30,
    cpu_total=16.0,
    disk_total=2 * 2**40,
    tags={"zone": "eu-west-1a", "rack": "r17", "gpu": "none", "tier": "batch"},
    version=123456,
    cluster_id="5f0c3a9e8b7d4c2a9e1f0b3c4d5e6f70",  # uuid4().hex, as made at bootstrap
    raft_incarnation="0a1b2c3d4e5f60718293a4b5c6d7e8f9",
)

SAMPLES = [
    Ping(1, "127.0.0.1:7200", "n2", [Alive("n1", 3, META), Suspect("n2", 1, "n1"), Dead("n3", 9, "n1")]),
    Ack(2**40, "127.0.0.1:7201", []),
    Nack(3, "127.0.0.1:7202"),
    PingReq(4, "127.0.0.1:7200", "n5", "10.0.0.5:7200", True, [Dead("n1", 2, "n1", left=True)]),
    Gossip("127.0.0.1:7200", [Alive("n1", 0, META)]),
    PushPull("127.0.0.1:7200", "n1", [MemberState("n1", 4, "suspect", META)], join=True, reply=True),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg: object) -> None:
    assert decode_message(encode_message(msg)) == msg  # type: ignore[arg-type]


def test_realistic_meta_stays_under_512_bytes() -> None:
    assert len(msgspec.msgpack.encode(META)) < 512


GARBAGE = [
    b"",
    b"\xc1",
    b"\x00garbage",
    msgspec.msgpack.encode(["nope", 1, "127.0.0.1:1"]),  # unknown tag
    msgspec.msgpack.encode(["ping", -1, "127.0.0.1:7200", "n2", []]),  # negative seq
    msgspec.msgpack.encode(["ping", 1, "no port here", "n2", []]),  # bad address
    msgspec.msgpack.encode(["ping", 1, "127.0.0.1:7200", "", []]),  # empty target id
    msgspec.msgpack.encode(["ack", 1, "127.0.0.1:7200", [["alive", "n1", -5, {"id": "n1"}]]]),
    msgspec.msgpack.encode(["push_pull", "127.0.0.1:7200", "n1", [["n1", 1, "zombie", {"id": "n1"}]]]),
    encode_message(SAMPLES[0])[:-4],  # truncated
    b"\x91\xa7\x00\x00\x00\x00\x00\x00\x80",  # invalid UTF-8 in the tag
]


@pytest.mark.parametrize("bad", GARBAGE)
def test_garbage_is_rejected(bad: bytes) -> None:
    with pytest.raises(msgspec.MsgspecError):
        decode_message(bad)


def test_oversized_buffer_is_rejected_before_parsing() -> None:
    with pytest.raises(TooLarge):
        decode_message(b"\x00" * (MAX_MESSAGE_BYTES + 1))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_escape_as_other_errors(data: bytes) -> None:
    try:
        decode_message(data)
    except msgspec.MsgspecError:
        pass


def test_garbage_does_not_change_member_state() -> None:
    cluster = GossipCluster(5, GossipConfig.local(), seed=3, encode=True)
    cluster.join_all()
    assert cluster.run_until_true(cluster.converged, timeout=30)
    before = cluster.cores["n001"].members()
    rng = random.Random(9)
    garbage = [bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 200))) for _ in range(200)]
    forged = encode_message(SAMPLES[0])[:-1]
    for datagram in [*garbage, forged, b"", b"\xc1" * 10]:
        assert not cluster.inject("n001", datagram)
    assert cluster.cores["n001"].members() == before
    assert cluster.rejected == len(garbage) + 3
