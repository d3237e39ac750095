#!/usr/bin/env python3
"""Make a Docker engine and the local test image available, or fail loudly.

Installs Debian's docker.io and busybox-static when missing, starts dockerd when it is not
answering, and builds the image ``orion-busybox:latest`` with ``docker import`` from a root
filesystem that holds only the static busybox binary and its applet links. No registry is
contacted: every test and the demo use this image.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

IMAGE = "orion-busybox:latest"
APPLETS = ("sh", "sleep", "httpd", "echo", "cat", "true", "false", "ls", "mkdir", "env", "wget", "kill")


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=False, text=True, capture_output=True, **kw)


def docker_answers() -> bool:
    return shutil.which("docker") is not None and run(["docker", "info"]).returncode == 0


def install_packages() -> None:
    missing = [
        pkg
        for pkg, binary in (("docker.io", "dockerd"), ("busybox-static", "busybox"))
        if shutil.which(binary) is None and not Path(f"/bin/{binary}").exists()
    ]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"docker_setup: need root to install {missing}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print(f"docker_setup: installing {' '.join(missing)}", flush=True)
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, env=env)


def start_dockerd(deadline_s: float = 60.0) -> None:
    if docker_answers():
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        sys.exit("docker_setup: dockerd is not installed")
    log = open("/tmp/orion-dockerd.log", "ab")  # noqa: SIM115 - handed to the daemon
    subprocess.Popen([dockerd], stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if docker_answers():
            return
        time.sleep(0.5)
    sys.exit("docker_setup: dockerd did not answer within 60 s; see /tmp/orion-dockerd.log")


def busybox_binary() -> str:
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        if Path(candidate).exists():
            return candidate
    sys.exit("docker_setup: no busybox binary (install busybox-static)")


def build_image(force: bool = False) -> None:
    if not force and run(["docker", "image", "inspect", IMAGE]).returncode == 0:
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp, "rootfs")
        (root / "bin").mkdir(parents=True)
        (root / "www").mkdir()
        (root / "tmp").mkdir()
        shutil.copy2(busybox_binary(), root / "bin" / "busybox")
        for applet in APPLETS:
            os.symlink("busybox", root / "bin" / applet)
        (root / "www" / "index.html").write_text("<h1>served by orion</h1>\n")
        tar_path = Path(tmp, "rootfs.tar")
        with tarfile.open(tar_path, "w") as tar:
            tar.add(root, arcname=".")
        result = run(
            [
                "docker",
                "import",
                "--change",
                "ENV PATH=/bin",
                "--change",
                'CMD ["/bin/sh"]',
                str(tar_path),
                IMAGE,
            ]
        )
        if result.returncode != 0:
            sys.exit(f"docker_setup: docker import failed: {result.stderr.strip()}")
    print(f"docker_setup: built {IMAGE}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the test image")
    args = parser.parse_args()
    if not docker_answers():
        install_packages()
        start_dockerd()
    build_image(force=args.rebuild)
    print(f"docker_setup: engine up, image {IMAGE} ready", flush=True)


if __name__ == "__main__":
    main()
