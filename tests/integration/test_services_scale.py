"""Services on real `orion node` processes and real containers: scaling and self-healing.

- scale 1 -> 5 -> 2 on three nodes: the five replicas are spread over all three nodes, and an
  HTTP client looping on the published port (every node's ingress in turn) sees no failed
  request, above all while the service scales down (drained replicas leave the ingress before
  their containers stop);
- a node killed with its replicas on it: they are replaced on the other nodes; when the node
  comes back, its old containers are stopped, so exactly ``replicas`` run.
"""

from __future__ import annotations

import pytest

from orion.testing.localcluster import wait_for
from orion.testing.traffic import TrafficLoop
from tests.integration.services_support import (
    V1,
    active,
    converged,
    create,
    describe,
    ingress,
    orion,
    per_node,
    published_port,
    running_containers,
    serves_everywhere,
    wait_converged,
)

pytestmark = [pytest.mark.cluster, pytest.mark.docker]


def test_scale_1_5_2_spreads_and_serves_without_failures(make_cluster, docker_engine):
    cluster = make_cluster(3)
    port = published_port(cluster)
    create(cluster, "web", V1, port, 1)
    wait_converged(cluster, "web", 1, V1)
    serves_everywhere(cluster, port, "v1")
    with TrafficLoop(ingress(cluster, port)) as traffic:
        traffic.wait_for_requests(20, timeout=30)
        orion(cluster, "service", "scale", "web", "5")
        five = wait_converged(cluster, "web", 5, V1)
        spread = per_node(five)
        assert len(spread) == 3 and max(spread.values()) - min(spread.values()) <= 1, spread
        assert sorted(t.slot for t in five) == [1, 2, 3, 4, 5]
        mark = traffic.mark()
        orion(cluster, "service", "scale", "web", "2")
        two = wait_converged(cluster, "web", 2, V1)
        assert sorted(t.slot for t in two) == [1, 2]  # scale down drains the highest slots
        traffic.wait_for_requests(20, timeout=30)  # and the two left still serve
    assert traffic.failed == 0, traffic.describe()
    assert traffic.ok_since(mark) > 0 and set(traffic.seen) == {"v1"}, traffic.describe()
    with cluster.client() as client:
        ids = {t.id for t in client.service_tasks("web")}
        wait_for(
            lambda: len(running_containers(cluster, ids)) == 2,
            60,
            what="the three drained replicas' containers to stop",
        )


def test_killed_node_replicas_are_replaced_and_no_extras_after_it_returns(make_cluster, docker_engine):
    cluster = make_cluster(3)
    port = published_port(cluster)
    create(cluster, "web", V1, port, 3)
    three = wait_converged(cluster, "web", 3, V1)
    leader = cluster.leader_index()
    by_node = {n.node_id: n.index for n in cluster.nodes}
    victims = [by_node[t.node_id] for t in three if by_node[t.node_id] != leader]
    assert victims, f"every replica is on the leader: {per_node(three)}"
    victim = victims[0]
    victim_id = cluster.node(victim).node_id
    lost = {t.id for t in three if t.node_id == victim_id}

    cluster.kill(victim)
    replaced = wait_converged(cluster, "web", 3, V1, timeout=120, avoiding=victim_id)
    assert not lost & {t.id for t in replaced}

    cluster.start_node(victim)
    cluster.wait_ready(timeout=60)
    with cluster.client() as client:

        def settled_without_extras() -> bool:
            tasks = converged(client, "web", 3, V1)
            if tasks is None:
                return False
            every = {t.id for t in client.service_tasks("web")}
            # The returned node stops the containers of its old tasks: only the three run.
            return sorted(running_containers(cluster, every)) == sorted(t.id for t in tasks)

        try:
            wait_for(
                settled_without_extras, 120, interval=0.5, what="three replicas and no more after the return"
            )
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{describe(client, 'web')}") from None
        assert len(active(client.service_tasks("web"))) == 3, describe(client, "web")
    serves_everywhere(cluster, port, "v1")
