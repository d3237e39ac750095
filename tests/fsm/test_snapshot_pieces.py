"""encode_snapshot builds its bytes from pieces of encoded rows: whatever the piece size, the
bytes are exactly msgspec's encoding of the whole TabularSnapshot, and they decode back."""

from __future__ import annotations

import msgspec
import pytest

from orion.fsm import commands, snapshot
from orion.fsm.snapshot import decode_snapshot, encode_snapshot
from orion.fsm.state import ClusterState
from orion.model import Task
from orion.raft.tabular import decode_tabular_snapshot
from orion.raft.types import TabularSnapshot


def state_with(tasks: int) -> ClusterState:
    state = ClusterState()
    for i in range(tasks):
        task = Task(
            id=f"task-{i:05d}",
            name=f"web-{i}",
            image="orion-busybox:latest",
            memory=64 << 20,
            cpu=0.25,
            env={"INDEX": str(i), "PAD": "p" * (i % 97)},  # rows of many sizes
            created_at=1.0 + i,
            updated_at=1.0 + i,
        )
        state.apply(i + 1, commands.encode_command(commands.SubmitTask(task=task, at=1.0 + i)))
    return state


@pytest.mark.parametrize("tasks", [0, 1, 15, 16, 300])
@pytest.mark.parametrize("piece_bytes", [1, 1_000, 1 << 20])
def test_bytes_are_msgspecs_encoding_of_the_whole_snapshot(
    tasks: int, piece_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "_PIECE_BYTES", piece_bytes)
    state = state_with(tasks)
    data = encode_snapshot(state.snapshot_source())
    assert isinstance(data, bytes)
    whole = decode_tabular_snapshot(data)
    assert msgspec.msgpack.encode(TabularSnapshot(tables=whole.tables)) == data
    assert len(whole.tables["tasks"].rows) == tasks
    restored = decode_snapshot(data)
    assert restored.applied_index == tasks
    assert [t.id for t in restored.tasks] == [f"task-{i:05d}" for i in range(tasks)]


def test_piece_size_does_not_change_the_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    source = state_with(200).snapshot_source()
    monkeypatch.setattr(snapshot, "_PIECE_BYTES", 1)
    small_pieces = encode_snapshot(source)
    monkeypatch.setattr(snapshot, "_PIECE_BYTES", 1 << 30)
    one_piece = encode_snapshot(source)
    assert small_pieces == one_piece
