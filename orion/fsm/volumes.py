"""The volumes table of the cluster state and the commands that change it.

Part of ``ClusterState`` (orion/fsm/state.py), kept apart for size: deterministic (every time
is the command's ``at``), and never mutating a stored ``Volume``. It also keeps, derived from
the tasks, which tasks that are not Stopped or Failed mount each volume ("users"): ``rm`` is
refused while there are any, and a single-writer volume is given to one active writer at once.
"""

from __future__ import annotations

import msgspec

from orion.fsm.commands import CommandError, CreateVolume, PurgeVolume, Refusal, RemoveVolume, ReportVolume
from orion.model import ACTIVE_STATES, Desired, Task, TaskState
from orion.volumes.spec import Volume, VolumeSpecError, VolumeState, validate_mounts, validate_volume_spec

_TERMINAL = frozenset({TaskState.STOPPED, TaskState.FAILED})


def holds_volumes(task: Task) -> bool:
    """A task counts as a user of its volumes until it is Stopped or Failed."""
    return bool(task.volumes) and task.state not in _TERMINAL


def is_writer(task: Task, name: str) -> bool:
    return any(mount.volume == name and not mount.read_only for mount in task.volumes)


class VolumeBook:
    def __init__(self) -> None:
        self._volumes: dict[str, Volume] = {}  # creation order
        self._users: dict[str, dict[str, Task]] = {}  # volume name -> non-terminal tasks mounting it

    # -- derived users -----------------------------------------------------------------------

    def track(self, old: Task | None, new: Task | None) -> None:
        """Keep the users index in step with a task change (``new`` None: deleted)."""
        if old is not None and holds_volumes(old):
            for mount in old.volumes:
                users = self._users.get(mount.volume)
                if users is not None:
                    users.pop(old.id, None)
                    if not users:
                        del self._users[mount.volume]
        if new is not None and holds_volumes(new):
            for mount in new.volumes:
                self._users.setdefault(mount.volume, {})[new.id] = new

    def users(self, name: str) -> list[Task]:
        return list(self._users.get(name, {}).values())

    def active_writers(self, name: str, besides: str = "") -> list[Task]:
        """Scheduled or Running tasks (that should run) writing to ``name``, other than ``besides``."""
        return [
            task
            for task in self._users.get(name, {}).values()
            if task.id != besides
            and task.state in ACTIVE_STATES
            and task.desired == Desired.RUN
            and is_writer(task, name)
        ]

    # -- reading -------------------------------------------------------------------------------

    def all(self) -> list[Volume]:
        return list(self._volumes.values())

    def get(self, name: str) -> Volume | None:
        return self._volumes.get(name)

    def needed_on(self, node_id: str, tasks: list[Task]) -> list[Volume]:
        """The records a node needs to run ``tasks`` (its own) without a volumes table: the
        volumes they mount and those whose data lives on the node (it audits them), in
        creation order. What a worker's feed answer carries (orion/cluster/feed_host.py)."""
        if not self._volumes:
            return []
        mounted = {mount.volume for task in tasks for mount in task.volumes}
        return [v for v in self._volumes.values() if v.node_id == node_id or v.name in mounted]

    def restore(self, volumes: list[Volume], tasks: list[Task]) -> None:
        self._volumes = {volume.name: volume for volume in volumes}
        self._users.clear()
        for task in tasks:
            self.track(None, task)

    # -- checks used by the task commands ------------------------------------------------------

    def mount_problem(self, task: Task) -> str:
        """Why a new task (or a service template) cannot mount its volumes ("" if it can)."""
        try:
            validate_mounts(task.volumes)
        except VolumeSpecError as exc:
            return str(exc)
        for mount in task.volumes:
            volume = self._volumes.get(mount.volume)
            if volume is None:
                return f"volume {mount.volume} does not exist (orion volume create {mount.volume})"
            if volume.state == VolumeState.REMOVING:
                return f"volume {mount.volume} is being removed"
        return ""

    def placement_problem(self, task: Task, node_id: str) -> str:
        """Why ``task`` may not be placed on ``node_id`` now because of its volumes ("" if it may):
        the same rules as the scheduler's filter (orion/scheduler/volumes.py), checked again on
        the applied state."""
        for mount in task.volumes:
            volume = self._volumes.get(mount.volume)
            if volume is None or volume.state in (VolumeState.LOST, VolumeState.REMOVING):
                return f"volume {mount.volume} is {'missing' if volume is None else volume.state}"
            if volume.node_id and volume.node_id != node_id:
                return f"volume {mount.volume} lives on {volume.node_id}"
            if volume.spec.node and volume.spec.node != node_id:
                return f"volume {mount.volume} lives on {volume.spec.node}"
            if (
                not mount.read_only
                and volume.spec.access == "single-writer"
                and self.active_writers(volume.name, besides=task.id)
            ):
                return f"volume {mount.volume} is single-writer and in use"
        return ""

    def bind(self, task: Task, node_id: str, at: float) -> None:
        """A task mounting unbound volumes was placed on ``node_id``: they live there from now on."""
        for mount in task.volumes:
            volume = self._volumes.get(mount.volume)
            if volume is not None and not volume.node_id:
                self._volumes[volume.name] = msgspec.structs.replace(volume, node_id=node_id, updated_at=at)

    # -- commands ------------------------------------------------------------------------------

    def create(self, cmd: CreateVolume) -> Volume | CommandError:
        volume = cmd.volume
        existing = self._volumes.get(volume.name)
        if existing is not None:
            if existing.uid == volume.uid:
                return existing  # a retried create
            return CommandError(Refusal.CONFLICT, f"volume {volume.name} already exists")
        try:
            validate_volume_spec(volume.spec)
        except VolumeSpecError as exc:
            return CommandError(Refusal.INVALID, f"spec.{exc}")
        if not volume.uid:
            return CommandError(Refusal.INVALID, "a volume needs a uid")
        volume = msgspec.structs.replace(
            volume,
            node_id=volume.spec.node,
            state=VolumeState.PENDING.value,
            reason="",
            created_at=cmd.at,
            updated_at=cmd.at,
        )
        self._volumes[volume.name] = volume
        return volume

    def remove(self, cmd: RemoveVolume) -> Volume | CommandError:
        volume = self._volumes.get(cmd.name)
        if volume is None:
            return CommandError(Refusal.NOT_FOUND, f"no volume named {cmd.name}")
        users = self.users(cmd.name)
        if users:
            names = ", ".join(sorted(f"{task.name} ({task.state})" for task in users)[:5])
            return CommandError(
                Refusal.CONFLICT,
                f"volume {cmd.name} is in use by {len(users)} task(s): {names}; stop or remove them first",
            )
        if volume.state == VolumeState.PENDING or not volume.node_id:
            del self._volumes[cmd.name]  # never made anywhere: nothing to delete
            return volume
        removing = msgspec.structs.replace(
            volume, state=VolumeState.REMOVING.value, reason="removed by user", updated_at=cmd.at
        )
        self._volumes[cmd.name] = removing
        return removing

    def report(self, cmd: ReportVolume) -> Volume | CommandError:
        volume = self._volumes.get(cmd.name)
        if volume is None or volume.uid != cmd.uid:
            return CommandError(Refusal.NOT_FOUND, f"no volume {cmd.name} with uid {cmd.uid}")
        if volume.node_id and volume.node_id != cmd.node_id:
            return CommandError(
                Refusal.INVALID, f"volume {cmd.name} lives on {volume.node_id}, not on {cmd.node_id}"
            )
        if cmd.state not in (VolumeState.READY, VolumeState.LOST):
            return CommandError(Refusal.INVALID, f"a node reports a volume ready or lost, not {cmd.state!r}")
        if volume.state == VolumeState.REMOVING:
            return volume
        if volume.state == VolumeState.LOST and cmd.state == VolumeState.READY:
            # Lost stays lost: a node that made it again would hand out an empty volume.
            return CommandError(Refusal.INVALID, f"volume {cmd.name} is lost: remove it and create it again")
        if volume.state == cmd.state and volume.node_id == cmd.node_id:
            return volume
        changed = msgspec.structs.replace(
            volume, node_id=cmd.node_id, state=cmd.state, reason=cmd.reason, updated_at=cmd.at
        )
        self._volumes[cmd.name] = changed
        return changed

    def purge(self, cmd: PurgeVolume) -> Volume | CommandError:
        volume = self._volumes.get(cmd.name)
        if volume is None or volume.uid != cmd.uid:
            return CommandError(Refusal.NOT_FOUND, f"no volume {cmd.name} with uid {cmd.uid}")
        if volume.state != VolumeState.REMOVING:
            return CommandError(Refusal.INVALID, f"volume {cmd.name} is {volume.state}, not removing")
        del self._volumes[cmd.name]
        return volume
