"""The bed's virtual LAN: network namespaces, a bridge, veths, and the nftables rules that
partition it. Every name made here starts with the bed's id, and nothing here routes outside
the bed's own /24 (hosts get no default route; the root end forwards nothing).

Layout of bed ``ob1a2b3c`` on 10.77.K.0/24::

    root ns: ob1a2b3c (10.77.K.1/24) ──veth── [ob1a2b3c-lan: "root" ─ br0 ─ h1, h2, h3]
    ob1a2b3c-hI: eth0 (10.77.K.(10+I)/24) ──veth── hI on br0

The bridge lives in its own namespace, not the root one, where the main Docker engine's
iptables FORWARD policy (DROP) would filter bridged frames (bridge-nf-call-iptables is on).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO

SUBNET_PREFIX = "10.77"  # the bed's /24 is 10.77.K.0/24, K chosen free per bed
LOCK_DIR = Path("/run/orion-beds/locks")
MTU = 1500
NFT_TABLE = "orion_bed"


class BedError(RuntimeError):
    """The bed could not be built or changed; the message names the step and the command."""


def run(args: list[str], stdin: str | None = None, check: bool = True) -> str:
    """Run a command of the bed's plumbing; a failure raises BedError with its stderr."""
    result = subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise BedError(f"`{' '.join(args)}` failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def in_netns(netns: str, args: list[str], stdin: str | None = None, check: bool = True) -> str:
    return run(["ip", "netns", "exec", netns, *args], stdin=stdin, check=check)


def host_address(subnet: ipaddress.IPv4Network, index: int) -> str:
    """Host ``index``'s underlay address: .10+index of the bed's /24."""
    if not 1 <= index <= 200:
        raise ValueError(f"host index: a bed has hosts 1-200, got {index}")
    return str(subnet.network_address + 10 + index)


def root_address(subnet: ipaddress.IPv4Network) -> str:
    """The root namespace's address on the bed's LAN (.1): how tests reach the hosts' APIs."""
    return str(subnet.network_address + 1)


# ---------------------------------------------------------------------- the /24


def _root_prefixes() -> list[ipaddress.IPv4Network]:
    """Every IPv4 prefix the root namespace routes or holds an address in (default route aside)."""
    found: list[ipaddress.IPv4Network] = []
    for route in json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]) or "[]"):
        dst = route.get("dst", "")
        if dst and dst != "default":
            with contextlib.suppress(ValueError):
                found.append(ipaddress.ip_network(dst, strict=False))
    for link in json.loads(run(["ip", "-j", "-4", "addr"]) or "[]"):
        for info in link.get("addr_info", []):
            found.append(ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False))
    return found


@dataclass
class SubnetLease:
    """A /24 held for one bed: an flock on its lock file, released by ``release`` or when the
    holding process dies (so a killed run's /24 is free again once its routes are gone)."""

    subnet: ipaddress.IPv4Network
    lock: IO[bytes]
    path: Path

    def release(self) -> None:
        # Unlinked while still held: a bed that opens the path next makes a new file, and one
        # that had opened the old file sees it is gone (lease_subnet compares inodes).
        self.path.unlink(missing_ok=True)
        self.lock.close()


def lease_subnet(order: list[int]) -> SubnetLease:
    """The first 10.77.K.0/24 of ``order`` that no other bed holds and that overlaps nothing
    the root namespace routes or addresses."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    taken = _root_prefixes()
    for k in order:
        subnet = ipaddress.ip_network(f"{SUBNET_PREFIX}.{k}.0/24")
        if any(subnet.overlaps(prefix) for prefix in taken):
            continue
        path = LOCK_DIR / f"subnet-{k}.lock"
        lock = open(path, "wb")  # noqa: SIM115 - held for the bed's life
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(lock.fileno()).st_ino != path.stat().st_ino:
                raise BlockingIOError  # released and unlinked by its holder meanwhile
        except (BlockingIOError, FileNotFoundError):
            lock.close()
            continue
        return SubnetLease(subnet, lock, path)
    raise BedError(f"no free {SUBNET_PREFIX}.K.0/24 for a bed (all locked or overlapping a root route)")


def drop_subnet_lock(subnet: str) -> None:
    """Remove the lock file of a dead bed's /24, unless some bed holds it again."""
    k = ipaddress.ip_network(subnet).network_address.packed[2]
    drop_lock_file(LOCK_DIR / f"subnet-{k}.lock")


def drop_unheld_locks() -> None:
    """Remove the lock files no live bed holds (their beds died before releasing them)."""
    for path in LOCK_DIR.glob("subnet-*.lock"):
        drop_lock_file(path)


def drop_lock_file(path: Path) -> None:
    try:
        lock = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        path.unlink(missing_ok=True)


# ---------------------------------------------------------------------- names


def lan_netns(bed_id: str) -> str:
    return f"{bed_id}-lan"


def host_netns(bed_id: str, index: int) -> str:
    return f"{bed_id}-h{index}"


def root_link(bed_id: str) -> str:
    return bed_id  # "ob" + 6 hex: within IFNAMSIZ, and no other link is named so


