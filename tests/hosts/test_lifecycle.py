"""A bed leaves nothing behind: not after ``close``, and not after its owner was killed
(``cleanup_stale_beds``); a live owner's bed is never touched by the cleanup."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orion.testing.hosts import HostBed, cleanup_stale_beds, netns
from orion.testing.hosts.bed import RUNTIME_ROOT
from orion.testing.hosts.cgroups import CGROUP_ROOT, TOP, host_dir, pids

pytestmark = [pytest.mark.hosts, pytest.mark.docker]

IMAGE = "orion-busybox:latest"

OWNER = """
import sys
from orion.testing.hosts import HostBed
bed = HostBed(1, sys.argv[1], images=(sys.argv[2],))
bed.start_hosts()
with bed.engine(1) as engine:
    engine.containers.run(sys.argv[2], ["sleep", "3600"], detach=True)
print(bed.id, flush=True)
sys.stdin.read()  # until the test kills this process: its bed is left behind
"""


def traces(bed_id: str, base_dir: Path) -> list[str]:
    """What of bed ``bed_id`` still exists, in words; empty when nothing does."""
    found = [f"namespace {name}" for name in netns.bed_namespaces(bed_id)]
    if Path(f"/sys/class/net/{bed_id}").exists():
        found.append(f"root link {bed_id}")
    if (RUNTIME_ROOT / bed_id).exists():
        found.append(f"runtime dir {RUNTIME_ROOT / bed_id}")
    found += [f"cgroup {p}" for p in CGROUP_ROOT.glob(f"*/{TOP}/{bed_id}")]
    found += [f"cgroup {p}" for p in CGROUP_ROOT.glob(f"{TOP}/{bed_id}")]
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if bed_id in line or str(base_dir) in line:
            found.append(f"mount {line.split()[4]}")
    found += [f"engine data {p}" for p in base_dir.glob("h*/docker")]
    return found


def test_close_removes_processes_containers_mounts_namespaces_and_dirs(tmp_path: Path) -> None:
    bed = HostBed(2, tmp_path, images=(IMAGE,))
    try:
        bed.start_hosts()
        with bed.engine(1) as engine:
            container = engine.containers.run(IMAGE, ["sleep", "3600"], detach=True)
            container.reload()
            container_pid = container.attrs["State"]["Pid"]
        processes = pids(bed.host(1).cgroup) + pids(bed.host(2).cgroup)
        assert container_pid in processes  # the container is the host's, by its cgroup
        assert traces(bed.id, tmp_path)  # the check below sees what it claims to
    finally:
        bed.close()
    assert traces(bed.id, tmp_path) == []
    assert not [pid for pid in processes if netns.pid_alive(pid)]
    assert not bed._lease or not bed._lease.path.exists()
    assert str(bed.subnet) not in netns.run(["ip", "-4", "route"])


def test_a_killed_runs_bed_is_removed_and_a_live_one_kept(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(tmp_path / "stale"), IMAGE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    live = HostBed(1, tmp_path / "live", images=())
    try:
        assert owner.stdout is not None
        stale_id = owner.stdout.readline().strip()
        assert stale_id.startswith("ob"), f"the owner did not make a bed (exit {owner.poll()})"
        processes = pids(host_dir(stale_id, 1))
        assert processes
        owner.kill()
        owner.wait(10)
        assert traces(stale_id, tmp_path / "stale")  # left behind by the killed owner
        removed = cleanup_stale_beds()
        assert stale_id in removed and live.id not in removed
        assert traces(stale_id, tmp_path / "stale") == []
        assert not [pid for pid in processes if netns.pid_alive(pid)]
        assert (RUNTIME_ROOT / live.id / "bed.json").exists()
    finally:
        live.close()
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)


def test_partition_cuts_hosts_apart_the_root_still_reaches_them_and_nothing_routes_outside() -> None:
    with HostBed(3, images=()) as bed:
        netns.make_lan(bed.id, bed.subnet)
        for host in bed.hosts:
            netns.make_host(bed.id, bed.subnet, host.index)

        def reaches(source: int, target: str) -> bool:
            ping = ["busybox", "ping", "-c", "1", "-W", "1", target]
            out = (
                netns.in_netns(bed.host(source).netns, ping, check=False)
                if source
                else netns.run(ping, check=False)
            )
            return "bytes from" in out

        address = {h.index: h.address for h in bed.hosts}
        assert reaches(1, address[2]) and reaches(2, address[3]) and reaches(0, address[1])
        bed.isolate(1)
        bed.isolate(1)  # twice: the same cut, no second set of rules
        assert not reaches(1, address[2]) and not reaches(3, address[1])
        assert reaches(2, address[3]) and reaches(0, address[1])
        ruleset = netns.in_netns(bed.host(1).netns, ["nft", "list", "ruleset"])
        assert ruleset.count("drop") == 4  # input, output and forward (two) of one table
        bed.heal()
        assert reaches(1, address[2]) and reaches(3, address[1])
        # No host has a route out of the bed (asked of the routing table: nothing is sent).
        for host in bed.hosts:
            lookup = ["ip", "-n", host.netns, "route", "get", "192.0.2.1"]
            result = subprocess.run(lookup, capture_output=True, text=True, check=False)
            assert result.returncode != 0 and "unreachable" in result.stderr, result.stdout
