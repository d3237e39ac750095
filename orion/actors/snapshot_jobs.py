"""The Raft actor's background work on snapshots: taking a local one, and checkpointing an
installed one, on one thread of their own.

Encoding a big state and writing it durably takes long enough to delay heartbeats, so the
actor hands the shell's request here and goes on; the job tells the actor ``SnapshotDone``
when it is over, and the shell then compacts the log.
"""

from __future__ import annotations

import contextlib
import time
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


class SnapshotJobs:
    def __init__(self, node_id: str, store: LogStore, metrics: NodeMetrics | None = None) -> None:
        self.node_id = node_id
        self.store = store
        self.metrics = metrics
        # One thread: snapshots and checkpoints of one store run in the order they were asked.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"{node_id}-snapshot")

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

        self._executor.submit(take)

    def checkpoint(self) -> Future[None]:
        """An installed snapshot sits in the WAL until a checkpoint folds it in: do that off the
        actor's thread, or a restart would replay all of it. The future is for tests; a failed
        checkpoint is logged, and the next one (or a restart's replay) covers it."""
        return self._executor.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            self.store.checkpoint()
        except Exception:
            logger.exception("{}: checkpoint of the Raft store failed", self.node_id)
            raise

    def close(self) -> None:
        """Wait for the job under way; drop those not started (the node is stopping)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
