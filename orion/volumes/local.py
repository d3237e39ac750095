"""The Docker ``local`` volume driver behind the CSI-shaped interface (orion/volumes/driver.py).

Options are those of ``docker volume create --driver local --opt K=V``: ``type`` (tmpfs, none,
nfs, ...), ``o`` (mount options, ``bind`` for a host directory), ``device``. A bind of a host
directory is allowed only under the node's ``[volumes] host_paths``; anything else is refused.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import docker
import docker.errors
import docker.types

from orion.volumes.driver import VolumeError, VolumeLostError
from orion.volumes.local_options import binds, option_problem
from orion.volumes.spec import Volume

LABEL_VOLUME = "orion.volume"
LABEL_UID = "orion.volume.uid"


def host_path(volume: Volume) -> str:
    """The host directory a bind volume mounts ("" when it is not a bind)."""
    options = volume.spec.options
    return os.path.normpath(options.get("device", "")) if binds(options) else ""


def path_allowed(path: str, allowed: Sequence[str]) -> bool:
    """True when ``path`` is one of ``allowed`` or inside one (after normalising ``..``)."""
    path = os.path.normpath(path)
    for root in allowed:
        root = os.path.normpath(root)
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return True
    return False


class LocalDriver:
    """Docker's ``local`` driver, one engine's volumes. ``host_paths``: the node's allow-list."""

    def __init__(self, client: docker.DockerClient | None = None, host_paths: Sequence[str] = ()) -> None:
        self.client = client or docker.from_env()
        self.host_paths = [os.path.normpath(path) for path in host_paths]

    # -- controller ------------------------------------------------------------------------

    def create(self, volume: Volume) -> None:
        for key, value in volume.spec.options.items():
            problem = option_problem(key, value, volume.spec.options)
            if problem:
                raise VolumeError(f"volume {volume.name}: option {key}: {problem}")

    def delete(self, volume: Volume) -> None:
        # Exited containers of finished tasks still hold the volume, and Docker refuses to
        # remove it while any does: the cluster found no live user, so those go first.
        for container in self.client.containers.list(
            all=True, filters={"volume": volume.source, "label": "orion.managed=1", "status": "exited"}
        ):
            try:
                container.remove()
            except docker.errors.APIError:
                pass
        try:
            self.client.volumes.get(volume.source).remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            raise VolumeError(f"cannot delete volume {volume.name}: {exc.explanation or exc}") from exc

    # -- node ------------------------------------------------------------------------------

    def check_host_path(self, volume: Volume) -> None:
        path = host_path(volume)
        if path and not path_allowed(path, self.host_paths):
            allowed = ", ".join(self.host_paths) or "none"
            raise VolumeError(
                f"volume {volume.name}: host path {path} is not allowed on this node "
                f"([volumes] host_paths: {allowed})"
            )

    def exists(self, volume: Volume) -> bool:
        try:
            self.client.volumes.get(volume.source)
        except docker.errors.NotFound:
            return False
        return True

    def stage(self, volume: Volume, made_before: bool) -> bool:
        self.check_host_path(volume)
        if self.exists(volume):
            return False
        if made_before:
            raise VolumeLostError(
                f"volume {volume.name} was made on this node and its data ({volume.source}) is gone"
            )
        options = dict(volume.spec.options)
        if options.get("type") == "tmpfs":
            options.setdefault("device", "tmpfs")
        try:
            self.client.volumes.create(
                name=volume.source,
                driver="local",
                driver_opts=options,
                labels={LABEL_VOLUME: volume.name, LABEL_UID: volume.uid},
            )
        except docker.errors.APIError as exc:
            raise VolumeError(f"cannot create volume {volume.name}: {exc.explanation or exc}") from exc
        return True

    def publish(self, volume: Volume, target: str, read_only: bool) -> Any:
        return docker.types.Mount(target=target, source=volume.source, type="volume", read_only=read_only)

    def unpublish(self, volume: Volume, target: str) -> None:
        """Docker releases a volume with the container that mounted it: nothing is left to undo."""
