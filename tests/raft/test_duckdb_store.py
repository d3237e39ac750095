"""The DuckDB LogStore: round trips, truncation, snapshots, crashes, damage, and a model check."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import duckdb
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orion.raft.duckdb_store import DuckDBStore
from orion.raft.memory_store import MemoryStore
from orion.raft.store_integrity import entry_checksum
from orion.raft.tabular import decode_tabular_snapshot
from orion.raft.types import (
    Entry,
    EntryKind,
    HardState,
    Membership,
    Snapshot,
    SnapshotMeta,
    StoreCorruptError,
    StoredState,
    Table,
    TabularSnapshot,
)

REPO = Path(__file__).resolve().parents[2]
MEMBERS = Membership(voters={"n1": "127.0.0.1:7100", "n2": "127.0.0.1:7101"}, non_voters={"n3": "h:1"})


def open_store(path: Path) -> tuple[DuckDBStore, StoredState]:
    store = DuckDBStore(path)
    return store, store.load()


def reopen(store: DuckDBStore) -> tuple[DuckDBStore, StoredState]:
    store.close()
    return open_store(store.path)


def entries(first: int, last: int, term: int = 1) -> list[Entry]:
    return [Entry(i, term, EntryKind.NORMAL, f"cmd-{i}-{term}".encode()) for i in range(first, last + 1)]


def tabular_data() -> bytes:
    tasks = Table(
        columns=["id", "memory", "cpu", "history", "blob", "ok"],
        types=["VARCHAR", "BIGINT", "DOUBLE", "VARCHAR", "BLOB", "BOOLEAN"],
        rows=[
            ["t1", 1 << 40, 0.5, '[{"at":1.0}]', b"\x00\xff", True],
            ["t2", -3, 2.0, "[]", None, False],
            ["t3", 0, None, None, b"", None],
        ],
    )
    meta = Table(columns=["key", "value"], types=["VARCHAR", "BIGINT"], rows=[["applied", 7]])
    empty = Table(columns=["id"], types=["VARCHAR"], rows=[])
    return msgspec.msgpack.encode(TabularSnapshot(tables={"tasks": tasks, "meta": meta, "nodes": empty}))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "node1" / "raft.duckdb"


def test_saves_of_every_batch_size_round_trip(db: Path) -> None:
    """save writes a few rows by a parsed-once INSERT and more by DuckDB's appender (issue 16,
    session 6): batches on either side of the switch, and of the sizes a catch-up sends, come
    back exactly, in order, with the hard state of the last save; and a conflicting suffix
    replaced after appender writes leaves no row of the old one."""
    store, _ = open_store(db)
    sizes = [1, 2, 3, 7, 8, 300, 2, 64, 1]  # the switch is at 3 entries (4 rows with the hard state)
    first = 1
    written: list[Entry] = []
    for n, size in enumerate(sizes, 1):
        batch = [
            Entry(i, n, EntryKind.CONFIG if i % 5 == 0 else EntryKind.NORMAL, os.urandom(i % 300))
            for i in range(first, first + size)
        ]
        store.save(HardState(term=n, vote="n1", commit=first - 1), batch)
        written += batch
        first += size
    store, state = reopen(store)
    assert state.entries == written
    assert state.hard_state == HardState(term=len(sizes), vote="n1", commit=first - 1 - sizes[-1])
    kept = state.entries[:100]
    store.save(HardState(term=20, commit=50), entries(101, 120, term=20))
    store, state = reopen(store)
    assert state.entries == kept + entries(101, 120, term=20)
    store.close()


def test_new_store_is_empty_and_round_trips(db: Path) -> None:
    store, state = open_store(db)
    assert state == StoredState(hard_state=HardState(), snapshot=None, entries=[])
    batch = [*entries(1, 40), Entry(41, 2, EntryKind.CONFIG, b"members"), Entry(42, 2, EntryKind.NOOP)]
    store.save(HardState(term=2, vote="n2", commit=5), batch[:10])
    store.save(None, batch[10:])
    store, state = reopen(store)
    assert state.hard_state == HardState(term=2, vote="n2", commit=5)
    assert state.entries == batch
    assert state.snapshot is None
    store.close()


def test_hard_state_alone(db: Path) -> None:
    store, _ = open_store(db)
    store.save(HardState(term=9, vote="n3", commit=0), [])
    store, state = reopen(store)
    assert state.hard_state == HardState(term=9, vote="n3", commit=0)
    store.close()


def test_truncates_conflicting_suffix(db: Path) -> None:
    store, _ = open_store(db)
    store.save(HardState(term=1), entries(1, 10, term=1))
    store.save(HardState(term=3, commit=4), entries(6, 7, term=3))
    store, state = reopen(store)
    assert state.entries == entries(1, 5, term=1) + entries(6, 7, term=3)
    # Then appending right after the new end continues the log.
    store.save(None, entries(8, 8, term=3))
    store, state = reopen(store)
    assert [e.index for e in state.entries] == list(range(1, 9))
    store.close()


def test_rejects_gaps_and_writes_below_the_snapshot(db: Path) -> None:
    store, _ = open_store(db)
    store.save(HardState(term=1), entries(1, 5))
    with pytest.raises(ValueError, match="gap"):
        store.save(None, entries(7, 8))
    with pytest.raises(ValueError, match="contiguous"):
        store.save(None, [Entry(6, 1), Entry(8, 1)])
    store.save_snapshot(Snapshot(SnapshotMeta(3, 1, MEMBERS), b"opaque"))
    with pytest.raises(ValueError, match="snapshot index"):
        store.save(None, entries(2, 4))
    store, state = reopen(store)
    assert state.entries == entries(4, 5)
    store.close()


def test_snapshot_then_compaction(db: Path) -> None:
    store, _ = open_store(db)
    store.save(HardState(term=2, vote="n1", commit=20), entries(1, 10, 1) + entries(11, 30, 2))
    snapshot = Snapshot(SnapshotMeta(index=20, term=2, membership=MEMBERS), tabular_data())
    store.save_snapshot(snapshot)
    store.checkpoint()
    store, state = reopen(store)
    assert state.snapshot == snapshot
    assert state.entries == entries(21, 30, 2)
    assert state.hard_state.commit == 20
    # The FSM tables are real DuckDB tables an operator can query on a stopped node.
    store.close()
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("select id, memory from snap_tasks order by id").fetchall() == [
        ("t1", 1 << 40),
        ("t2", -3),
        ("t3", 0),
    ]
    con.close()
    # A later snapshot replaces the tables, including dropping ones it no longer has.
    store, _ = open_store(db)
    smaller = msgspec.msgpack.encode(
        TabularSnapshot(tables={"meta": Table(columns=["k"], types=["VARCHAR"], rows=[["x"]])})
    )
    store.save_snapshot(Snapshot(SnapshotMeta(25, 2, MEMBERS), smaller))
    store, state = reopen(store)
    assert state.snapshot is not None and state.snapshot.data == smaller
    assert state.entries == entries(26, 30, 2)
    store.close()
    con = duckdb.connect(str(db), read_only=True)
    tables = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
    con.close()
    assert {t for t in tables if t.startswith("snap_")} == {"snap_meta"}


def test_installed_snapshot_matching_the_log_keeps_the_suffix(db: Path) -> None:
    store, _ = open_store(db)
    store.save(HardState(term=2, commit=3), entries(1, 5, 1) + entries(6, 9, 2))
    store.save_snapshot(Snapshot(SnapshotMeta(7, 2, MEMBERS), b"leader-state"))
    store, state = reopen(store)
    assert state.entries == entries(8, 9, 2)
    assert state.snapshot is not None and state.snapshot.data == b"leader-state"
    store.close()


def test_installed_snapshot_not_matching_the_log_drops_it(db: Path) -> None:
    store, _ = open_store(db)
    store.save(HardState(term=2, commit=3), entries(1, 9, 1))
    # The leader's entry 7 has term 3: everything we hold conflicts or is covered.
    store.save_snapshot(Snapshot(SnapshotMeta(7, 3, MEMBERS), b"leader-state"))
    store.save(HardState(term=3, commit=7), [])
    store, state = reopen(store)
    assert state.entries == []
    assert state.snapshot is not None and state.snapshot.meta.index == 7
    # The log continues after the snapshot.
    store.save(None, entries(8, 9, 3))
    store, state = reopen(store)
    assert state.entries == entries(8, 9, 3)
    store.close()


def test_snapshot_beyond_the_log(db: Path) -> None:
    store, _ = open_store(db)
    store.save(HardState(term=1, commit=2), entries(1, 3))
    store.save_snapshot(Snapshot(SnapshotMeta(50, 4, MEMBERS), tabular_data()))
    store.save(HardState(term=4, commit=50), entries(51, 52, 4))
    store, state = reopen(store)
    assert state.entries == entries(51, 52, 4)
    assert state.snapshot is not None and state.snapshot.data == tabular_data()
    with pytest.raises(ValueError, match="older"):
        store.save_snapshot(Snapshot(SnapshotMeta(10, 1, MEMBERS), b""))
    store.close()


@pytest.mark.parametrize(
    "tables",
    [
        {"t": Table(columns=["x"], types=["DOUBLE"], rows=[[1]])},  # would come back as 1.0
        {"t": Table(columns=["x"], types=["BIGINT"], rows=[[True]])},  # would come back as 1
        {"t": Table(columns=["x"], types=["BIGINT"], rows=[[1 << 63]])},  # beyond BIGINT
        {"t": Table(columns=["x"], types=["HUGEINT"], rows=[[1]])},  # a type we do not map
        {"t": Table(columns=["x", "X"], types=["BIGINT", "BIGINT"], rows=[[1, 2]])},  # same column to DuckDB
        {
            "t": Table(columns=["x"], types=["BIGINT"], rows=[]),
            "T": Table(columns=["x"], types=["BIGINT"], rows=[]),
        },
    ],
)
def test_snapshot_data_tables_cannot_hold_is_kept_verbatim(db: Path, tables: dict[str, Table]) -> None:
    odd = msgspec.msgpack.encode(TabularSnapshot(tables=tables))
    store, _ = open_store(db)
    store.save(HardState(term=1, commit=1), entries(1, 1))
    store.save_snapshot(Snapshot(SnapshotMeta(1, 1, Membership()), odd))
    store, state = reopen(store)
    assert state.snapshot is not None and state.snapshot.data == odd
    store.close()


# -- damage --------------------------------------------------------------------------------


def filled_store(db: Path) -> None:
    store, _ = open_store(db)
    rng = random.Random(7)
    for first in range(1, 3001, 100):
        batch = [Entry(i, 1, 0, rng.randbytes(300)) for i in range(first, first + 100)]
        store.save(HardState(term=1, commit=first), batch)
    store.save_snapshot(Snapshot(SnapshotMeta(1000, 1, MEMBERS), tabular_data()))
    store.close()  # closing checkpoints everything into the main file


def test_refuses_bytes_overwritten_in_the_middle(db: Path) -> None:
    filled_store(db)
    size = db.stat().st_size
    with db.open("r+b") as f:
        f.seek(size // 2)
        f.write(b"\xde\xad\xbe\xef" * 256)
    with pytest.raises(StoreCorruptError, match=str(db)):
        store = DuckDBStore(db)
        store.load()


def test_refuses_a_truncated_file(db: Path) -> None:
    filled_store(db)
    os.truncate(db, db.stat().st_size // 2)
    with pytest.raises(StoreCorruptError, match=str(db)):
        store = DuckDBStore(db)
        store.load()


def test_refuses_an_empty_file(db: Path) -> None:
    filled_store(db)
    os.truncate(db, 0)
    with pytest.raises(StoreCorruptError, match="empty"):
        DuckDBStore(db)


def test_refuses_an_inconsistent_log(db: Path) -> None:
    filled_store(db)
    con = duckdb.connect(str(db))
    con.execute("delete from log where idx = 2000")
    con.close()
    store = DuckDBStore(db)
    with pytest.raises(StoreCorruptError, match="not contiguous"):
        store.load()
    store.close()


def test_refuses_commit_beyond_the_log(db: Path) -> None:
    filled_store(db)
    con = duckdb.connect(str(db))
    bogus = msgspec.msgpack.encode(HardState(term=1, vote="n1", commit=99999))
    crc = entry_checksum(-1000000, 1, -1, bogus)  # a well-formed record: the check is on meaning
    con.execute("insert into log values (-1000000, 1, -1, ?, ?)", [bogus, crc])
    con.close()
    store = DuckDBStore(db)
    with pytest.raises(StoreCorruptError, match="commit index 99999"):
        store.load()
    store.close()


def test_refuses_other_files_and_versions(tmp_path: Path) -> None:
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("create table something (x int)")
    con.close()
    store = DuckDBStore(other)
    with pytest.raises(StoreCorruptError, match="not an Orion Raft store"):
        store.load()
    store.close()
    db = tmp_path / "raft.duckdb"
    open_store(db)[0].close()
    con = duckdb.connect(str(db))
    con.execute("update orion_store set format_version = 99")
    con.close()
    store = DuckDBStore(db)
    with pytest.raises(StoreCorruptError, match="format version"):
        store.load()
    store.close()


# -- crashes -------------------------------------------------------------------------------

CRASH_WRITER = textwrap.dedent(
    """
    import random, sys
    from orion.raft.duckdb_store import DuckDBStore
    from orion.raft.types import Entry, HardState, Membership, Snapshot, SnapshotMeta, Table, TabularSnapshot
    import msgspec

    path, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    store = DuckDBStore(path)
    state = store.load()
    last = state.entries[-1].index if state.entries else (state.snapshot.meta.index if state.snapshot else 0)
    term = max(state.hard_state.term, 1)
    terms = {e.index: e.term for e in state.entries[-100:]}
    snap_at = 0
    if state.snapshot:
        snap_at = state.snapshot.meta.index
        terms[snap_at] = state.snapshot.meta.term
    while True:
        roll = rng.random()
        if roll < 0.08 and last > 0:
            rows = [[f"t{i}", i, float(i), "x" * 50] for i in range(rng.randrange(1, 20000))]
            types = ["VARCHAR", "BIGINT", "DOUBLE", "VARCHAR"]
            table = Table(columns=["id", "n", "f", "s"], types=types, rows=rows)
            data = msgspec.msgpack.encode(TabularSnapshot(tables={"tasks": table}))
            at = rng.choice([i for i in terms if i >= max(last - 50, snap_at)])
            print(f"begin-snap {at}", flush=True)
            store.save_snapshot(Snapshot(SnapshotMeta(at, terms[at], Membership()), data))
            snap_at = at
            print(f"snap {at} {len(rows)}", flush=True)
        elif roll < 0.12:
            store.checkpoint()
        else:
            if rng.random() < 0.1:
                term += 1
            n = rng.choice([1, 5, 64, 500])
            first = last + 1
            batch = [Entry(i, term, 0, f"{i}:{term}".encode() * 20) for i in range(first, first + n)]
            store.save(HardState(term=term, vote="n1", commit=first - 1), batch)
            last = first + n - 1
            terms.update((i, term) for i in range(max(first, last - 100), last + 1))
            print(f"save {first} {last} {term}", flush=True)
    """
)


def run_until_killed(db: Path, seed: int, acks_before_kill: int, mid_snapshot: bool) -> list[list[str]]:
    """Run the writer in a child process and kill -9 it after a number of acknowledged writes
    (with ``mid_snapshot``, at the first snapshot it starts after that); return the
    acknowledgements it printed."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CRASH_WRITER, str(db), str(seed)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    acks: list[str] = []
    try:
        assert child.stdout is not None
        while True:
            line = child.stdout.readline()
            if not line:
                break
            acks.append(line.split())
            enough = len(acks) >= acks_before_kill
            if enough and (not mid_snapshot or acks[-1][0] == "begin-snap"):
                break
        child.kill()  # SIGKILL, at whatever point the writer has reached
        child.wait(timeout=30)
        acks.extend(line.split() for line in child.stdout.read().splitlines())
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, f"writer exited by itself with {child.returncode}"
    return acks


