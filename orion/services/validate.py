"""What msgspec's types cannot say about a ``ServiceSpec``: a DNS-label name, published ports
given once, a health check whose fields fit its kind, a usable image and command.

``validate_spec`` raises ``SpecError`` (a ``ValueError``) naming the field by its path in the
spec ("template.health.port") and the reason. The same check runs in every front end (client,
CLI, REST, ``apply -f``), in the API actor and in the FSM, so a spec the FSM holds always
passed it. Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

from orion.services.spec import MAX_REPLICAS, ServiceSpec, TaskTemplate, UpdatePolicy
from orion.volumes.spec import VolumeSpecError, validate_mounts

NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MAX_NAME = 63
_IMAGE_PATTERN = re.compile(r"^[^\s]+$")
MAX_IMAGE = 256
MAX_PORTS = 64


class SpecError(ValueError):
    """A service spec refused: ``field`` is its path in the spec, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a service, or None. A DNS label, so it can name hosts later,
    and never with a dot: task names are ``<service>.<slot>``."""
    if not name:
        return "must not be empty"
    if len(name) > MAX_NAME:
        return f"must be at most {MAX_NAME} characters, got {len(name)}"
    if not NAME_PATTERN.match(name):
        return (
            f"{name!r} is not a valid service name: use lowercase letters, digits and dashes, "
            "starting and ending with a letter or digit"
        )
    return None


def validate_spec(spec: ServiceSpec) -> ServiceSpec:
    """``spec`` when it is valid; otherwise ``SpecError`` naming the first bad field."""
    problem = name_problem(spec.name)
    if problem:
        raise SpecError("name", problem)
    if not 0 <= spec.replicas <= MAX_REPLICAS:
        bound = ">= 0" if spec.replicas < 0 else f"<= {MAX_REPLICAS}"
        raise SpecError("replicas", f"must be {bound}, got {spec.replicas}")
    _check_template(spec.template)
    _check_ports(spec)
    _check_health(spec)
    _check_placement(spec)
    _check_policy("update", spec.update)
    _check_policy("rollback", spec.rollback)
    try:
        validate_mounts(spec.template.volumes, "template.volumes")
    except VolumeSpecError as exc:
        raise SpecError(exc.field, exc.reason) from None
    return spec


def spec_from_builtins(value: Any) -> ServiceSpec:
    """A validated ServiceSpec from plain data (parsed JSON or TOML); SpecError otherwise."""
    try:
        spec = msgspec.convert(value, ServiceSpec)
    except msgspec.ValidationError as exc:
        raise spec_error_of(exc) from None
    return validate_spec(spec)


# The words a field of a Literal type takes, named when another is given.
CHOICES = {
    "order": ("start-first", "stop-first"),
    "failure_action": ("rollback", "pause", "continue"),
    "kind": ("http", "tcp", "exec"),
    "protocol": ("tcp",),
    "policy": ("on-failure", "always", "no"),
    "mode": ("fail", "delay"),
}
_AT_PATH = re.compile(r"^(?P<reason>.*) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_BOUND = re.compile(r"^Expected `\w+` (?P<op>>=|<=|>|<) (?P<value>\S+)$")


def spec_error_of(exc: msgspec.ValidationError) -> SpecError:
    """msgspec's "Expected `int` >= 0 - at `$.replicas`" as field "replicas", reason "must be >= 0"."""
    text = str(exc)
    field, reason = "", text
    match = _AT_PATH.match(text)
    if match:
        field = match.group("path").lstrip(".").replace("[...]", "")
        reason = match.group("reason")
    if (bound := _BOUND.match(reason)) is not None:
        reason = f"must be {bound.group('op')} {bound.group('value')}"
    elif (missing := _MISSING.match(reason)) is not None:
        field = f"{field}.{missing.group('field')}" if field else missing.group("field")
        reason = "is required"
    elif reason.startswith("Invalid enum value") and field.rpartition(".")[2] in CHOICES:
        given = reason.removeprefix("Invalid enum value ").strip()
        reason = f"{given} is not one of {', '.join(CHOICES[field.rpartition('.')[2]])}"
    elif reason.startswith("Object contains unknown field"):
        unknown = reason.split("`")[1]
        field = f"{field}.{unknown}" if field else unknown
        reason = "unknown field"
    return SpecError(field, reason)


