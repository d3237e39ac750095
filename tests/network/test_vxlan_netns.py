"""The VXLAN shell in two real network namespaces joined by a veth pair (the underlay): each
applies its plan, and TCP between addresses of the two nodes' /24s crosses the VXLAN devices."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from pyroute2 import NetNS

from orion.network.overlay_plan import Peer, diff, plan, vtep_mac_for
from orion.network.vxlan import VxlanShell, find_underlay
from tests.network.netns import in_namespace, link_pair, namespaces, run

pytestmark = pytest.mark.isolated

UNDERLAY = {"a": "10.99.0.1", "b": "10.99.0.2"}
SUBNET = {"a": "10.42.0.0/24", "b": "10.42.1.0/24"}
TASK_IP = {"a": "10.42.0.5", "b": "10.42.1.5"}


def _converge(ns: str, me: str, peers: list[Peer]) -> VxlanShell:
    handle = NetNS(ns)
    shell = VxlanShell(handle)
    underlay = find_underlay(handle, UNDERLAY[me])
    desired = plan(SUBNET[me], UNDERLAY[me], underlay.mtu, peers)
    shell.ensure_device(underlay, vtep_mac_for(me), desired.mtu)
    shell.set_address(desired.address)
    shell.apply(diff(desired, shell.read()))
    return shell


def _peer(name: str) -> Peer:
    return Peer(name, SUBNET[name], UNDERLAY[name], vtep_mac_for(name))


def _connect(ns: str, source: str, target: str, port: int) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(f"""
        import socket
        s = socket.socket()
        s.settimeout(3)
        s.bind(("{source}", 0))
        s.connect(("{target}", {port}))
        s.sendall(b"ping")
        print(s.recv(16).decode())
    """)
    return in_namespace(ns, code)


def test_tcp_between_two_subnets_crosses_vxlan_and_a_removed_peer_loses_its_route() -> None:
    with namespaces(2, "v") as (ns_a, ns_b):
        link_pair(ns_a, ns_b, f"{UNDERLAY['a']}/24", f"{UNDERLAY['b']}/24", "v")
        # A task address in each node's /24 (on loopback: no Docker in this test).
        run("ip", "-n", ns_a, "addr", "add", f"{TASK_IP['a']}/32", "dev", "lo")
        run("ip", "-n", ns_b, "addr", "add", f"{TASK_IP['b']}/32", "dev", "lo")
        shell_a = _converge(ns_a, "a", [_peer("b")])
        shell_b = _converge(ns_b, "b", [_peer("a")])
        try:
            tables = shell_a.read()
            assert {(r.subnet, r.gateway) for r in tables.routes} == {("10.42.1.0/24", "10.42.1.0")}
            assert {(n.address, n.mac) for n in tables.neighbours} == {("10.42.1.0", vtep_mac_for("b"))}
            assert {(f.mac, f.underlay_ip) for f in tables.forwarding} == {(vtep_mac_for("b"), "10.99.0.2")}
            # Converging again changes nothing (level-triggered passes are idempotent).
            assert diff(plan(SUBNET["a"], UNDERLAY["a"], 1500, [_peer("b")]), shell_a.read()).empty

            server = subprocess.Popen(
                [
                    "ip", "netns", "exec", ns_b, sys.executable, "-c",
                    textwrap.dedent(f"""
                        import socket
                        s = socket.socket()
                        s.bind(("{TASK_IP['b']}", 8080))
                        s.listen()
                        print("ready", flush=True)
                        c, peer = s.accept()
                        c.sendall(b"pong " + peer[0].encode())
                    """),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            try:
                assert server.stdout is not None and server.stdout.readline().strip() == "ready"
                tx_before = _tx_packets(ns_a, "orion.vxlan")
                answer = _connect(ns_a, TASK_IP["a"], TASK_IP["b"], 8080)
                assert answer.returncode == 0, answer.stderr
                assert answer.stdout.strip() == f"pong {TASK_IP['a']}"  # no NAT on the way
                assert _tx_packets(ns_a, "orion.vxlan") > tx_before  # it left through the VTEP
            finally:
                server.kill()
                server.wait(timeout=10)

            # b leaves the cluster: a's next pass removes its route, neighbour and FDB entry.
            shell_a.apply(diff(plan(SUBNET["a"], UNDERLAY["a"], 1500, []), shell_a.read()))
            assert shell_a.read().routes == frozenset()
            assert shell_a.read().forwarding == frozenset()
            refused = _connect(ns_a, TASK_IP["a"], TASK_IP["b"], 8080)
            assert refused.returncode != 0
            assert "unreachable" in refused.stderr.lower() or "timed out" in refused.stderr.lower()
        finally:
            shell_a.ipr.close()
            shell_b.ipr.close()


def test_the_device_is_remade_when_its_settings_change_and_mtu_leaves_room_for_vxlan() -> None:
    with namespaces(2, "m") as (ns_a, ns_b):
        link_pair(ns_a, ns_b, f"{UNDERLAY['a']}/24", f"{UNDERLAY['b']}/24", "m")
        shell = _converge(ns_a, "a", [])
        try:
            assert shell.device_mac() == vtep_mac_for("a")
            link = shell.ipr.get_links(shell.index)[0]
            assert link.get_attr("IFLA_MTU") == 1500 - 50
            first = shell.index
            underlay = find_underlay(shell.ipr, UNDERLAY["a"])
            shell.ensure_device(underlay, vtep_mac_for("a"), 1450)
            assert shell.index == first  # same settings: kept
            shell.ensure_device(underlay, vtep_mac_for("other"), 1450)
            assert shell.device_mac() == vtep_mac_for("other")
            shell.remove_device()
            assert not shell.ipr.link_lookup(ifname="orion.vxlan")
        finally:
            shell.ipr.close()


def _tx_packets(ns: str, device: str) -> int:
    lines = run("ip", "-n", ns, "-s", "link", "show", device).splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("TX:"):
            return int(lines[i + 1].split()[1])
    raise AssertionError(f"no TX counters for {device} in {ns}: {lines}")