def test_reopen_after_kill_9_at_random_points(tmp_path: Path) -> None:
    db = tmp_path / "crash.duckdb"
    rng = random.Random(20261126)
    acked_last = 0
    acked_snap = 0
    for round_ in range(8):
        wanted = rng.randint(1, 60)
        acks = run_until_killed(db, seed=round_, acks_before_kill=wanted, mid_snapshot=round_ % 2 == 1)
        assert len(acks) >= wanted
        for ack in acks:
            if ack[0] == "save":
                acked_last = int(ack[2])
            elif ack[0] == "snap":
                acked_snap = max(acked_snap, int(ack[1]))
        store, state = open_store(db)  # raises StoreCorruptError if the crash left a mess
        store.close()
        snap_index = state.snapshot.meta.index if state.snapshot else 0
        last = state.entries[-1].index if state.entries else snap_index
        # Every acknowledged write is there; a write in flight may or may not be.
        assert last >= acked_last
        assert snap_index >= acked_snap
        for entry in state.entries:
            assert entry.data == f"{entry.index}:{entry.term}".encode() * 20
        if state.snapshot is not None:
            tables = decode_tabular_snapshot(state.snapshot.data).tables
            assert all(row[1] == i for i, row in enumerate(tables["tasks"].rows))
        acked_last = last


