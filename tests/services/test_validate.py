"""What validate_spec refuses beyond msgspec's types, and how it names the field."""

from __future__ import annotations

import msgspec
import pytest

from orion.model import HealthCheck
from orion.services.spec import ServicePort, ServiceSpec, TaskTemplate, UpdatePolicy
from orion.services.validate import SpecError, name_problem, spec_from_builtins, validate_spec


def spec(**fields: object) -> ServiceSpec:
    template = fields.pop("template", TaskTemplate(image="nginx"))
    return ServiceSpec(name=str(fields.pop("name", "web")), template=template, **fields)  # type: ignore[arg-type]


def health(**fields: object) -> TaskTemplate:
    return TaskTemplate(image="nginx", health=HealthCheck(**fields))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["web", "a", "web-2", "0web", "a" * 63])
def test_good_names(name: str) -> None:
    assert name_problem(name) is None
    assert validate_spec(spec(name=name)).name == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "must not be empty"),
        ("a" * 64, "at most 63 characters"),
        ("Web", "not a valid service name"),
        ("web.1", "not a valid service name"),
        ("web_1", "not a valid service name"),
        ("-web", "not a valid service name"),
        ("web-", "not a valid service name"),
    ],
)
def test_bad_names(name: str, reason: str) -> None:
    with pytest.raises(SpecError) as caught:
        validate_spec(spec(name=name))
    assert caught.value.field == "name" and reason in caught.value.reason


@pytest.mark.parametrize(
    ("bad", "field", "reason"),
    [
        (spec(replicas=-1), "replicas", "must be >= 0"),
        (spec(replicas=1001), "replicas", "must be <= 1000"),
        (spec(template=TaskTemplate(image="")), "template.image", "must not be empty"),
        (spec(template=TaskTemplate(image="a b")), "template.image", "not an image reference"),
        (spec(template=TaskTemplate(image="x", command=[])), "template.command", "must not be empty"),
        (spec(template=TaskTemplate(image="x", env={"A=B": "c"})), "template.env", "without '='"),
        (
            spec(ports=[ServicePort(published=80, target=80), ServicePort(published=80, target=81)]),
            "ports",
            "published port 80/tcp is given twice",
        ),
        (spec(template=health(kind="http")), "template.health.port", "http checks need the container port"),
        (spec(template=health(kind="tcp")), "template.health.port", "tcp checks need"),
        (spec(template=health(kind="exec")), "template.health.command", "an exec check needs the command"),
        (
            spec(template=health(kind="exec", command=["true"], port=80)),
            "template.health.port",
            "has no port",
        ),
        (spec(template=health(kind="tcp", port=80, command=["x"])), "template.health.command", "only exec"),
        (spec(template=health(kind="tcp", port=80, path="/x")), "template.health.path", "only http checks"),
        (
            spec(template=health(kind="exec", command=["t"], expect_status=204)),
            "template.health.expect_status",
            "only http",
        ),
        (
            spec(template=health(kind="http", port=80, path="health")),
            "template.health.path",
            "must start with '/'",
        ),
        (spec(update=UpdatePolicy(delay=float("inf"))), "update.delay", "finite"),
    ],
)
def test_bad_specs_name_the_field(bad: ServiceSpec, field: str, reason: str) -> None:
    with pytest.raises(SpecError) as caught:
        validate_spec(bad)
    assert caught.value.field == field
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"{field}: ")


def test_a_health_port_need_not_be_published() -> None:
    """The node gives a checked port that is not among the targets a host port of its own."""
    checked = spec(template=health(kind="tcp", port=9000), ports=[ServicePort(published=8080, target=80)])
    assert validate_spec(checked) == checked
    assert validate_spec(spec(template=health(kind="exec", command=["true"]))).template.health is not None


def test_from_builtins_names_msgspec_errors_too() -> None:
    good = spec_from_builtins(
        {"name": "web", "template": {"image": "x"}, "ports": [{"published": 80, "target": 8080}]}
    )
    assert good.ports == [ServicePort(published=80, target=8080)]
    cases = [
        ({"name": "web", "template": {"image": "x", "memory": -1}}, "template.memory", "must be >= 0"),
        ({"name": "web"}, "template", "is required"),
        ({"name": "web", "template": {"image": "x"}, "colour": 1}, "colour", "unknown field"),
        (
            {"name": "web", "template": {"image": "x"}, "update": {"order": "sideways"}},
            "update.order",
            "'sideways' is not one of start-first, stop-first",
        ),
        ({"name": "web", "template": {"image": "x"}, "replicas": -3}, "replicas", "must be >= 0"),
    ]
    for value, field, reason in cases:
        with pytest.raises(SpecError) as caught:
            spec_from_builtins(value)
        assert (caught.value.field, reason in caught.value.reason) == (field, True), caught.value
    with pytest.raises(SpecError):
        spec_from_builtins(msgspec.to_builtins(spec(name="Bad")))
