"""The ingress actor on real nodes: a published port answers on a node's own address wherever
the task runs, a node without HAProxy says so once and keeps running, and removing the last
service stops HAProxy (its port closes)."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from orion.testing.localcluster import wait_for
from tests.integration.services_support import V1, create, orion, published_port

pytestmark = [pytest.mark.cluster, pytest.mark.docker]

MISSING = "/nonexistent/haproxy"


def page(address: str, port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/", timeout=2) as response:
            return response.read().decode().strip()
    except OSError:
        return None


def listening(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((address, port)) == 0


def test_published_port_on_every_node_with_haproxy_and_a_clear_error_without(make_cluster) -> None:
    cluster = make_cluster(2, per_node={2: {"ingress": {"haproxy": MISSING}}})
    node1, node2 = cluster.node(1), cluster.node(2)
    port = published_port(cluster)
    create(cluster, "web", V1, port, 2)  # spread over both nodes' addresses
    with cluster.client() as client:
        wait_for(
            lambda: (
                {t.host_ip for t in client.service_tasks("web") if t.state == "Running"}
                == {node1.address, node2.address}
            ),
            90,
            what="a replica on each node",
        )
    wait_for(lambda: page(node1.address, port) == "v1", 60, what=f"v1 through node 1's ingress on {port}")
    assert node2.running
    assert not listening(node2.address, port)  # no HAProxy there
    said = node2.log_path.read_text()
    assert said.count(f"[ingress] haproxy = {MISSING!r} is not installed") == 1, said[-2000:]

    orion(cluster, "service", "rm", "web")
    wait_for(lambda: not listening(node1.address, port), 60, what="node 1's ingress to close the port")
    assert node1.running and node2.running
