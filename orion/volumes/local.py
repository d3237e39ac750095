"""The Docker ``local`` volume driver behind the CSI-shaped interface (orion/volumes/driver.py).

Options are those of ``docker volume create --driver local --opt K=V``: ``type`` (tmpfs, none,
nfs, ...), ``o`` (mount options, ``bind`` for a host directory), ``device``. A bind of a host
directory is allowed only under the node's ``[volumes] host_paths``; anything else is refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import docker
import docker.errors
import docker.types

from orion.volumes.driver import VolumeError, VolumeLostError
from orion.volumes.spec import Volume

OPTION_KEYS = ("type", "o", "device")
_TYPE = re.compile(r"^[a-z0-9]{1,16}$")
LABEL_VOLUME = "orion.volume"
LABEL_UID = "orion.volume.uid"


def _binds(options: dict[str, str]) -> bool:
    return "bind" in options.get("o", "").split(",")


def option_problem(key: str, value: str, options: dict[str, str]) -> str:
    """Why ``key=value`` is not a valid local-driver option ("" when it is)."""
    if key not in OPTION_KEYS:
        return f"unknown option of the local driver (known: {', '.join(OPTION_KEYS)})"
    if key == "type" and not _TYPE.match(value):
        return f"{value!r} is not a filesystem type (e.g. tmpfs, none)"
    if key == "device" and _binds(options) and not value.startswith("/"):
        return f"a bind device must be an absolute host path, got {value!r}"
    if key == "o" and len(value) > 256:
        return "at most 256 characters"
    if key == "type" and value == "none" and not _binds(options):
        return "type=none needs o=bind and a device (a host directory)"
    return ""


def host_path(volume: Volume) -> str:
    """The host directory a bind volume mounts ("" when it is not a bind)."""
    options = volume.spec.options
    return os.path.normpath(options.get("device", "")) if _binds(options) else ""


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
