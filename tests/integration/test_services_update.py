"""Rolling updates and rollbacks on real `orion node` processes and real containers, with an
HTTP client looping on the published port through every node's ingress the whole time.

- a 1-replica and a 3-replica service update from orion-web:v1 to orion-web:v2 (start-first,
  health-checked): not one request fails, and afterwards only v2 answers;
- an update to orion-web:broken (its /health never answers 200) rolls back by itself: the
  broken replicas never receive a request, the service serves v1 throughout;
- ``orion service rollback`` after a finished update brings v1 back, again without a failed
  request.
"""

from __future__ import annotations

import json

import pytest

from orion.testing.traffic import TrafficLoop
from tests.integration.services_support import (
    BROKEN,
    V1,
    V2,
    create,
    ingress,
    orion,
    published_port,
    serves_everywhere,
    wait_converged,
)

pytestmark = [pytest.mark.cluster, pytest.mark.docker]


@pytest.mark.parametrize("replicas", [1, 3])
def test_update_v1_to_v2_has_no_failed_requests(make_cluster, docker_engine, replicas):
    cluster = make_cluster(3)
    port = published_port(cluster)
    create(cluster, "web", V1, port, replicas, "--update-parallelism", "1", "--update-order", "start-first")
    before = wait_converged(cluster, "web", replicas, V1)
    serves_everywhere(cluster, port, "v1")
    with TrafficLoop(ingress(cluster, port)) as traffic:
        traffic.wait_for_requests(20, timeout=30)
        orion(cluster, "service", "update", "web", "--image", V2)
        after = wait_converged(cluster, "web", replicas, V2)
        traffic.wait_for_content("v2", timeout=30, settle=20)
    assert traffic.failed == 0, traffic.describe()
    assert set(traffic.seen) == {"v1", "v2"}, traffic.describe()
    assert not {t.id for t in before} & {t.id for t in after}  # every replica was replaced
    assert sorted(t.slot for t in after) == list(range(1, replicas + 1))


def test_update_to_failing_image_rolls_back_by_itself(make_cluster, docker_engine):
    cluster = make_cluster(3)
    port = published_port(cluster)
    create(cluster, "web", V1, port, 2, "--update-failure-action", "rollback")
    wait_converged(cluster, "web", 2, V1)
    serves_everywhere(cluster, port, "v1")
    with TrafficLoop(ingress(cluster, port)) as traffic:
        traffic.wait_for_requests(20, timeout=30)
        orion(cluster, "service", "update", "web", "--image", BROKEN)
        with cluster.client() as client:
            broken_version = client.service("web").template_version
        settled = wait_converged(cluster, "web", 2, V1, timeout=180)
        traffic.wait_for_requests(20, timeout=30)
    assert traffic.failed == 0, traffic.describe()
    assert set(traffic.seen) == {"v1"}, traffic.describe()  # a broken replica was never sent a request
    with cluster.client() as client:
        service = client.service("web")
        tried = [t for t in client.service_tasks("web") if t.version == broken_version]
    assert service.update.state == "rolled_back", service.update
    assert service.spec.template.image == V1
    assert all(t.version != broken_version for t in settled)
    assert tried and all(t.image == BROKEN for t in tried)  # the update did start before it rolled back
    inspect = json.loads(orion(cluster, "--json", "service", "inspect", "web").stdout)
    assert "rolled_back" in json.dumps(inspect)


def test_rollback_by_hand_brings_the_previous_image_back(make_cluster, docker_engine):
    cluster = make_cluster(3)
    port = published_port(cluster)
    create(cluster, "web", V1, port, 2)
    wait_converged(cluster, "web", 2, V1)
    orion(cluster, "service", "update", "web", "--image", V2)
    wait_converged(cluster, "web", 2, V2)
    serves_everywhere(cluster, port, "v2")
    with TrafficLoop(ingress(cluster, port)) as traffic:
        traffic.wait_for_requests(20, timeout=30)
        orion(cluster, "service", "rollback", "web")
        wait_converged(cluster, "web", 2, V1)
        traffic.wait_for_content("v1", timeout=30, settle=20)
    assert traffic.failed == 0, traffic.describe()
    assert set(traffic.seen) == {"v1", "v2"}, traffic.describe()
    with cluster.client() as client:
        service = client.service("web")
    assert service.spec.template.image == V1
    assert service.update.state in ("completed", "rolled_back"), service.update
