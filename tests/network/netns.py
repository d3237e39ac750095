"""Network namespaces a test makes and always deletes: private addresses live only inside them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


def run(*args: str) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


@contextmanager
def namespaces(count: int, tag: str) -> Iterator[list[str]]:
    """``count`` fresh namespaces named after this process (tests of several helpers may run at
    once), with loopback up; deleted on the way out whatever happened."""
    names = [f"orx{os.getpid() % 100000}{tag}{i}" for i in range(count)]
    made: list[str] = []
    try:
        for name in names:
            run("ip", "netns", "add", name)
            made.append(name)
            run("ip", "-n", name, "link", "set", "lo", "up")
        yield names
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def link_pair(ns_a: str, ns_b: str, address_a: str, address_b: str, tag: str) -> tuple[str, str]:
    """A veth pair between two namespaces, addressed (CIDR notation) and up: the underlay."""
    name_a, name_b = f"u{tag}a{os.getpid() % 10000}", f"u{tag}b{os.getpid() % 10000}"
    run("ip", "link", "add", name_a, "netns", ns_a, "type", "veth", "peer", "name", name_b, "netns", ns_b)
    for ns, name, address in ((ns_a, name_a, address_a), (ns_b, name_b, address_b)):
        run("ip", "-n", ns, "addr", "add", address, "dev", name)
        run("ip", "-n", ns, "link", "set", name, "up")
    return name_a, name_b


def in_namespace(ns: str, code: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` inside ``ns`` (``ip netns exec``), this interpreter."""
    return subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
