"""The Docker ``local`` driver through the CSI-shaped interface, on the real engine: options,
the host path allow-list, staging made once, lost data reported (not made again empty)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from orion.fsm.commands import Command, ReportVolume
from orion.model import Task, VolumeMount
from orion.volumes.local import LocalDriver, path_allowed
from orion.volumes.spec import Volume, VolumeSpec, VolumeSpecError, parse_mount, validate_volume_spec
from orion.worker.node_volumes import NodeVolumes
from orion.worker.types import WorkerError


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    yield prefix
    client = docker.from_env()
    for volume in client.volumes.list(filters={"label": "orion.volume"}):
        if volume.name.startswith(f"orion-{prefix}"):
            volume.remove(force=True)


def _volume(name: str, state: str = "pending", **spec: object) -> Volume:
    return Volume(
        name=name, uid=uuid.uuid4().hex, spec=VolumeSpec(name=name, **spec), state=state, node_id="n1"
    )  # type: ignore[arg-type]


def test_specs_and_mounts_are_checked_with_the_field_named() -> None:
    with pytest.raises(VolumeSpecError, match="driver: unknown volume driver 'ceph'"):
        validate_volume_spec(VolumeSpec(name="x", driver="ceph"))
    with pytest.raises(VolumeSpecError, match=r"options\.size: unknown option"):
        validate_volume_spec(VolumeSpec(name="x", options={"size": "1g"}))
    with pytest.raises(VolumeSpecError, match="type=none needs o=bind"):
        validate_volume_spec(VolumeSpec(name="x", options={"type": "none"}))
    assert parse_mount("data:/var/lib/app:ro") == VolumeMount(
        volume="data", target="/var/lib/app", read_only=True
    )
    with pytest.raises(VolumeSpecError, match="must be an absolute path"):
        parse_mount("data:relative")
    assert path_allowed("/srv/data/app", ["/srv/data"]) and not path_allowed(
        "/srv/data/../etc", ["/srv/data"]
    )


def test_stage_makes_once_and_reports_ready_then_lost_when_gone(prefix: str) -> None:
    reports: list[Command] = []
    driver = LocalDriver()
    records: dict[str, Volume] = {}
    node = NodeVolumes(
        "n1",
        driver,
        lambda names: {n: records[n] for n in names if n in records},
        reports.append,
        lambda: 1.0,
    )
    volume = _volume(f"{prefix}-a", options={"type": "tmpfs"})
    records[volume.name] = volume
    task = Task(id="t", name="t", image="busybox", volumes=[VolumeMount(volume=volume.name, target="/d")])
    mounts = node.mounts(task)
    assert mounts[0]["Source"] == volume.source and driver.exists(volume)
    assert isinstance(reports[0], ReportVolume) and reports[0].state == "ready"
    records[volume.name] = ready = Volume(
        **{**{f: getattr(volume, f) for f in volume.__struct_fields__}, "state": "ready"}
    )
    driver.delete(ready)
    with pytest.raises(WorkerError, match="is lost"):
        node.mounts(task)
    assert isinstance(reports[-1], ReportVolume) and reports[-1].state == "lost"
    assert not driver.exists(ready)  # never made again, empty
    node.audit([ready])  # the audit finds the same
    assert reports[-1].state == "lost"  # type: ignore[union-attr]


def test_host_paths_only_from_the_allow_list(prefix: str, tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    driver = LocalDriver(host_paths=[str(allowed)])
    bind = {"type": "none", "o": "bind"}
    outside = _volume(f"{prefix}-b", options={**bind, "device": "/etc"})
    records = {outside.name: outside}
    node = NodeVolumes(
        "n1", driver, lambda names: {n: records[n] for n in names}, lambda c: None, lambda: 1.0
    )
    task = Task(id="t", name="t", image="busybox", volumes=[VolumeMount(volume=outside.name, target="/d")])
    with pytest.raises(
        WorkerError, match=r"host path /etc is not allowed on this node \(\[volumes\] host_paths: "
    ):
        node.mounts(task)
    inside = _volume(f"{prefix}-c", options={**bind, "device": str(allowed)})
    records[inside.name] = inside
    task = Task(id="t", name="t", image="busybox", volumes=[VolumeMount(volume=inside.name, target="/d")])
    assert node.mounts(task)[0]["Source"] == inside.source
