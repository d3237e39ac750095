"""The volume filter: where a task that mounts cluster volumes may go, and why not.

A local volume's data lives on one node, so its tasks go there and nowhere else; a task whose
volume lives on a node that is gone waits with "volume data lives on node2, which is dead"
rather than starting elsewhere on an empty volume. A single-writer volume is given to one
running writer at a time: a second one waits until the first is stopped. Pure: the scheduler
actor builds the views from the FSM, the Judge (orion/scheduler/judge.py) asks before it
picks a node and tells it each placement, so two tasks of one batch do not share a writer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from orion.model import NodeStatus, Task
from orion.scheduler.types import NodeView


class VolumeView(msgspec.Struct, frozen=True):
    """A volume as the scheduler reads it."""

    name: str
    node_id: str = ""  # where its data lives ("" = not bound yet: the first placement binds it)
    state: str = "pending"  # a VolumeState
    access: str = "single-writer"
    writers: tuple[str, ...] = ()  # ids of Scheduled/Running tasks that write to it


class VolumeClaims:
    """The volumes of one scheduling batch: bound and claimed as the batch places tasks."""

    def __init__(self, volumes: Mapping[str, VolumeView], nodes: Sequence[NodeView]) -> None:
        self._volumes = dict(volumes)
        self._nodes = {node.id: node for node in nodes}

    def pin(self, task: Task) -> tuple[str, str]:
        """(the node the task must go to ("" = any), "") or ("", why it cannot be placed now)."""
        pinned = ""
        for mount in task.volumes:
            volume = self._volumes.get(mount.volume)
            name = mount.volume
            if volume is None:
                return "", f"volume {name} does not exist"
            if volume.state == "lost":
                return "", f"volume {name} is lost: its data is gone from {volume.node_id}"
            if volume.state == "removing":
                return "", f"volume {name} is being removed"
            if not mount.read_only and volume.access == "single-writer":
                others = [task_id for task_id in volume.writers if task_id != task.id]
                if others:
                    return "", f"volume {name} is single-writer and in use by task {others[0]}"
            if not volume.node_id:
                continue
            if pinned and volume.node_id != pinned:
                return "", f"volumes live on different nodes ({pinned} and {volume.node_id})"
            pinned = volume.node_id
            why = self._unusable(volume.node_id)
            if why:
                return "", f"volume {name} lives on {volume.node_id}, which {why}"
        return pinned, ""

    def _unusable(self, node_id: str) -> str:
        node = self._nodes.get(node_id)
        if node is None:
            return "is not in the cluster"
        if node.status != NodeStatus.ALIVE:
            return f"is {node.status}"
        if node.draining:
            return "is draining"
        if not node.eligible:
            return "is not eligible"
        return ""

    def place(self, task: Task, node_id: str) -> None:
        """``task`` was placed on ``node_id`` in this batch: its unbound volumes live there now and
        its single-writer volumes are taken."""
        for mount in task.volumes:
            volume = self._volumes.get(mount.volume)
            if volume is None:
                continue
            writers = volume.writers if mount.read_only else (*volume.writers, task.id)
            self._volumes[mount.volume] = msgspec.structs.replace(
                volume, node_id=volume.node_id or node_id, writers=writers
            )
