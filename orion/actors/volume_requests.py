"""Volume requests as the API actor serves them: the FSM command of a write, the query of a read."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from orion.actors.state_view import StateView
from orion.api import protocol as api
from orion.fsm import commands as fsm_commands
from orion.fsm.state import ClusterState
from orion.volumes.spec import Volume


def volume_command(request: api.Request, now: float) -> fsm_commands.Command | None:
    """The FSM command a volume write asks for (None: not a volume write)."""
    match request:
        case api.CreateVolume(spec=spec):
            # The uid names the volume's data on its node: a volume created again after a
            # removal under the same name starts empty, whatever the old node still holds.
            volume = Volume(name=spec.name, uid=uuid.uuid4().hex, spec=spec)
            return fsm_commands.CreateVolume(volume=volume, at=now)
        case api.RemoveVolume(name=name):
            return fsm_commands.RemoveVolume(name=name, at=now)
    return None


def volume_info(fsm: ClusterState, volume: Volume) -> api.VolumeInfo:
    return api.VolumeInfo(volume=volume, users=sorted(task.name for task in fsm.volume_users(volume.name)))


def volume_query(request: api.ListVolumes | api.GetVolume) -> Callable[[StateView], Any]:
    def query(view: StateView) -> Any:
        fsm = view.fsm
        if isinstance(request, api.GetVolume):
            volume = fsm.volume(request.name)
            if volume is None:
                raise LookupError(f"no volume named {request.name}")
            return msgspec.to_builtins(volume_info(fsm, volume))
        return msgspec.to_builtins([volume_info(fsm, volume) for volume in fsm.volumes()])

    return query
