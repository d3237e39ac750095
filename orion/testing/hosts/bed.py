"""A test bed of real hosts in miniature: N network namespaces on one virtual LAN, each with
its own dockerd and its own ``orion node``, and faults made from outside Orion.

    with HostBed(3) as bed:
        bed.start()
        with bed.cluster.client() as client: ...
        bed.kill_host(2)                      # node, engine and containers die
        bed.isolate(3); bed.heal()            # nftables in the hosts' namespaces
        bed.engine(1).containers.list()       # host 1's own `docker ps`

Everything the bed makes carries its id (``ob`` + 6 hex): namespaces ``<id>-lan``/``<id>-hI``,
the root veth ``<id>``, cgroups ``orion-beds/<id>``, the runtime dir ``/run/orion-beds/<id>``
(with ``bed.json``: the owner's pid, so ``cleanup_stale_beds`` knows a killed run's bed).
``close`` removes it all, also after a failed start.

The root namespace reaches the hosts through one veth into the LAN (``10.77.K.1``) rather
than by running clients inside a namespace: tests then use the ordinary in-process Client and
docker SDK, and the route it adds is the bed's /24 only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from orion.testing.hosts import cgroups, netns
from orion.testing.hosts.cluster import BedCluster
from orion.testing.hosts.engine import Engine, image_tarballs, remove_shim_sockets
from orion.testing.hosts.host import BedHost
from orion.testing.hosts.netns import BedError

RUNTIME_ROOT = Path("/run/orion-beds")
STATE_ROOT = Path("/var/tmp/orion-beds")
DEFAULT_IMAGES = ("orion-busybox:latest",)  # what the tests run; a demo adds orion-web:v1
CLUSTER_CIDR = "10.42.0.0/16"
# [network] overlay = true on every host's node unless a bed says otherwise (issue 19's overlay,
# orion/network): the bed's hosts are real enough for it. overlay=False writes no [network].
OVERLAY_DEFAULT = True
RECORD = "bed.json"


def overlay_supported() -> bool:
    """Whether this Orion's config has ``[network] overlay`` (the overlay of issue 19)."""
    import msgspec

    from orion.config import RawConfig

    fields = {f.name: f for f in msgspec.structs.fields(RawConfig)}
    network = fields.get("network")
    return network is not None and "overlay" in getattr(network.type, "__struct_fields__", ())