# -- a model check -------------------------------------------------------------------------


class ModelStore:
    """The LogStore semantics of types.py as plain Python values."""

    def __init__(self) -> None:
        self.hard_state = HardState()
        self.snapshot: Snapshot | None = None
        self.log: list[Entry] = []

    def snapshot_index(self) -> int:
        return self.snapshot.meta.index if self.snapshot else 0

    def last_index(self) -> int:
        return max(self.log[-1].index if self.log else 0, self.snapshot_index())

    def save(self, hard_state: HardState | None, batch: list[Entry]) -> None:
        if batch:
            self.log = [e for e in self.log if e.index < batch[0].index] + batch
        if hard_state is not None:
            self.hard_state = hard_state

    def save_snapshot(self, snapshot: Snapshot) -> None:
        index, term = snapshot.meta.index, snapshot.meta.term
        old = self.snapshot
        matches = any(e.index == index and e.term == term for e in self.log) or (
            old is not None and old.meta.index == index and old.meta.term == term
        )
        self.log = [e for e in self.log if e.index > index] if matches else []
        self.snapshot = snapshot

    def write_snapshot(self, snapshot: Snapshot) -> None:
        if snapshot.meta.index > self.snapshot_index():
            self.snapshot = snapshot

    def compact_log(self, upto_index: int) -> None:
        self.log = [e for e in self.log if e.index > upto_index]

    def state(self) -> StoredState:
        return StoredState(self.hard_state, self.snapshot, self.log)