def _check_template(template: TaskTemplate) -> None:
    image = template.image
    if not image:
        raise SpecError("template.image", "must not be empty")
    if len(image) > MAX_IMAGE or not _IMAGE_PATTERN.match(image):
        raise SpecError(
            "template.image", f"{image!r} is not an image reference (no spaces, at most {MAX_IMAGE})"
        )
    if template.command is not None:
        if not template.command:
            raise SpecError("template.command", "must not be empty (leave it out to run the image's own)")
        if not template.command[0]:
            raise SpecError("template.command", "the program (first argument) must not be empty")
    for key in template.env:
        if not key or "=" in key:
            raise SpecError("template.env", f"variable name {key!r} must be non-empty and without '='")
    if not math.isfinite(template.cpu):
        raise SpecError("template.cpu", "must be a finite number of cores")


def _check_ports(spec: ServiceSpec) -> None:
    if len(spec.ports) > MAX_PORTS:
        raise SpecError("ports", f"at most {MAX_PORTS} published ports, got {len(spec.ports)}")
    seen: set[tuple[int, str]] = set()
    for port in spec.ports:
        key = (port.published, port.protocol)
        if key in seen:
            raise SpecError("ports", f"published port {port.published}/{port.protocol} is given twice")
        seen.add(key)


def _check_health(spec: ServiceSpec) -> None:
    check = spec.template.health
    if check is None:
        return
    field = "template.health"
    if check.kind in ("http", "tcp"):
        # Any container port will do: one that is not among the published targets gets a
        # host port of its own so the node can reach it.
        if not 1 <= check.port <= 65535:
            targets = sorted({p.target for p in spec.ports})
            hint = f" (the published targets are {targets})" if targets else ""
            raise SpecError(f"{field}.port", f"{check.kind} checks need the container port to check{hint}")
        if check.command:
            raise SpecError(f"{field}.command", f"only exec checks run a command, this one is {check.kind}")
    else:
        if not check.command or not check.command[0]:
            raise SpecError(f"{field}.command", "an exec check needs the command to run in the container")
        if check.port:
            raise SpecError(f"{field}.port", "an exec check has no port (it runs a command)")
    if check.kind != "http":
        if check.path != "/":
            raise SpecError(f"{field}.path", f"only http checks have a path, this one is {check.kind}")
        if check.expect_status != 200:
            raise SpecError(
                f"{field}.expect_status", f"only http checks expect a status, this one is {check.kind}"
            )
    elif not check.path.startswith("/"):
        raise SpecError(f"{field}.path", f"must start with '/', got {check.path!r}")
    for name in ("interval", "timeout", "start_period"):
        if not math.isfinite(getattr(check, name)):
            raise SpecError(f"{field}.{name}", "must be a finite duration")


def _check_placement(spec: ServiceSpec) -> None:
    placement = spec.placement
    if placement.spread and not re.match(r"^[A-Za-z0-9_.-]{1,128}$", placement.spread):
        raise SpecError("placement.spread", f"{placement.spread!r} is not a node tag name")
    for key in placement.constraints:
        if not key:
            raise SpecError("placement.constraints", "a constraint needs a tag name (KEY=VALUE)")


def _check_policy(field: str, policy: UpdatePolicy) -> None:
    for name in ("delay", "monitor", "max_failure_ratio"):
        if not math.isfinite(getattr(policy, name)):
            raise SpecError(f"{field}.{name}", "must be a finite number")
