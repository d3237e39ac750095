"""A damaged DuckDB file at start: the node refuses to start, exits nonzero, names the file.

Regression tests for two bugs the nemesis found:
- a file with a bad block checksum was not reported as damage, because the store treated
  any DuckDB error containing "lock" as a lock conflict, and "block" contains "lock";
- a file that opened but failed to load (truncated) made the node die with an
  ``ActorDeadError`` traceback from inside the Raft actor instead of a clear message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orion.raft.duckdb_store import DuckDBStore
from orion.raft.types import Entry, HardState, StoreCorruptError
from orion.testing.localcluster import LocalCluster

PAGE = 4096
DUCKDB_HEADERS = 3 * PAGE  # the main header and two database headers precede the blocks


def truncate_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def overwrite_blocks(path: Path) -> None:
    """Damage every data block past the headers, so its checksum no longer matches."""
    data = bytearray(path.read_bytes())
    for offset in range(DUCKDB_HEADERS, len(data) - 200, PAGE):
        data[offset + 100 : offset + 200] = b"\xa5" * 100
    path.write_bytes(bytes(data))


def overwrite_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[:PAGE] = b"\x5a" * PAGE
    path.write_bytes(bytes(data))


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": truncate_half,
    "bad_block_checksum": overwrite_blocks,
    "bad_header": overwrite_header,
}


def written_store(path: Path) -> None:
    store = DuckDBStore(path)
    store.load()
    store.save(HardState(term=2, vote="n1", commit=50), [Entry(i, 2, 0, b"x" * 200) for i in range(1, 51)])
    store.checkpoint()
    store.close()


def test_bad_block_checksum_is_store_damage_not_a_lock(tmp_path: Path) -> None:
    path = tmp_path / "raft.duckdb"
    written_store(path)
    overwrite_blocks(path)
    with pytest.raises(StoreCorruptError, match=r"raft\.duckdb"):
        DuckDBStore(path).load()


@pytest.mark.nemesis
@pytest.mark.cluster
@pytest.mark.docker
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_node_refuses_a_damaged_store_with_a_clear_message(tmp_path: Path, damage: str) -> None:
    with LocalCluster(1, tmp_path) as cluster:
        cluster.start(timeout=60)
        with cluster.client() as client:
            client.submit(
                "orion-busybox:latest", memory="8MiB", command=["sleep", "3600"], id="before-damage"
            )
        assert cluster.stop_node(1) == 0
        node = cluster.node(1)
        store_path = node.data_dir / "raft.duckdb"
        DAMAGE[damage](store_path)
        log_before = node.log_path.stat().st_size

        cluster.start_node(1)
        assert node.process is not None
        exit_code = node.process.wait(60)

        log = node.log_path.read_bytes()[log_before:].decode(errors="replace")
        assert exit_code != 0
        assert "refusing to start" in log and str(store_path) in log, log
        assert "Traceback" not in log, log
