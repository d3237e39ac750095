"""Services through the Python client, the ZeroMQ API, the real API actor and the real state
machine: what each call returns, and the errors a user sees."""

from __future__ import annotations

import pytest

from orion.client import Conflict, InvalidRequest, NotFound
from orion.fsm.commands import ServiceStep
from orion.model import HealthCheck, Task
from orion.services.spec import Service, ServicePort, ServiceSpec, TaskTemplate, UpdatePolicy, slot_name
from tests.api.service_stack import Stack, stack_fixture  # noqa: F401 (the stack fixture)


def test_create_read_and_list(stack: Stack) -> None:
    client = stack.client
    web = client.create_service(
        "web",
        "nginx:1",
        replicas=3,
        ports=["8080:80"],
        memory="64MiB",
        env={"MODE": "prod"},
        health={"kind": "http", "port": 80, "path": "/health", "interval": "2s"},
        update={"parallelism": 2, "delay": "10s", "order": "stop-first"},
        constraints={"zone": "a"},
        spread="zone",
    )
    assert isinstance(web, Service)
    assert (web.name, web.version, web.spec.replicas) == ("web", 1, 3)
    assert web.spec.ports == [ServicePort(published=8080, target=80)]
    assert web.spec.template.memory == 64 << 20
    assert web.spec.template.health == HealthCheck(kind="http", port=80, path="/health", interval=2.0)
    assert web.spec.update == UpdatePolicy(parallelism=2, delay=10.0, order="stop-first")
    assert (web.spec.placement.spread, web.spec.placement.constraints) == ("zone", {"zone": "a"})
    assert client.service("web") == web
    assert client.services() == [web]
    assert client.service_tasks("web") == []


def test_bad_specs_are_refused_naming_the_field(stack: Stack) -> None:
    client = stack.client
    with pytest.raises(InvalidRequest, match=r"^replicas: must be >= 0"):
        client.create_service("web", "nginx", replicas=-1)
    with pytest.raises(InvalidRequest, match=r"^name: 'Web!' is not a valid service name"):
        client.create_service("Web!", "nginx")
    with pytest.raises(InvalidRequest, match=r"^template\.health\.port: http checks need"):
        client.create_service("web", "nginx", health={"kind": "http"})
    with pytest.raises(InvalidRequest, match=r"^template\.health\.command: an exec check needs"):
        client.create_service("web", "nginx", health={"kind": "exec"})
    with pytest.raises(InvalidRequest, match=r"^update\.order: "):
        client.create_service("web", "nginx", update={"order": "sideways"})
    with pytest.raises(InvalidRequest, match=r"^template\.memory: cannot parse size"):
        client.create_service("web", "nginx", memory="lots")
    with pytest.raises(InvalidRequest, match=r"^colour: unknown service field"):
        client.create_service("web", "nginx", colour="red")
    assert client.services() == []


def test_published_ports_conflict_with_another_service_and_with_tasks(stack: Stack) -> None:
    client = stack.client
    client.create_service("web", "nginx", ports=["8080:80"])
    with pytest.raises(Conflict, match="published port 8080/tcp is taken by service web"):
        client.create_service("api", "api", ports=["8080:81"])
    with pytest.raises(Conflict, match="service web already exists"):
        client.create_service("web", "other")
    with pytest.raises(Conflict, match="host port 8080/tcp is published by service web"):
        client.submit("busybox", ports={"80/tcp": "8080"})
    client.submit("busybox", ports={"80/tcp": "9090"})
    with pytest.raises(Conflict, match="bound as a host port by task"):
        client.create_service("api", "api", ports=["9090:81"])


def test_update_scale_rollback_pause_resume_remove(stack: Stack) -> None:
    client = stack.client
    client.create_service("web", "nginx:1", replicas=2)
    updated = client.update_service("web", image="nginx:2")
    assert (updated.version, updated.template_version, updated.update.state) == (2, 2, "updating")
    assert updated.spec.replicas == 2  # what was not named stays
    assert client.update_service("web", image="nginx:2") == updated  # nothing to change
    scaled = client.scale_service("web", 5)
    assert (scaled.version, scaled.template_version, scaled.spec.replicas) == (3, 2, 5)
    paused = client.pause_service("web")
    assert paused.update.state == "paused"
    assert client.resume_service("web").update.state == "updating"
    rolled = client.rollback_service("web")
    assert (rolled.spec.template.image, rolled.template_version, rolled.update.state) == (
        "nginx:1",
        1,
        "rolling_back",
    )
    with pytest.raises(InvalidRequest, match="no previous version"):
        client.rollback_service("web")
    with pytest.raises(InvalidRequest, match="replicas: must be >= 0"):
        client.scale_service("web", -1)
    removed = client.remove_service("web")
    assert removed.name == "web"
    with pytest.raises(NotFound, match="no service named web"):
        client.service("web")
    for call in (client.remove_service, client.pause_service, client.rollback_service, client.service_tasks):
        with pytest.raises(NotFound):
            call("web")
    with pytest.raises(NotFound):
        client.update_service("web", image="x")


def test_update_retries_when_someone_changed_the_service_meanwhile(stack: Stack) -> None:
    client = stack.client
    client.create_service("web", "nginx:1", replicas=2)
    seen: list[int] = []

    def change(spec: ServiceSpec) -> ServiceSpec:
        # The first time, another user scales the service between our read and our write.
        if not seen:
            client.scale_service("web", 4)
        seen.append(spec.replicas)
        return ServiceSpec(
            name=spec.name,
            template=TaskTemplate(image="nginx:2"),
            replicas=spec.replicas,
            ports=spec.ports,
        )

    updated = client.update_service("web", change=change)
    assert seen == [2, 4]  # read again after the conflict
    assert (updated.spec.template.image, updated.spec.replicas, updated.version) == ("nginx:2", 4, 3)


def test_a_whole_spec_replaces_the_service(stack: Stack) -> None:
    client = stack.client
    client.create_service("web", spec={"name": "web", "template": {"image": "a"}, "replicas": 2})
    spec = ServiceSpec(name="web", template=TaskTemplate(image="b"), replicas=1)
    updated = client.update_service("web", spec=spec)
    assert updated.spec == spec
    with pytest.raises(InvalidRequest, match="either a spec or fields"):
        client.create_service("api", "x", spec=spec)


def test_service_tasks_come_back_as_tasks(stack: Stack) -> None:
    client = stack.client
    web = client.create_service("web", "nginx", replicas=1, ports=["8080:80"])
    task = Task(
        id="t1",
        name=slot_name("web", 1),
        image="nginx",
        service="web",
        slot=1,
        version=web.template_version,
        port_bindings={"80/tcp": "0"},
    )
    stack.raft.commit(ServiceStep(at=5.0, name="web", expected_version=web.version, add=[task])).get()
    tasks = client.service_tasks("web")
    assert [(t.id, t.name, t.service, t.slot, t.version, t.state) for t in tasks] == [
        ("t1", "web.1", "web", 1, 1, "Pending")
    ]
    assert client.task("t1") == tasks[0]
