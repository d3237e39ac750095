"""A bed host's own Docker engine: dockerd (which starts its own containerd) in the host's
network namespace and a private mount namespace, with its own data-root, exec-root, pidfile,
unix socket and bridge subnet.

It is started with ``nsenter --net`` rather than ``ip netns exec``: the latter unmounts /sys
and mounts a fresh sysfs, which hides /sys/fs/cgroup from dockerd. ``unshare --mount`` gives
the engine a mount namespace of its own, as a host has: its overlay and netns mounts never
appear in the root namespace and vanish with the engine when the host is killed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orion.testing.hosts.cgroups import join_command, task_parent
from orion.testing.hosts.netns import BedError

SHIM_SOCKETS = Path("/run/containerd/s")  # containerd 1.5+ puts every shim's socket here
START_TIMEOUT = 60.0


def dockerd_binary() -> str:
    found = shutil.which("dockerd") or ("/usr/sbin/dockerd" if Path("/usr/sbin/dockerd").exists() else None)
    if found is None:
        raise BedError("dockerd is not installed (make docker installs docker.io)")
    return found


@dataclass
class Engine:
    bed_id: str
    index: int
    netns: str
    runtime_dir: Path  # /run/orion-beds/<bed>/hI: sockets, pidfile, exec-root (cleared on reboot)
    state_dir: Path  # <base>/hI: data-root and the log (kept across a reboot)
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.runtime_dir / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def exec_root(self) -> Path:
        return self.runtime_dir / "exec"

    @property
    def data_root(self) -> Path:
        return self.state_dir / "docker"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "dockerd.log"

    @property
    def bridge_ip(self) -> str:
        """docker0's address: 172.31.I.1/24, only inside this host's namespace."""
        return f"172.31.{self.index}.1/24"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        config = self.runtime_dir / "daemon.json"
        config.write_text("{}\n")  # never /etc/docker/daemon.json: the main engine's settings
        return [
            "nsenter",
            f"--net=/run/netns/{self.netns}",
            "unshare",
            "--mount",
            "--propagation",
            "private",
            dockerd_binary(),
            "--config-file",
            str(config),
            "--data-root",
            str(self.data_root),
            "--exec-root",
            str(self.exec_root),
            "--pidfile",
            str(self.runtime_dir / "dockerd.pid"),
            "--host",
            self.docker_host,
            "--bip",
            self.bridge_ip,
            "--log-level",
            "warn",
            "--cgroup-parent",
            task_parent(self.bed_id, self.index),
        ]

    def start(self, procs: Path) -> None:
        """Launch dockerd as a member of the host's cgroup (``procs``); ``wait_ready`` waits."""
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the daemon
        try:
            self.process = subprocess.Popen(
                join_command(procs, self.command()),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()

    def client(self, timeout: float = 30.0) -> Any:
        import docker

        return docker.DockerClient(base_url=self.docker_host, timeout=int(timeout))

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if not self.running:
                raise BedError(f"dockerd of host {self.index} exited: {self.log_tail()}")
            try:
                with contextlib.closing(self.client(timeout=5)) as client:
                    client.ping()
                return
            except Exception as exc:  # the socket is not there yet
                last = exc
            time.sleep(0.1)
        raise BedError(
            f"dockerd of host {self.index} not answering after {timeout:.0f}s ({last!r}): {self.log_tail()}"
        )

    def load_images(self, tarballs: list[bytes]) -> None:
        with contextlib.closing(self.client(timeout=120)) as client:
            for tarball in tarballs:
                client.images.load(tarball)

    def log_tail(self, lines: int = 15) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def reap(self, timeout: float = 10.0) -> None:
        """Collect the exit of a killed dockerd (its children are reaped by init)."""
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (dockerd stops its containers and containerd) and wait."""
        if not self.running:
            return
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def forget_runtime(self) -> None:
        """What a reboot loses: the exec-root, sockets and pidfile (the data-root stays),
        and the shim sockets the dead shims left in the shared containerd directory."""
        remove_shim_sockets(self.exec_root, self.data_root)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        for name in ("docker.sock", "dockerd.pid"):
            (self.runtime_dir / name).unlink(missing_ok=True)


def remove_shim_sockets(exec_root: Path, data_root: Path) -> None:
    """A killed shim leaves its socket in /run/containerd/s, named by a hash of its containerd's
    address, namespace and container id: only this engine's own are computed and removed."""
    containers = data_root / "containers"
    if not containers.is_dir():
        return
    address = exec_root / "containerd" / "containerd.sock"
    for container in containers.iterdir():
        digest = hashlib.sha256(f"{address}/moby/{container.name}".encode()).hexdigest()
        (SHIM_SOCKETS / digest).unlink(missing_ok=True)


def image_tarballs(images: tuple[str, ...]) -> list[bytes]:
    """``docker save`` of each of ``images`` from the main engine (no registry is involved)."""
    import docker

    engine = docker.from_env(timeout=120)
    try:
        # ImageNotFound names a missing image (make docker builds them).
        return [b"".join(engine.images.get(image).save(named=True)) for image in images]
    finally:
        engine.close()