class HostBed:
    def __init__(
        self,
        hosts: int = 3,
        base_dir: Path | str | None = None,
        *,
        settings: dict[str, dict[str, Any]] | None = None,
        per_node: dict[int, dict[str, dict[str, Any]]] | None = None,
        images: tuple[str, ...] = DEFAULT_IMAGES,
        overlay: bool = OVERLAY_DEFAULT,
        cluster_cidr: str = CLUSTER_CIDR,
        insecure: bool = False,
        owner_pid: int | None = None,
    ) -> None:
        if not 1 <= hosts <= 200:
            raise ValueError(f"hosts: a bed has 1-200 hosts, got {hosts}")
        self.id = "ob" + secrets.token_hex(3)
        self.size = hosts
        self.owns_base_dir = base_dir is None
        self.base_dir = Path(base_dir) if base_dir is not None else STATE_ROOT / self.id
        self.runtime_dir = RUNTIME_ROOT / self.id
        self.images = images
        self.cluster_cidr = cluster_cidr
        # The process whose death makes the bed stale (cleanup_stale_beds): this one, or one
        # that outlives it (a demo's keeper).
        self.owner_pid = owner_pid or os.getpid()
        if overlay and not overlay_supported():
            raise BedError("overlay: this Orion's config has no [network] overlay yet")
        self.overlay = overlay
        self.hosts: list[BedHost] = []
        self._lease: netns.SubnetLease | None = None
        self._network_up = False
        self._recorded = False  # only a bed that wrote its record removes what carries its id
        self._closed = False
        try:
            self._lease = netns.lease_subnet(random.sample(range(1, 255), 254))
            self.subnet = self._lease.subnet
            self._write_record()
            for index in range(1, hosts + 1):
                self.hosts.append(self._host_record(index))
            self.cluster = BedCluster(
                hosts,
                self.base_dir,
                prefix=self.id,
                settings=settings or {},
                per_node=per_node or {},
                insecure=insecure,
                bed=self,
            )
        except BaseException:
            self.close()
            raise

    def _host_record(self, index: int) -> BedHost:
        name = netns.host_netns(self.id, index)
        engine = Engine(self.id, index, name, self.runtime_dir / f"h{index}", self.base_dir / f"h{index}")
        return BedHost(
            index=index,
            netns=name,
            address=netns.host_address(self.subnet, index),
            engine=engine,
            cgroup=cgroups.host_dir(self.id, index),
            procs=cgroups.host_dir(self.id, index) / "daemons" / "cgroup.procs",
        )

    def _write_record(self) -> None:
        self.runtime_dir.mkdir(parents=True, exist_ok=False)
        record = {
            "id": self.id,
            "owner_pid": self.owner_pid,
            "owner_start": process_start(self.owner_pid),
            "base_dir": str(self.base_dir),
            "owns_base_dir": self.owns_base_dir,
            "hosts": self.size,
            "subnet": str(self.subnet),
        }
        staging = self.runtime_dir / f".{RECORD}"
        staging.write_text(json.dumps(record) + "\n")
        staging.rename(self.runtime_dir / RECORD)
        self._recorded = True

    # ------------------------------------------------------------------ start

    def start(self, wait: bool = True, timeout: float = 90.0) -> HostBed:
        """Namespaces, engines (in parallel), images, then the nodes; waits for the cluster."""
        try:
            self.cluster.start(wait=wait, timeout=timeout)
        except BaseException:
            self.close()
            raise
        return self

    def start_hosts(self) -> None:
        """The LAN, every host's namespace and engine, the test images loaded in each. Once."""
        if self._network_up:
            return
        self._network_up = True
        netns.make_lan(self.id, self.subnet)
        for host in self.hosts:
            netns.make_host(self.id, self.subnet, host.index)
            cgroups.make_host(self.id, host.index)
        for host in self.hosts:
            host.engine.start(host.procs)
        tarballs = image_tarballs(self.images)
        with ThreadPoolExecutor(len(self.hosts)) as pool:
            list(pool.map(lambda h: self._engine_ready(h, tarballs), self.hosts))

    def _engine_ready(self, host: BedHost, tarballs: list[bytes]) -> None:
        host.engine.wait_ready()
        host.engine.load_images(tarballs)

    def boot_engine(self, index: int) -> None:
        """Start a dead host's engine again, as after a reboot (its /run is gone, its disk not)."""
        host = self.host(index)
        if host.engine.running:
            return
        host.engine.forget_runtime()
        cgroups.make_host(self.id, index)
        host.engine.start(host.procs)
        host.engine.wait_ready()

    # ------------------------------------------------------------------ faults

    def kill_host(self, index: int) -> list[int]:
        """SIGKILL every process of the host (node, dockerd, containerd, shims, containers);
        returns once they are gone. The pids killed."""
        host = self.host(index)
        killed = cgroups.kill_all(host.cgroup)
        # Anything else in the namespace was started there by this bed (never another's).
        for pid in netns.netns_pids(host.netns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        host.engine.reap()
        node = self.cluster.node(index)
        if node.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(10)
        return killed

    def restart_host(self, index: int) -> None:
        """Power-cycle: kill whatever still runs, boot the engine, start the node."""
        self.kill_host(index)
        self.cluster.start_node(index)

    def pause_host(self, index: int) -> None:
        cgroups.freeze(self.host(index).cgroup)

    def resume_host(self, index: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            cgroups.thaw(self.host(index).cgroup)

    def partition(self, group_a: set[int] | list[int], group_b: set[int] | list[int]) -> None:
        """No packet passes between the two groups (each host drops the other side's
        addresses in, out and forwarded); the root namespace still reaches every host."""
        a, b = set(group_a), set(group_b)
        if a & b:
            raise ValueError(f"partition: hosts {sorted(a & b)} are on both sides")
        for here, there in ((a, b), (b, a)):
            addresses = [self.host(i).address for i in sorted(there)]
            for index in here:
                netns.cut(self.host(index).netns, addresses)

    def isolate(self, index: int) -> None:
        self.partition({index}, {h.index for h in self.hosts} - {index})

    def heal(self) -> None:
        for host in self.hosts:
            netns.uncut(host.netns)

    # ------------------------------------------------------------------ queries

    def host(self, index: int) -> BedHost:
        if not 1 <= index <= len(self.hosts):
            raise ValueError(f"host index: this bed has hosts 1-{len(self.hosts)}, got {index}")
        return self.hosts[index - 1]

    @contextlib.contextmanager
    def engine(self, index: int) -> Iterator[Any]:
        """``with bed.engine(2) as docker:``: a docker SDK client of host 2's own engine."""
        client = self.host(index).engine.client()
        try:
            yield client
        finally:
            client.close()

    def containers(self, task_id: str, running_only: bool = True) -> dict[int, list[Any]]:
        """Host index -> the containers of task ``task_id`` in that host's engine (live hosts)."""
        found: dict[int, list[Any]] = {}
        for host in self.hosts:
            if not host.engine.running:
                continue
            with contextlib.closing(host.engine.client()) as engine:
                listed = engine.containers.list(
                    all=not running_only, filters={"label": f"orion.task.id={task_id}"}
                )
            if listed:
                found[host.index] = listed
        return found

    def host_of(self, node_id: str) -> int:
        for node in self.cluster.nodes:
            if node.node_id == node_id:
                return node.index
        raise ValueError(f"node id: {node_id!r} is no node of bed {self.id}")

    def logs(self, tail: int = 40) -> str:
        engines = [f"----- dockerd of h{h.index} -----\n{h.engine.log_tail(tail)}" for h in self.hosts]
        return self.cluster.logs(tail) + "\n".join(engines) + "\n"

    # ------------------------------------------------------------------ teardown

    def close(self) -> None:
        """Remove everything the bed made; raise BedError at the end if something stayed."""
        if self._closed:
            return
        self._closed = True
        problems: list[str] = []
        started = self.hosts if hasattr(self, "cluster") else []  # none if __init__ failed early
        for host in started:
            try:
                self.kill_host(host.index)
            except Exception as exc:  # go on: the rest must still be removed
                problems.append(f"killing h{host.index}: {exc}")
        if self._recorded:
            problems += teardown(self.id, self.size, self.base_dir, self.owns_base_dir)
        if self._lease is not None:
            self._lease.release()
        if problems:
            raise BedError(f"bed {self.id} not fully removed: " + "; ".join(problems))

    def __enter__(self) -> HostBed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def teardown(bed_id: str, hosts: int, base_dir: Path, owns_base_dir: bool) -> list[str]:
    """Every trace of bed ``bed_id`` after its processes: what could not be removed."""
    problems: list[str] = []
    for index in range(1, hosts + 1):
        try:
            cgroups.kill_all(cgroups.host_dir(bed_id, index))
        except Exception as exc:
            problems.append(f"h{index} processes: {exc}")
        remove_shim_sockets(RUNTIME_ROOT / bed_id / f"h{index}" / "exec", base_dir / f"h{index}" / "docker")
    problems += unmount_under([RUNTIME_ROOT / bed_id, base_dir])
    netns.remove_network(bed_id)
    left = netns.bed_namespaces(bed_id)
    if left:
        problems.append(f"namespaces left: {left}")
    problems += cgroups.remove_bed(bed_id)
    for index in range(1, hosts + 1):  # image layers: the bulk of a bed's disk
        shutil.rmtree(base_dir / f"h{index}" / "docker", ignore_errors=True)
    if owns_base_dir:
        shutil.rmtree(base_dir, ignore_errors=True)
    shutil.rmtree(RUNTIME_ROOT / bed_id, ignore_errors=True)
    return problems


def unmount_under(roots: list[Path]) -> list[str]:
    """Unmount (lazily, deepest first) what the root mount namespace has under ``roots``.
    The engines mount in their own namespaces, so this is only a safety net."""
    prefixes = [str(r.resolve()) + "/" for r in roots]
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point.startswith(p) for p in prefixes):
            mounts.append(point)
    problems = []
    for point in sorted(mounts, key=len, reverse=True):
        result = subprocess.run(["umount", "-l", point], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            problems.append(f"umount {point}: {result.stderr.strip()}")
    return problems


def process_start(pid: int) -> int:
    """The start time of ``pid`` in clock ticks since boot (tells a reused pid apart)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[19])


def owner_alive(record: dict[str, Any]) -> bool:
    try:
        return process_start(int(record["owner_pid"])) == int(record["owner_start"])
    except (OSError, ValueError, KeyError):
        return False


def remove_recorded_bed(bed_id: str) -> list[str]:
    """Tear bed ``bed_id`` down from its record alone (its owner is gone or was stopped);
    what could not be removed."""
    record = json.loads((RUNTIME_ROOT / bed_id / RECORD).read_text())
    problems = teardown(bed_id, int(record["hosts"]), Path(record["base_dir"]), bool(record["owns_base_dir"]))
    netns.drop_subnet_lock(record["subnet"])
    return problems


def cleanup_stale_beds() -> list[str]:
    """Remove every bed whose owner process is gone (a run killed before its teardown); the
    ids removed. Beds of live processes, and anything not named by a bed record, are left."""
    removed: list[str] = []
    if not RUNTIME_ROOT.is_dir():
        return removed
    for directory in sorted(RUNTIME_ROOT.glob("ob*")):
        try:
            handle = open(directory / RECORD, "rb")  # noqa: SIM115 - held while removing
        except OSError:
            continue  # no bed record (or one being written): not ours to judge
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another cleanup is at it
                record = json.loads(handle.read())
            except (OSError, ValueError):
                continue
            if record.get("id") != directory.name or owner_alive(record):
                continue
            problems = remove_recorded_bed(directory.name)
            if problems:
                raise BedError(f"stale bed {directory.name} not fully removed: " + "; ".join(problems))
            removed.append(directory.name)
    netns.drop_unheld_locks()
    return removed