operation = st.one_of(
    st.tuples(st.just("append"), st.integers(0, 6), st.integers(1, 40), st.integers(0, 2)),
    st.tuples(st.just("snapshot"), st.integers(0, 8), st.integers(0, 1), st.booleans()),
    st.tuples(st.just("local"), st.integers(0, 8), st.integers(0, 6), st.booleans()),
    st.tuples(st.just("reopen")),
    st.tuples(st.just("checkpoint")),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, min_size=1, max_size=25))
def test_behaves_like_the_model(ops: list[tuple]) -> None:
    """The DuckDB store and the memory store both behave as the model, for installs from the
    leader, local snapshots with trailing entries, truncations and restarts."""
    with tempfile.TemporaryDirectory() as tmp:
        store, _ = open_store(Path(tmp) / "m.duckdb")
        memory = MemoryStore()
        model = ModelStore()
        term = 1
        try:
            for op in ops:
                if op[0] == "append":
                    _, back, count, bump = op
                    term += bump
                    first = max(model.snapshot_index() + 1, model.last_index() + 1 - back)
                    batch = entries(first, first + count - 1, term)
                    hard_state = HardState(term=term, vote="n1", commit=min(first - 1, model.last_index()))
                    for target in (store, memory, model):
                        target.save(hard_state, batch)
                elif op[0] == "snapshot":
                    _, back, term_shift, tabular = op
                    last = model.last_index()
                    index = max(model.snapshot_index(), last - back, 1)
                    existing = next((e.term for e in model.log if e.index == index), None)
                    if existing is None or term_shift:
                        # A snapshot from the leader: Raft installs only one beyond its commit.
                        index = max(index, model.hard_state.commit)
                        existing = next((e.term for e in model.log if e.index == index), term)
                    snap_term = existing + term_shift
                    term = max(term, snap_term)
                    data = tabular_data() if tabular else f"state@{index}".encode()
                    snapshot = Snapshot(SnapshotMeta(index, snap_term, MEMBERS), data)
                    for target in (store, memory, model):
                        target.save_snapshot(snapshot)
                    if model.hard_state.term < term:
                        for target in (store, memory, model):
                            target.save(HardState(term=term, commit=model.hard_state.commit), [])
                elif op[0] == "local":
                    # A snapshot taken locally at an entry we hold, then the log compacted
                    # keeping ``trailing`` entries behind it.
                    _, back, trailing, tabular = op
                    held = [e for e in model.log if e.index > model.snapshot_index()]
                    if not held:
                        continue
                    at = held[max(0, len(held) - 1 - back)]
                    data = tabular_data() if tabular else f"local@{at.index}".encode()
                    snapshot = Snapshot(SnapshotMeta(at.index, at.term, MEMBERS), data)
                    upto = max(0, at.index - trailing)
                    for target in (store, memory, model):
                        target.write_snapshot(snapshot)
                        target.compact_log(upto)
                elif op[0] == "reopen":
                    store, state = reopen(store)
                    assert state == model.state()
                else:
                    store.checkpoint()
                assert memory.load() == model.state()
            store, state = reopen(store)
            assert state == model.state()
        finally:
            store.close()
