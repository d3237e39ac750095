"""Snapshots with services: old snapshots (no services table, tasks without the service
columns) still restore, and the services table reads back in DuckDB as an operator would."""

from __future__ import annotations

from pathlib import Path

import duckdb
import msgspec

from orion.fsm.commands import CreateService, encode_command
from orion.fsm.snapshot import SNAPSHOT_FORMAT, decode_snapshot
from orion.fsm.state import ClusterState
from orion.fsm.tables import TASK_COLUMNS, make_table, task_row
from orion.model import Task
from orion.raft.duckdb_store import DuckDBStore
from orion.raft.types import Entry, HardState, Membership, Snapshot, SnapshotMeta, Table, TabularSnapshot
from orion.services.spec import ServicePort, ServiceSpec, TaskTemplate

OLD_TASK_COLUMNS = TASK_COLUMNS[: [c for c, _, _ in TASK_COLUMNS].index("service")]


def old_snapshot(task: Task) -> bytes:
    """A snapshot as nodes wrote it before services: no services table, fewer task columns."""
    row = task_row(task)[: len(OLD_TASK_COLUMNS)]
    meta = Table(
        columns=["key", "value"],
        types=["VARCHAR", "BIGINT"],
        rows=[["format", SNAPSHOT_FORMAT], ["applied_index", 7], ["tasks", 1], ["nodes", 0]],
    )
    tables = {
        "meta": meta,
        "nodes": make_table([("id", "VARCHAR", False)], []),
        "tasks": make_table(OLD_TASK_COLUMNS, [row]),
    }
    return msgspec.msgpack.encode(TabularSnapshot(tables=tables))


def test_a_snapshot_from_before_services_restores() -> None:
    task = Task(id="t1", name="job", image="busybox", port_bindings={"80/tcp": "8080"})
    state = ClusterState()
    state.restore(old_snapshot(task))
    restored = state.task("t1")
    assert restored is not None
    assert (restored.service, restored.slot, restored.version, restored.health_check) == ("", 0, 0, None)
    assert (restored.health, restored.drain_at, restored.stop_grace) == ("", 0.0, None)
    assert state.services() == []
    assert decode_snapshot(state.snapshot()).services == []


def test_the_services_table_goes_through_the_duckdb_store(tmp_path: Path) -> None:
    state = ClusterState()
    spec = ServiceSpec(
        name="web",
        template=TaskTemplate(image="web:1"),
        replicas=3,
        ports=[ServicePort(published=8080, target=80)],
    )
    command = encode_command(CreateService(at=1.0, spec=spec))
    state.apply(1, command)
    data = state.snapshot()
    path = tmp_path / "raft.duckdb"
    store = DuckDBStore(path)
    store.load()
    store.save(HardState(term=1, commit=1), [Entry(1, 1, 0, command)])
    store.save_snapshot(Snapshot(SnapshotMeta(1, 1, Membership(voters={"n1": "127.0.0.1:7100"})), data))
    store.close()
    store = DuckDBStore(path)
    loaded = store.load().snapshot
    store.close()
    assert loaded is not None and loaded.data == data
    restored = ClusterState()
    restored.restore(loaded.data)
    assert restored.services() == state.services()
    con = duckdb.connect(str(path), read_only=True)
    rows = con.execute("select name, version, json_extract(spec, '$.replicas') from snap_services").fetchall()
    con.close()
    assert rows == [("web", 1, "3")]