def bed_namespaces(bed_id: str) -> list[str]:
    """The namespaces that exist now and belong to the bed (by their name prefix)."""
    listed = run(["ip", "netns", "list"], check=False).split("\n")
    names = [line.split()[0] for line in listed if line.strip()]
    return [name for name in names if name.startswith(f"{bed_id}-")]


# ---------------------------------------------------------------------- build


def _quiet_namespace(netns: str) -> None:
    """Loopback up and IPv6 off, before any link is made: no router solicitations, no
    link-local chatter; the bed speaks IPv4 on its /24 only."""
    in_netns(
        netns,
        [
            "sysctl",
            "-q",
            "-w",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ],
    )
    run(["ip", "-n", netns, "link", "set", "lo", "up"])


def make_lan(bed_id: str, subnet: ipaddress.IPv4Network) -> None:
    """The LAN namespace with its bridge, and the root namespace's veth into it."""
    lan = lan_netns(bed_id)
    run(["ip", "netns", "add", lan])
    _quiet_namespace(lan)
    run(["ip", "-n", lan, "link", "add", "br0", "mtu", str(MTU), "type", "bridge"])
    run(["ip", "-n", lan, "link", "set", "br0", "up"])
    link = root_link(bed_id)
    run(["ip", "link", "add", link, "mtu", str(MTU), "type", "veth", "peer", "name", "root", "netns", lan])
    # Written before the address: the root end never forwards what the bed sends (no way out
    # through the root namespace), and speaks no IPv6 into the LAN.
    run(["sysctl", "-q", "-w", f"net.ipv4.conf.{link}.forwarding=0", f"net.ipv6.conf.{link}.disable_ipv6=1"])
    run(["ip", "-n", lan, "link", "set", "root", "master", "br0", "up"])
    run(["ip", "addr", "add", f"{root_address(subnet)}/{subnet.prefixlen}", "dev", link])
    run(["ip", "link", "set", link, "up"])


def make_host(bed_id: str, subnet: ipaddress.IPv4Network, index: int) -> str:
    """Host ``index``'s namespace with eth0 on the LAN; its only route is the bed's /24."""
    netns, lan = host_netns(bed_id, index), lan_netns(bed_id)
    run(["ip", "netns", "add", netns])
    _quiet_namespace(netns)
    port = f"h{index}"
    peer = ["peer", "name", "eth0", "mtu", str(MTU), "netns", netns]
    run(["ip", "-n", lan, "link", "add", port, "mtu", str(MTU), "type", "veth", *peer])
    run(["ip", "-n", lan, "link", "set", port, "master", "br0", "up"])
    address = f"{host_address(subnet, index)}/{subnet.prefixlen}"
    run(["ip", "-n", netns, "addr", "add", address, "dev", "eth0"])
    run(["ip", "-n", netns, "link", "set", "eth0", "up"])
    return netns


def remove_network(bed_id: str) -> None:
    """Every namespace of the bed (their veths go with them) and the root end, if left."""
    for netns in bed_namespaces(bed_id):
        run(["ip", "netns", "delete", netns], check=False)
    if Path(f"/sys/class/net/{root_link(bed_id)}").exists():
        run(["ip", "link", "delete", root_link(bed_id)], check=False)


def netns_pids(netns: str) -> list[int]:
    return [int(p) for p in run(["ip", "netns", "pids", netns], check=False).split()]


# ---------------------------------------------------------------------- partitions

TABLE = f"""
table inet {NFT_TABLE} {{
  set cut {{ type ipv4_addr; }}
  chain input {{ type filter hook input priority -10; ip saddr @cut drop; }}
  chain output {{ type filter hook output priority -10; ip daddr @cut drop; }}
  chain forward {{ type filter hook forward priority -10; ip saddr @cut drop; ip daddr @cut drop; }}
}}
"""


def cut(netns: str, addresses: list[str]) -> None:
    """Drop every packet between ``netns`` and ``addresses`` (in, out and forwarded, so the
    host's containers are cut off too), on top of any cut already there."""
    if not addresses:
        return
    elements = ", ".join(addresses)
    listed = ["ip", "netns", "exec", netns, "nft", "list", "table", "inet", NFT_TABLE]
    exists = subprocess.run(listed, capture_output=True, check=False).returncode == 0
    rules = "" if exists else TABLE  # declared once: its rules are not added twice
    rules += f"add element inet {NFT_TABLE} cut {{ {elements} }}\n"
    in_netns(netns, ["nft", "-f", "-"], stdin=rules)


def uncut(netns: str) -> None:
    """Remove the bed's nftables table from ``netns`` (nothing else there is touched)."""
    in_netns(netns, ["nft", "delete", "table", "inet", NFT_TABLE], check=False)


def cut_addresses(netns: str) -> list[str]:
    """The addresses ``netns`` is cut from now."""
    out = in_netns(netns, ["nft", "-j", "list", "set", "inet", NFT_TABLE, "cut"], check=False)
    if not out:
        return []
    for item in json.loads(out).get("nftables", []):
        if "set" in item:
            return sorted(str(e) for e in item["set"].get("elem", []))
    return []


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (killed, not yet reaped by init) does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
