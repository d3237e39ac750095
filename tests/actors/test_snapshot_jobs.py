"""orion/actors/snapshot_jobs.py: a snapshot is taken on the jobs' thread from a copy of the
FSM, written to the store, and reported to the actor that asked; a failed one is reported too,
so the shell asks again later."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from orion.actors.snapshot_jobs import LogCheckpointed, SnapshotDone, SnapshotJobs
from orion.fsm.commands import SubmitTask, encode_command
from orion.fsm.state import ClusterState
from orion.model import Task
from orion.raft.duckdb_store import DuckDBStore
from orion.raft.memory_store import MemoryStore
from orion.raft.snapshot_stream import snapshot_checksum
from orion.raft.types import Entry, HardState, Membership, SnapshotMeta

MEMBERSHIP = Membership(voters={"a": "127.0.0.1:7001"})


class Inbox(pykka.ThreadingActor):
    """Stands where the Raft actor does: it is only told SnapshotDone."""

    def __init__(self, told: queue.Queue[Any]) -> None:
        super().__init__()
        self.told = told

    def on_receive(self, message: Any) -> Any:
        self.told.put(message)


@pytest.fixture
def inbox() -> Iterator[tuple[pykka.ActorRef, queue.Queue[Any]]]:
    told: queue.Queue[Any] = queue.Queue()
    ref = Inbox.start(told)
    yield ref, told
    ref.stop()


def state_with_one_task() -> tuple[ClusterState, bytes]:
    fsm = ClusterState()
    data = encode_command(SubmitTask(task=Task(id="t1", name="t1", image="busybox"), at=time.time()))
    fsm.apply(1, data)
    return fsm, data


def test_a_snapshot_is_written_and_reported_with_its_checksum(inbox) -> None:
    ref, told = inbox
    fsm, data = state_with_one_task()
    store = MemoryStore()
    store.save(HardState(term=1, commit=1), [Entry(index=1, term=1, data=data)])
    jobs = SnapshotJobs("a", store)
    try:
        jobs.take(SnapshotMeta(index=1, term=1, membership=MEMBERSHIP), fsm.snapshot_source(), ref)
        done = told.get(timeout=10.0)
    finally:
        jobs.close()
    assert isinstance(done, SnapshotDone) and done.snapshot is not None
    assert done.snapshot.meta.index == 1
    assert done.checksum == snapshot_checksum(done.snapshot.data)
    assert store.load().snapshot == done.snapshot  # durable before it is reported
    restored = ClusterState()
    restored.restore(done.snapshot.data)
    assert [t.id for t in restored.tasks()] == ["t1"]


def test_a_snapshot_the_store_refuses_is_reported_as_failed(inbox) -> None:
    ref, told = inbox
    fsm, _ = state_with_one_task()
    store = MemoryStore()  # holds no entry 1: writing a snapshot at 1 is refused
    jobs = SnapshotJobs("a", store)
    try:
        jobs.take(SnapshotMeta(index=1, term=1, membership=MEMBERSHIP), fsm.snapshot_source(), ref)
        done = told.get(timeout=10.0)
    finally:
        jobs.close()
    assert isinstance(done, SnapshotDone) and done.snapshot is None  # the shell will ask again
    assert store.load().snapshot is None


def test_a_job_for_an_actor_that_has_stopped_is_dropped_quietly(inbox) -> None:
    ref, told = inbox
    fsm, data = state_with_one_task()
    store = MemoryStore()
    store.save(HardState(term=1, commit=1), [Entry(index=1, term=1, data=data)])
    ref.stop()  # the node is stopping while the snapshot is taken
    jobs = SnapshotJobs("a", store)
    jobs.take(SnapshotMeta(index=1, term=1, membership=MEMBERSHIP), fsm.snapshot_source(), ref)
    jobs.close()  # waits for the job: it must not have raised on the dead actor
    assert store.load().snapshot is not None and told.empty()


def test_a_checkpoint_after_an_installed_snapshot_works_on_every_store() -> None:
    # Hollow nodes and in-process tests run the Raft actor on a MemoryStore; the checkpoint
    # asked after a snapshot install must not fail there (it once raised AttributeError).
    store = MemoryStore()
    jobs = SnapshotJobs("a", store)
    try:
        jobs.checkpoint().result(timeout=10.0)
    finally:
        jobs.close()


def test_a_log_checkpoint_is_reported_once_no_job_is_left(inbox, tmp_path) -> None:
    # The actor drops the store's cached blocks when told, on its own thread: the jobs must say
    # they are idle by then, or it would touch a connection a job still uses.
    ref, told = inbox
    store = DuckDBStore(tmp_path / "raft.duckdb")
    store.load()
    store.save(HardState(term=1, commit=0), [Entry(index=i, term=1, data=bytes(600)) for i in range(1, 2001)])
    jobs = SnapshotJobs("a", store)
    try:
        jobs.checkpoint_log(ref)
        assert isinstance(told.get(timeout=10.0), LogCheckpointed)
        assert not jobs.busy
        store.release_buffers()
        assert [e.index for e in store.read_entries(1999, 2000)] == [1999, 2000]
    finally:
        jobs.close()
        store.close()
