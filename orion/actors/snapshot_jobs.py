"""The Raft actor's background work on snapshots: taking a local one, and checkpointing an
installed one, on one thread of their own.

Encoding a big state and writing it durably takes long enough to delay heartbeats, so the
actor hands the shell's request here and goes on; the job tells the actor ``SnapshotDone``
when it is over, and the shell then compacts the log.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pykka
from loguru import logger

from orion.fsm.snapshot import encode_snapshot
from orion.metrics import NodeMetrics
from orion.raft.pacing import Pacer
from orion.raft.snapshot_stream import snapshot_checksum
from orion.raft.types import LogStore, Snapshot, SnapshotMeta


@dataclass(frozen=True, slots=True)
class SnapshotDone:
    """Told to the actor that asked for a snapshot, from the job's thread."""

    snapshot: Snapshot | None  # None: taking it failed
    checksum: int | None = None


@dataclass(frozen=True, slots=True)
class LogCheckpointed:
    """Told to the actor that asked for a checkpoint of the log (``checkpoint_log``), from the
    job's thread, once it is over (or failed: the next one covers it)."""


class SnapshotJobs:
    def __init__(self, node_id: str, store: LogStore, metrics: NodeMetrics | None = None) -> None:
        self.node_id = node_id
        self.store = store
        self.metrics = metrics
        # One thread: snapshots and checkpoints of one store run in the order they were asked.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"{node_id}-snapshot")
        self._queued = 0  # jobs asked and not yet over (their last act is to count themselves out)
        self._queued_lock = threading.Lock()

    @property
    def busy(self) -> bool:
        """A job is queued or running: the store's other connection may be in use."""
        return self._queued > 0

    def _submit(self, job: Callable[[], None]) -> Future[None]:
        def counted() -> None:
            try:
                job()
            finally:
                with self._queued_lock:
                    self._queued -= 1

        with self._queued_lock:
            self._queued += 1
        return self._executor.submit(counted)

    def take(self, meta: SnapshotMeta, source: Any, report_to: pykka.ActorRef) -> None:
        """Encode ``source`` (a consistent copy of the FSM) as the snapshot ``meta`` names,
        write it, then tell ``report_to`` ``SnapshotDone``."""
        store = self.store
        metrics = self.metrics

        def take() -> None:
            snapshot: Snapshot | None = None
            checksum: int | None = None
            started = time.monotonic()
            try:
                snapshot = Snapshot(meta, encode_snapshot(source, pace=Pacer()))  # lock shared, see Pacer
                checksum = snapshot_checksum(snapshot.data)  # for streaming it, if ever needed
                store.write_snapshot(snapshot)  # durable, then checkpointed, all off the actor's thread
                if metrics is not None:
                    metrics.snapshot_taken(len(snapshot.data), time.monotonic() - started)
            except Exception:
                logger.exception("taking a snapshot at index {} failed; will retry", meta.index)
                snapshot = None
            with contextlib.suppress(pykka.ActorDeadError):  # stopped while it was being taken
                report_to.tell(SnapshotDone(snapshot, checksum))

        self._submit(take)

    def checkpoint(self) -> Future[None]:
        """An installed snapshot sits in the WAL until a checkpoint folds it in: do that off the
        actor's thread, or a restart would replay all of it. The future is for tests; a failed
        checkpoint is logged, and the next one (or a restart's replay) covers it."""
        return self._submit(self._checkpoint)

    def checkpoint_log(self, report_to: pykka.ActorRef) -> None:
        """Fold the log written since the last checkpoint into the store's file (DuckDB holds
        those rows in memory until then), then tell ``report_to`` ``LogCheckpointed``."""

        def checkpoint_log() -> None:
            with contextlib.suppress(Exception):  # logged by _checkpoint
                self._checkpoint()

        def report(_: Future[None]) -> None:  # once counted out: then busy says False
            with contextlib.suppress(pykka.ActorDeadError):
                report_to.tell(LogCheckpointed())

        self._submit(checkpoint_log).add_done_callback(report)

    def _checkpoint(self) -> None:
        try:
            self.store.checkpoint()
        except Exception:
            logger.exception("{}: checkpoint of the Raft store failed", self.node_id)
            raise

    def close(self) -> None:
        """Wait for the job under way; drop those not started (the node is stopping)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
