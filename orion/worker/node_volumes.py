"""What a node does with cluster volumes: mount them for a task it starts, and keep the
cluster's record honest about the volumes that live here.

``NodeVolumes.mounts(task)`` runs on the worker's thread when it starts a container: it reads
the volumes' records (fresh, through Raft), stages each on this node (made the first time, and
reported ready), and returns the runtime's mounts. A volume the cluster records as made here
that is gone is reported lost and the start fails: it is never made again, empty.
``audit(volumes)`` (the volume actor, periodically) does the same check for every volume that
lives here, whether or not a task starts, and deletes the data of removed ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loguru import logger

from orion.fsm.commands import Command, PurgeVolume, ReportVolume
from orion.model import Task
from orion.volumes.driver import VolumeError, VolumeLostError
from orion.volumes.local import LocalDriver
from orion.volumes.spec import Volume, VolumeState
from orion.worker.types import WorkerError

Lookup = Callable[[list[str]], dict[str, Volume]]  # volume names -> their records (fresh)
Report = Callable[[Command], None]  # propose a command through Raft (fire and forget)


class NodeVolumes:
    def __init__(self, node_id: str, driver: LocalDriver, lookup: Lookup, report: Report, clock: Any) -> None:
        self.node_id = node_id
        self.driver = driver
        self.lookup = lookup
        self.report = report
        self.clock = clock  # wall clock for command timestamps (time.time)

    def mounts(self, task: Task) -> list[Any]:
        """The container runtime's mounts for ``task``; WorkerError saying why not."""
        if not task.volumes:
            return []
        try:
            records = self.lookup([mount.volume for mount in task.volumes])
        except Exception as exc:  # no answer from Raft: retried like any start failure
            raise WorkerError(f"cannot read the volumes of task {task.id}: {exc}") from exc
        mounts = []
        for mount in task.volumes:
            volume = records.get(mount.volume)
            if volume is None:
                raise WorkerError(f"volume {mount.volume} does not exist")
            if volume.state in (VolumeState.LOST, VolumeState.REMOVING):
                raise WorkerError(f"volume {volume.name} is {volume.state}: {volume.reason}")
            if volume.node_id and volume.node_id != self.node_id:
                raise WorkerError(f"volume {volume.name} lives on {volume.node_id}, not on {self.node_id}")
            self.stage(volume)
            mounts.append(self.driver.publish(volume, mount.target, mount.read_only))
        return mounts

    def stage(self, volume: Volume) -> None:
        made_before = volume.state == VolumeState.READY
        try:
            self.driver.stage(volume, made_before)
        except VolumeLostError as exc:
            self._lost(volume, str(exc))
            raise WorkerError(f"volume {volume.name} is lost: {exc}") from exc
        except VolumeError as exc:
            raise WorkerError(str(exc)) from exc
        if not made_before:
            logger.info("volumes: made volume {} ({}) on {}", volume.name, volume.source, self.node_id)
            self.report(self._state(volume, VolumeState.READY, f"made on {self.node_id}"))

    def audit(self, volumes: list[Volume]) -> None:
        """Report the volumes recorded as made here that are gone; delete removed ones' data."""
        for volume in volumes:
            if volume.node_id != self.node_id:
                continue
            if volume.state == VolumeState.REMOVING:
                try:
                    self.driver.delete(volume)
                except VolumeError as exc:
                    logger.warning("volumes: {}", exc)
                    continue
                logger.info("volumes: deleted the data of removed volume {}", volume.name)
                self.report(PurgeVolume(name=volume.name, uid=volume.uid, at=self.clock()))
            elif volume.state == VolumeState.READY and not self.driver.exists(volume):
                self._lost(volume, f"its data ({volume.source}) is gone from {self.node_id}")

    def _lost(self, volume: Volume, reason: str) -> None:
        logger.error("volumes: volume {} is lost: {}", volume.name, reason)
        self.report(self._state(volume, VolumeState.LOST, reason))

    def _state(self, volume: Volume, state: VolumeState, reason: str) -> ReportVolume:
        return ReportVolume(
            name=volume.name,
            uid=volume.uid,
            node_id=self.node_id,
            state=state.value,
            reason=reason,
            at=self.clock(),
        )
