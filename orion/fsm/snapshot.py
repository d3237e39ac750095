"""The cluster state's snapshot format, apart from the state itself.

Taking a snapshot has two steps so the slow one can leave the Raft actor's thread:

1. ``ClusterState.snapshot_source()`` captures, on the thread that applies entries, the stored
   records at one applied index (a list of references: the records are never mutated, so
   nothing is copied deeply);
2. ``encode_snapshot(source)`` turns that source into bytes. It is a pure function of the
   source, so it may run in any thread while the state keeps applying entries.

The bytes are an msgpack ``TabularSnapshot`` with the tables ``meta``, ``nodes``, ``services``,
``volumes``, ``tombstones``, ``service_creators`` and ``tasks`` (last); ``decode_snapshot`` reads
them back into a ``SnapshotSource``. A table added later is simply absent from an older
snapshot, which loads with that table empty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from orion.fsm.tables import (
    NODE_COLUMNS,
    SERVICE_COLUMNS,
    TASK_COLUMNS,
    VOLUME_COLUMNS,
    NodeRecord,
    make_table,
    node_row,
    nodes_from_table,
    service_row,
    services_from_table,
    task_row,
    tasks_from_table,
    volume_row,
    volumes_from_table,
)
from orion.fsm.task_table import StoredTask, unpack
from orion.fsm.tombstones import TombstoneSource, tombstone_tables, tombstones_from_tables
from orion.raft.tabular import array_header, decode_tabular_snapshot
from orion.raft.types import Table, TabularSnapshot
from orion.services.spec import Service
from orion.volumes.spec import Volume

SNAPSHOT_FORMAT = 1
_EMPTY_ARRAY = b"\x90"
# Bytes of encoded rows per piece of the result: copying one piece holds the interpreter lock
# for well under a millisecond.
_PIECE_BYTES = 1 << 20
_encoder = msgspec.msgpack.Encoder()


@dataclass(frozen=True, slots=True)
class SnapshotSource:
    """The state at ``applied_index``: tasks in submission order, nodes in insertion order.
    The lists belong to the source; the records in them are shared with the state and must
    not be mutated (nobody does: a change to the state stores a new record). ``tasks`` holds
    the state's stored rows (``orion.fsm.task_table.unpack`` gives each one's ``Task``): the
    encoder builds the records, not the thread that captured them."""

    applied_index: int
    tasks: list[StoredTask]
    nodes: list[NodeRecord]
    services: list[Service] = field(default_factory=list)  # in creation order
    volumes: list[Volume] = field(default_factory=list)  # in creation order
    tombstones: TombstoneSource = field(default_factory=TombstoneSource)  # removals remembered


def encode_snapshot(source: SnapshotSource, pace: Callable[[], None] | None = None) -> bytes:
    """The snapshot bytes of ``source``; the same source always gives the same bytes, and the
    same bytes as encoding the whole ``TabularSnapshot`` at once.

    The task rows are encoded one by one and appended, never all held as lists at once: at
    100k tasks those lists made the interpreter's cyclic collector run about 140 times during
    one encoding, the longest 60-90 ms with the lock held (stalling the Raft thread); row by
    row it does not run at all. One encode call of the whole table also held the lock for tens
    of milliseconds. The rows go into pieces of about ``_PIECE_BYTES`` joined at the end:
    ``bytes.join`` releases the interpreter lock while it copies a big result, where one
    ``bytes(buffer)`` of a 26 MB buffer held it for 10-60 ms (page faults on a busy machine).
    ``pace`` is called after every task row (an ``orion.raft.pacing.Pacer`` when encoding
    beside the Raft thread)."""
    meta = Table(
        columns=["key", "value"],
        types=["VARCHAR", "BIGINT"],
        rows=[
            ["format", SNAPSHOT_FORMAT],
            ["applied_index", source.applied_index],
            ["tasks", len(source.tasks)],
            ["nodes", len(source.nodes)],
        ],
    )
    tables = {
        "meta": meta,
        "nodes": make_table(NODE_COLUMNS, [node_row(n) for n in source.nodes]),
        "services": make_table(SERVICE_COLUMNS, [service_row(s) for s in source.services]),
        "volumes": make_table(VOLUME_COLUMNS, [volume_row(v) for v in source.volumes]),
        **tombstone_tables(source.tombstones),
        "tasks": make_table(TASK_COLUMNS, []),
    }
    # The tasks table's rows are the last value of the encoding: encode everything with no
    # rows, then put the real array header and the rows where the empty array was.
    head = _encoder.encode(TabularSnapshot(tables=tables))
    if head[-1:] != _EMPTY_ARRAY:
        raise AssertionError("the tasks rows are not the last value of the snapshot encoding")
    pieces = [head[:-1], array_header(len(source.tasks))]
    buffer = bytearray()
    encode_into = _encoder.encode_into
    for task in source.tasks:
        encode_into(task_row(unpack(task)), buffer, -1)
        if pace is not None:
            pace()
        if len(buffer) >= _PIECE_BYTES:
            pieces.append(bytes(buffer))
            buffer.clear()
    pieces.append(bytes(buffer))
    return b"".join(pieces)


def decode_snapshot(data: bytes) -> SnapshotSource:
    """Read snapshot bytes back; ``ValueError`` naming the problem on bad data."""
    try:
        tables = decode_tabular_snapshot(data).tables
        meta = {row[0]: row[1] for row in tables["meta"].rows}
        if meta.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"snapshot format {meta.get('format')}, expected {SNAPSHOT_FORMAT}")
        tasks = tasks_from_table(tables["tasks"])
        nodes = nodes_from_table(tables["nodes"])
        # Snapshots taken before services existed have no services table.
        services = services_from_table(tables["services"]) if "services" in tables else []
        volumes = volumes_from_table(tables["volumes"]) if "volumes" in tables else []  # older: none
        tombstones = tombstones_from_tables(tables)  # older snapshots: none
        applied_index = meta["applied_index"]
    except (msgspec.DecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"cannot restore the cluster state from this snapshot: {exc}") from exc
    problem = ""
    if not isinstance(applied_index, int) or applied_index < 0:
        problem = f"applied index {applied_index!r}"
    elif len({task.id for task in tasks}) != len(tasks):
        problem = "a task id appears twice"  # it would be counted twice in the allocations
    elif len({node.id for node in nodes}) != len(nodes):
        problem = "a node id appears twice"
    elif len({service.name for service in services}) != len(services):
        problem = "a service name appears twice"
    if problem:
        raise ValueError(f"cannot restore the cluster state from this snapshot: {problem}")
    return SnapshotSource(
        applied_index=applied_index,
        tasks=tasks,
        nodes=nodes,
        services=services,
        volumes=volumes,
        tombstones=tombstones,
    )
