"""The header of a node-to-node frame: who sent it and which channel it belongs to.

A peer frame travels as a two-part ZeroMQ message ``[header, payload]``. The header is
``magic, version, channel, len(sender)`` followed by the sender's listen address
("host:port", ASCII). The sender is in the header so a receiver can drop traffic from
blocked peers (fault injection) without decoding the payload.
"""

from __future__ import annotations

import struct
from enum import IntEnum

MAGIC = 0xA7
VERSION = 1
_FIXED = struct.Struct("!BBBB")  # magic, version, channel, sender length
MAX_SENDER_LEN = 255


class Channel(IntEnum):
    RAFT = 1
    GOSSIP = 2
    FORWARD = 3  # client requests forwarded to the leader, and their replies
    NODE = 4  # requests only one node can serve (a task's container logs), and their replies
    FEED = 5  # a worker's watch and a Raft member's answers (orion/cluster/feed_protocol.py)


_CHANNELS = {int(c): c for c in Channel}


class FrameError(ValueError):
    """A frame whose header cannot be trusted; the receiver drops and counts it."""


def encode_header(channel: Channel, sender: str) -> bytes:
    raw = sender.encode("ascii")
    if len(raw) > MAX_SENDER_LEN:
        raise ValueError(f"sender address too long: {sender!r}")
    return _FIXED.pack(MAGIC, VERSION, int(channel), len(raw)) + raw


def decode_header(header: bytes) -> tuple[Channel, str]:
    """Channel and sender address of a header; FrameError when anything is off."""
    if len(header) < _FIXED.size:
        raise FrameError("header too short")
    magic, version, channel, sender_len = _FIXED.unpack_from(header)
    if magic != MAGIC:
        raise FrameError(f"bad magic 0x{magic:02x}")
    if version != VERSION:
        raise FrameError(f"unsupported version {version}")
    if channel not in _CHANNELS:
        raise FrameError(f"unknown channel {channel}")
    if len(header) != _FIXED.size + sender_len:
        raise FrameError("header length does not match its sender field")
    try:
        sender = header[_FIXED.size :].decode("ascii")
    except UnicodeDecodeError as exc:
        raise FrameError("sender address is not ASCII") from exc
    return _CHANNELS[channel], sender
