#!/usr/bin/env python3
"""Make a Docker engine and the local test image available, or fail loudly.

Installs Debian's docker.io, busybox-static, haproxy (every node's ingress) and chromium with
chromium-driver (the web console's browser test), iproute2 and nftables (the test bed of hosts)
when missing,
starts dockerd when it is not answering, and builds the image ``orion-busybox:latest`` with
``docker import`` from a root filesystem that holds only the static busybox binary and its
applet links. No registry is contacted: every test and the demo use this image.

The service tests and benchmarks also get three web images built the same way (busybox httpd
on port 80, serving ``/`` and ``/health``): ``orion-web:v1`` and ``orion-web:v2`` answer "v1" and
"v2" at ``/`` and 200 at ``/health``; ``orion-web:broken`` serves ``/`` but has no ``/health``
(404), so an http health check on it never passes.
"""

from __future__ import annotations

import argparse
import json
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
WEB_CONTENT = {"orion-web:v1": "v1", "orion-web:v2": "v2", "orion-web:broken": "broken"}
# Bumped when the web images' files change, so a stale image is rebuilt without --rebuild.
WEB_REVISION = "1"
WEB_LABEL = "orion.web.revision"
# httpd as PID 1 ignores SIGTERM (no handler), so every stop would wait the whole grace period
# for SIGKILL; a shell that exits on TERM ends the container at once. By then the ingress has
# stopped sending to the task (it drains first), so no request is cut.
WEB_COMMAND = "trap 'exit 0' TERM; httpd -f -p 80 -h /www & wait"


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=False, text=True, capture_output=True, **kw)


def docker_answers() -> bool:
    return shutil.which("docker") is not None and run(["docker", "info"]).returncode == 0


def install_packages() -> None:
    # haproxy: every node's ingress (orion/ingress); Debian installs it in /usr/sbin.
    # chromium and its driver: the web console's browser test (tests/integration/test_console_browser.py).
    wanted = (
        ("docker.io", "dockerd"),
        ("busybox-static", "busybox"),
        ("haproxy", "haproxy"),
        ("chromium", "chromium"),
        ("chromium-driver", "chromedriver"),
        # The test bed of hosts (orion/testing/hosts): namespaces, veths, bridge; partitions.
        ("iproute2", "ip"),
        ("nftables", "nft"),
    )
    missing = [
        pkg
        for pkg, binary in wanted
        if shutil.which(binary) is None and not any(Path(d, binary).exists() for d in ("/bin", "/usr/sbin"))
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


def import_rootfs(image: str, www: dict[str, str], changes: list[str]) -> None:
    """``docker import`` a root filesystem of busybox, its applets and the files ``www``
    (name -> text) under /www, as ``image``."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp, "rootfs")
        (root / "bin").mkdir(parents=True)
        (root / "www").mkdir()
        (root / "tmp").mkdir()
        shutil.copy2(busybox_binary(), root / "bin" / "busybox")
        for applet in APPLETS:
            os.symlink("busybox", root / "bin" / applet)
        for name, text in www.items():
            (root / "www" / name).write_text(text)
        tar_path = Path(tmp, "rootfs.tar")
        with tarfile.open(tar_path, "w") as tar:
            tar.add(root, arcname=".")
        change_args = [arg for change in ["ENV PATH=/bin", *changes] for arg in ("--change", change)]
        result = run(["docker", "import", *change_args, str(tar_path), image])
        if result.returncode != 0:
            sys.exit(f"docker_setup: docker import of {image} failed: {result.stderr.strip()}")
    print(f"docker_setup: built {image}", flush=True)


def build_image(force: bool = False) -> None:
    if not force and run(["docker", "image", "inspect", IMAGE]).returncode == 0:
        return
    import_rootfs(IMAGE, {"index.html": "<h1>served by orion</h1>\n"}, ['CMD ["/bin/sh"]'])


def build_web_images(force: bool = False) -> None:
    """The service test images; each is rebuilt only when missing or of an older revision."""
    for image, content in WEB_CONTENT.items():
        label = run(
            ["docker", "image", "inspect", "--format", f'{{{{index .Config.Labels "{WEB_LABEL}"}}}}', image]
        )
        if not force and label.returncode == 0 and label.stdout.strip() == WEB_REVISION:
            continue
        www = {"index.html": f"{content}\n"}
        if content != "broken":
            www["health"] = "ok\n"
        command = json.dumps(["/bin/sh", "-c", WEB_COMMAND])
        import_rootfs(image, www, [f"CMD {command}", f"LABEL {WEB_LABEL}={WEB_REVISION}", "EXPOSE 80/tcp"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the test image")
    args = parser.parse_args()
    install_packages()  # returns at once when everything is there
    if not docker_answers():
        start_dockerd()
    build_image(force=args.rebuild)
    build_web_images(force=args.rebuild)
    print(f"docker_setup: engine up, images {IMAGE} and {', '.join(WEB_CONTENT)} ready", flush=True)


if __name__ == "__main__":
    main()
