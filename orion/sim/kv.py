"""A tiny key-value state machine for the simulator. Commands are ``b"key=value"``; anything
else is recorded but changes no key. ``chain`` is a CRC over every applied command, so two
replicas with equal chains applied the same sequence."""

from __future__ import annotations

import zlib

import msgspec

from orion.raft.types import Entry, EntryKind


class KVState(msgspec.Struct, array_like=True):
    applied_index: int = 0
    chain: int = 0
    kv: dict[bytes, bytes] = {}


def parse_command(data: bytes) -> tuple[bytes, bytes] | None:
    """``b"key=value"`` -> (key, value); None for a command that writes no key."""
    key, sep, value = data.partition(b"=")
    return (key, value) if sep else None


class KVFsm:
    def __init__(self) -> None:
        self.applied_index = 0
        self.chain = 0
        self.kv: dict[bytes, bytes] = {}

    def apply(self, entry: Entry) -> None:
        self.applied_index = entry.index
        if entry.kind != EntryKind.NORMAL:
            return
        data = entry.data
        self.chain = zlib.crc32(data, self.chain)
        command = parse_command(data)
        if command is not None:
            self.kv[command[0]] = command[1]

    def read(self, key: bytes) -> bytes | None:
        return self.kv.get(key)

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(KVState(self.applied_index, self.chain, self.kv))

    def restore(self, data: bytes) -> None:
        state = msgspec.msgpack.decode(data, type=KVState)
        self.applied_index = state.applied_index
        self.chain = state.chain
        self.kv = state.kv
