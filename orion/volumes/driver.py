"""The volume driver interface, shaped after CSI so a real CSI plugin can stand behind it later.

CSI splits a driver in two: the controller service (CreateVolume, DeleteVolume) and the node
service (NodeStageVolume: make the volume usable on this node; NodePublishVolume: expose it to
one container at a path; NodeUnpublishVolume: take it away again). Orion calls them at the same
moments: ``create`` when a volume is created, ``stage`` + ``publish`` on the node when a task
that mounts it starts, ``unpublish`` when that task's container is gone, ``delete`` after
``orion volume rm`` (on the volume's node, for drivers whose data is node-local).
"""

from __future__ import annotations

from typing import Any, Protocol

from orion.volumes.spec import Volume


class VolumeError(Exception):
    """The driver cannot do what was asked; the message says why, for the user."""


class VolumeLostError(VolumeError):
    """The volume was made on this node before and its data is no longer there."""


class ControllerDriver(Protocol):
    def create(self, volume: Volume) -> None:
        """Check (and, for central storage, provision) a new volume; VolumeError if it cannot be."""

    def delete(self, volume: Volume) -> None:
        """Remove the volume's data for good (nothing to remove is not an error)."""


class NodeDriver(Protocol):
    def stage(self, volume: Volume, made_before: bool) -> bool:
        """Make ``volume`` usable on this node; True when this call created it. ``made_before``:
        the cluster records it as made here, so if it is missing it is lost (VolumeLostError),
        never made again empty."""

    def publish(self, volume: Volume, target: str, read_only: bool) -> Any:
        """What the container runtime needs to mount it at ``target`` (a Docker mount)."""

    def unpublish(self, volume: Volume, target: str) -> None:
        """The container that had it at ``target`` is gone."""

    def exists(self, volume: Volume) -> bool:
        """Whether this node holds the volume's data."""
