"""Issue 11: a log entry whose stored bytes changed refuses to start, with a clear message.

DuckDB's block checksums catch bytes damaged in its files (tests/nemesis/test_damaged_store.py);
this is damage DuckDB cannot see: an entry's data changed through DuckDB itself, as bit rot
before a write or a bug would leave it. Only the store's own per-entry checksum tells. The byte
changed is a letter of the task's image name, so the entry still decodes: without a checksum
the node would start and serve a task nobody submitted."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import pytest

from orion.localcluster import UNPLACEABLE, LocalCluster

pytestmark = pytest.mark.cluster

IMAGE = "orion-busybox:latest"


def change_one_letter_of_an_entry(store_path: Path, needle: bytes) -> int:
    """Change one byte of the last log entry holding ``needle``; its index."""
    con = duckdb.connect(str(store_path))
    try:
        rows = con.execute("SELECT idx, data FROM log WHERE idx > 0 ORDER BY idx").fetchall()
        index, data = next((i, bytes(d)) for i, d in reversed(rows) if needle in bytes(d))
        at = bytes(data).index(needle) + 1
        damaged = data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]  # 'r' -> 's'
        con.execute("UPDATE log SET data = ? WHERE idx = ?", [damaged, index])
        con.execute("CHECKPOINT")
        return index
    finally:
        con.close()


def test_node_refuses_a_log_entry_with_a_flipped_byte(tmp_path: Path) -> None:
    with LocalCluster(1, tmp_path) as cluster:
        cluster.start(timeout=60)
        with cluster.client() as client:
            for number in range(3):
                client.submit(IMAGE, id=f"before-damage-{number}", node_selectors=UNPLACEABLE)
        assert cluster.stop_node(1) == 0
        node = cluster.node(1)
        store_path = node.data_dir / "raft.duckdb"
        index = change_one_letter_of_an_entry(store_path, b"orion-busybox")
        log_before = node.log_path.stat().st_size

        cluster.start_node(1)
        assert node.process is not None
        try:
            exit_code = node.process.wait(60)
        except subprocess.TimeoutExpired:
            exit_code = None
        log = node.log_path.read_bytes()[log_before:].decode(errors="replace")
        assert exit_code not in (None, 0), (
            f"the node started on a store whose entry {index} was changed (exit code {exit_code}): "
            f"no per-entry checksum caught it\n{log[-3000:]}"
        )
        assert "refusing to start" in log and str(store_path) in log, log
        assert "checksum" in log.lower(), f"the message should say a checksum failed:\n{log}"
        assert "Traceback" not in log, log
