"""Volumes as the cluster records them, and the checks every front end and the FSM share.

A volume is created once (``orion volume create data``) and outlives the tasks that mount it.
A ``local`` volume lives on one node: ``node`` when given, else the node its first task is
placed on (the FSM binds it then). Its data exists only there, so its tasks go only there.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

import msgspec

from orion.model import VolumeMount
from orion.volumes.local_options import option_problem

DRIVERS = ("local",)
ACCESS_MODES = ("single-writer", "multi")
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
MAX_OPTIONS = 32


class VolumeState(StrEnum):
    PENDING = "pending"  # recorded; not yet made on its node (made when a task first mounts it)
    READY = "ready"  # made on ``node_id``: its data lives there
    LOST = "lost"  # its node came back without it: not recreated empty, tasks stay Pending
    REMOVING = "removing"  # ``rm`` taken; its node deletes the data, then the record goes


class VolumeSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    driver: str = "local"
    options: dict[str, str] = {}  # the driver's (local: type, o, device as ``docker volume create``)
    node: str = ""  # where it lives; "" = the node its first task is placed on
    access: Literal["single-writer", "multi"] = "single-writer"


class Volume(msgspec.Struct, frozen=True, kw_only=True):
    """A volume as the FSM holds it. ``uid`` (chosen by the API when created) names its data on
    the node, so a volume removed and created again under the same name starts empty."""

    name: str
    uid: str
    spec: VolumeSpec
    node_id: str = ""  # the node its data lives on ("" until bound)
    state: str = VolumeState.PENDING
    reason: str = ""  # why it is lost (or what the node said)
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def source(self) -> str:
        """The name of its data on the node (a Docker volume for ``local``)."""
        return f"orion-{self.name}-{self.uid[:12]}"


class VolumeSpecError(ValueError):
    """A bad volume spec or mount; ``str``: "field: reason"."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def name_problem(name: str) -> str:
    if not _NAME.match(name):
        return (
            f"{name!r} is not a valid volume name (1-63 letters, digits, '_', '.', '-', starting "
            "with a letter or digit)"
        )
    return ""


def validate_volume_spec(spec: VolumeSpec) -> VolumeSpec:
    """``spec`` if it is well formed, else ``VolumeSpecError`` naming the field."""
    problem = name_problem(spec.name)
    if problem:
        raise VolumeSpecError("name", problem)
    if spec.driver not in DRIVERS:
        raise VolumeSpecError(
            "driver", f"unknown volume driver {spec.driver!r} (known: {', '.join(DRIVERS)})"
        )
    if len(spec.options) > MAX_OPTIONS:
        raise VolumeSpecError("options", f"at most {MAX_OPTIONS} options")

    for key, value in spec.options.items():
        problem = option_problem(key, value, spec.options)
        if problem:
            raise VolumeSpecError(f"options.{key}", problem)
    return spec


def parse_mount(text: str, field: str = "volumes") -> VolumeMount:
    """``NAME:/path`` or ``NAME:/path:ro`` (``:rw`` too) as a mount."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise VolumeSpecError(field, f"{text!r} is not NAME:/path[:ro]")
    read_only = False
    if len(parts) == 3:
        if parts[2] not in ("ro", "rw"):
            raise VolumeSpecError(field, f"{text!r}: the mode must be ro or rw, got {parts[2]!r}")
        read_only = parts[2] == "ro"
    return validate_mounts([VolumeMount(volume=parts[0], target=parts[1], read_only=read_only)], field)[0]


def validate_mounts(mounts: list[VolumeMount], field: str = "volumes") -> list[VolumeMount]:
    targets: set[str] = set()
    names: set[str] = set()
    for i, mount in enumerate(mounts):
        problem = name_problem(mount.volume)
        if problem:
            raise VolumeSpecError(f"{field}[{i}].volume", problem)
        if not mount.target.startswith("/") or mount.target == "/":
            raise VolumeSpecError(f"{field}[{i}].target", f"{mount.target!r} must be an absolute path, not /")
        if mount.target in targets:
            raise VolumeSpecError(f"{field}[{i}].target", f"{mount.target} is mounted twice")
        if mount.volume in names:
            raise VolumeSpecError(f"{field}[{i}].volume", f"volume {mount.volume} is mounted twice")
        targets.add(mount.target)
        names.add(mount.volume)
    return mounts


def mounts_from_mapping(volumes: dict[str, str], field: str = "volumes") -> list[VolumeMount]:
    """The client's ``volumes={"data": "/var/lib/app"}`` (``"/var/lib/app:ro"`` read only)."""
    return [parse_mount(f"{name}:{target}", field) for name, target in volumes.items()]


def writes(mounts: list[VolumeMount]) -> bool:
    """True when any mount is read-write."""
    return any(not mount.read_only for mount in mounts)
