"""``apply -f`` files: TOML to specs and back, the errors a user sees, and the plan (what is
created, updated and left alone)."""

from __future__ import annotations

import msgspec
import pytest

from orion.api.manifest import (
    CREATE,
    UNCHANGED,
    UPDATE,
    ManifestError,
    differences,
    format_plan,
    load_manifest,
    manifest_text,
    plan,
)
from orion.model import HealthCheck, RestartSpec
from orion.services.spec import Placement, Service, ServicePort, ServiceSpec, TaskTemplate, UpdatePolicy

WEB_TOML = """
[service.web]
replicas = 3
ports = ["8080:80", { published = 8443, target = 443 }]

[service.web.template]
image = "nginx:1.27"
memory = "64MiB"
cpu = 0.25
env = { MODE = "prod", "dotted.key" = "kept" }
command = ["nginx", "-g", "daemon off;"]
stop_grace = "30s"

[service.web.template.health]
kind = "http"
port = 80
path = "/health"
interval = "2s"
start_period = "1m"

[service.web.placement]
spread = "zone"
constraints = { disk = "ssd" }

[service.web.update]
parallelism = 2
delay = "5s"
order = "stop-first"

[service.worker.template]
image = "worker:3"

[service.worker.template.restart]
policy = "always"
interval = "10m"
"""


def test_a_file_becomes_validated_specs_with_friendly_units() -> None:
    web, worker = load_manifest(WEB_TOML, "web.toml")
    assert web == ServiceSpec(
        name="web",
        template=TaskTemplate(
            image="nginx:1.27",
            memory=64 << 20,
            cpu=0.25,
            env={"MODE": "prod", "dotted.key": "kept"},
            command=["nginx", "-g", "daemon off;"],
            stop_grace=30.0,
            health=HealthCheck(kind="http", port=80, path="/health", interval=2.0, start_period=60.0),
        ),
        replicas=3,
        ports=[ServicePort(published=8080, target=80), ServicePort(published=8443, target=443)],
        placement=Placement(spread="zone", constraints={"disk": "ssd"}),
        update=UpdatePolicy(parallelism=2, delay=5.0, order="stop-first"),
    )
    assert worker == ServiceSpec(
        name="worker",
        template=TaskTemplate(image="worker:3", restart=RestartSpec(policy="always", interval=600.0)),
    )


def test_specs_written_as_toml_read_back_the_same() -> None:
    specs = load_manifest(WEB_TOML)
    text = manifest_text(specs)
    assert load_manifest(text) == specs
    assert "memory = 67108864" in text and 'kind = "http"' in text
    assert 'order = "stop-first"' in text and "failure_action" not in text  # defaults left out
    minimal = ServiceSpec(name="tiny", template=TaskTemplate(image="busybox"))
    assert load_manifest(manifest_text([minimal])) == [minimal]
    assert manifest_text([minimal]) == '[service.tiny]\n\n[service.tiny.template]\nimage = "busybox"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[service.web", "f.toml: not valid TOML"),
        ("title = 'x'", "f.toml: unknown table 'title'"),
        ("", "f.toml: declares no service"),
        ("[service.web]\nreplicas = 1", "f.toml: service.web.template: is required"),
        (
            "[service.web]\nreplicas = -1\n[service.web.template]\nimage = 'x'",
            "service.web.replicas: must be >= 0",
        ),
        ("[service.Web.template]\nimage = 'x'", "service.Web: 'Web' is not a valid service name"),
        (
            "[service.web]\nname = 'api'\n[service.web.template]\nimage = 'x'",
            "service.web.name: 'api' differs",
        ),
        (
            "[service.web.template]\nimage = 'x'\nmemory = 'lots'",
            "service.web.template.memory: cannot parse size",
        ),
        ("[service.web.template]\nimage = 'x'\ncolour = 'red'", "service.web.template.colour: unknown field"),
        (
            "[service.web]\nports = ['8080:80', '8080:81']\n[service.web.template]\nimage = 'x'",
            "service.web.ports: published port 8080/tcp is given twice",
        ),
        (
            "[service.web.template]\nimage = 'x'\n[service.web.template.health]\nkind = 'tcp'",
            "service.web.template.health.port: tcp checks need the container port",
        ),
        (
            "[service.web.template]\nimage = 'x'\n[service.web.update]\ndelay = 'soon'",
            "service.web.update.delay: cannot parse duration 'soon'",
        ),
    ],
)
def test_bad_files_are_refused_naming_table_and_field(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(text, "f.toml")
    assert message in str(caught.value)


def test_the_plan_creates_updates_and_leaves_alone() -> None:
    web, worker = load_manifest(WEB_TOML)
    held_web = Service(name="web", spec=msgspec.structs.replace(web, replicas=1), version=7)
    held_worker = Service(name="worker", spec=worker, version=2)
    other = Service(name="other", spec=ServiceSpec(name="other", template=TaskTemplate(image="o")))
    changes = plan([held_web, held_worker, other], [web, worker])
    assert [(c.name, c.action, c.expected_version) for c in changes] == [
        ("web", UPDATE, 7),
        ("worker", UNCHANGED, 2),
    ]
    assert changes[0].differences == ["~ replicas: 1 -> 3"]
    created = plan([], [worker])
    assert created[0].action == CREATE
    assert created[0].differences == [
        "+ template.image: 'worker:3'",
        "+ template.restart.policy: 'always'",
        "+ template.restart.interval: 600.0",
    ]
    shown = format_plan(changes)
    assert shown.splitlines() == [
        "~ service web: update (from version 7)",
        "    ~ replicas: 1 -> 3",
        "  service worker: unchanged",
    ]


def test_differences_name_nested_fields() -> None:
    old = ServiceSpec(name="web", template=TaskTemplate(image="a", env={"A": "1"}))
    new = ServiceSpec(
        name="web",
        template=TaskTemplate(image="b", env={"A": "2"}, health=HealthCheck(kind="tcp", port=80)),
        update=UpdatePolicy(parallelism=3),
    )
    lines = differences(old, new)
    assert "~ template.image: 'a' -> 'b'" in lines
    assert '~ template.env: {"A": "1"} -> {"A": "2"}' in lines
    assert "~ template.health.kind: None -> 'tcp'" in lines
    assert "~ update.parallelism: 1 -> 3" in lines
    assert differences(old, old) == []
