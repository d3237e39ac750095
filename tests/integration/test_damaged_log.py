"""A log entry or a snapshot whose stored bytes changed refuses to start, with a
message that names the file, what failed its checksum and what to do.

DuckDB's block checksums catch bytes damaged in its files (tests/raft/test_duckdb_store_damage.py);
this is damage DuckDB cannot see: a value changed through DuckDB itself, as bit rot before a
write or a bug would leave it. Only the store's own checksums tell. The byte changed is a
letter of a task's image name, so the value still decodes: without a checksum the node would
start and serve a task nobody submitted."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import pytest

from orion.testing.localcluster import UNPLACEABLE, LocalCluster

pytestmark = pytest.mark.cluster

IMAGE = "orion-busybox:latest"
NEEDLE = "orion-busybox"
DAMAGED = "osion-busybox"  # one bit of one byte: 'r' (0x72) -> 's' (0x73)


def damage_log_entry(con: duckdb.DuckDBPyConnection) -> str:
    """Change one byte of the last log entry that holds the image name; what was changed."""
    rows = con.execute("SELECT idx, data FROM log WHERE idx > 0 ORDER BY idx").fetchall()
    index, data = next((i, bytes(d)) for i, d in reversed(rows) if NEEDLE.encode() in bytes(d))
    con.execute(
        "UPDATE log SET data = ? WHERE idx = ?", [data.replace(NEEDLE.encode(), DAMAGED.encode()), index]
    )
    return f"log entry {index}"


def damage_snapshot(con: duckdb.DuckDBPyConnection) -> str:
    """Change one byte of the first snapshot table value that holds the image name."""
    tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
    for table in sorted(t for t in tables if t.startswith("snap_")):
        columns = [r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()]
        for rowid, *values in con.execute(f'SELECT rowid, * FROM "{table}"').fetchall():
            for column, value in zip(columns, values, strict=True):
                if isinstance(value, str) and NEEDLE in value:
                    changed: str | bytes = value.replace(NEEDLE, DAMAGED)
                elif isinstance(value, bytes) and NEEDLE.encode() in value:
                    changed = value.replace(NEEDLE.encode(), DAMAGED.encode())
                else:
                    continue
                con.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE rowid = ?', [changed, rowid])
                return "snapshot"
    raise AssertionError(f"no snapshot value holds {NEEDLE!r}: the node took no snapshot (tables {tables})")


DAMAGE = {"log_entry": damage_log_entry, "snapshot": damage_snapshot}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_node_refuses_a_store_value_with_a_changed_byte(tmp_path: Path, damage: str) -> None:
    # The smallest threshold, so the snapshot case has a snapshot after 20 entries.
    with LocalCluster(1, tmp_path, settings={"raft": {"snapshot_threshold": 16}}) as cluster:
        cluster.start(timeout=60)
        with cluster.client() as client:
            for number in range(20):
                client.submit(IMAGE, id=f"before-damage-{number}", node_selectors=UNPLACEABLE)
        assert cluster.stop_node(1) == 0
        node = cluster.node(1)
        store_path = node.data_dir / "raft.duckdb"
        con = duckdb.connect(str(store_path))
        try:
            damaged = DAMAGE[damage](con)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        log_before = node.log_path.stat().st_size

        cluster.start_node(1)
        assert node.process is not None
        try:
            exit_code: int | None = node.process.wait(60)
        except subprocess.TimeoutExpired:
            exit_code = None
        log = node.log_path.read_bytes()[log_before:].decode(errors="replace")
        assert exit_code not in (None, 0), (
            f"the node started on a store whose {damaged} was changed (exit code {exit_code}): "
            f"no checksum caught it\n{log[-3000:]}"
        )
        assert "refusing to start" in log and str(store_path) in log, log
        assert "checksum" in log and damaged in log, (
            f"the message should say {damaged} fails its checksum:\n{log}"
        )
        assert "wipe the data dir" in log, f"the message should say what to do:\n{log}"
        assert "Traceback" not in log, log
