"""``orion apply -f web.toml``: services declared in a TOML file, and what it takes to match them.

One ``[service.NAME]`` table per service, mirroring ``ServiceSpec`` with friendly values::

    [service.web]
    replicas = 3
    ports = ["8080:80"]            # or [{published = 8080, target = 80}]

    [service.web.template]
    image = "nginx:1.27"
    memory = "64MiB"
    env = { MODE = "prod" }

    [service.web.template.health]
    kind = "http"
    port = 80
    path = "/"
    interval = "2s"

    [service.web.update]
    parallelism = 2
    delay = "5s"

``load_manifest`` reads such a file into validated specs (``ManifestError`` names the table and
field: "service.web.template.memory: ..."); ``manifest_text`` writes specs back (fields at
their defaults left out); ``plan`` compares the specs with the services the cluster holds and
says, service by service, whether it would be created, updated (and which fields change) or
left alone. Services the cluster holds that the file does not name are left alone: ``apply``
never removes a service (``orion service rm`` does). Pure: no I/O beyond the text given.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from orion.api.protocol import RequestError
from orion.api.requests import service_spec
from orion.model import HealthCheck, RestartSpec
from orion.services.spec import Service, ServiceSpec, TaskTemplate

CREATE = "create"
UPDATE = "update"
UNCHANGED = "unchanged"


class ManifestError(ValueError):
    """A manifest that cannot be applied; the message names the table and field."""


@dataclass(frozen=True)
class Change:
    """What applying the manifest does to one service."""

    name: str
    action: str  # CREATE, UPDATE or UNCHANGED
    spec: ServiceSpec
    differences: list[str] = field(default_factory=list)  # "template.image: 'a' -> 'b'"
    expected_version: int = 0  # the version the update was planned against


def load_manifest(text: str, source: str = "manifest") -> list[ServiceSpec]:
    """The services declared in TOML ``text``, in file order; ManifestError when the text is
    not TOML, declares nothing, or a spec is not valid."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{source}: not valid TOML: {exc}") from None
    unknown = sorted(set(document) - {"service"})
    if unknown:
        raise ManifestError(f"{source}: unknown table {unknown[0]!r} (services go in [service.NAME] tables)")
    services = document.get("service", {})
    if not isinstance(services, dict) or not services:
        raise ManifestError(f"{source}: declares no service (add a [service.NAME] table)")
    specs = []
    for name, table in services.items():
        where = f"service.{name}"
        if not isinstance(table, dict):
            raise ManifestError(f"{source}: {where} must be a table")
        fields = dict(table)
        if fields.setdefault("name", name) != name:
            raise ManifestError(f"{source}: {where}.name: {fields['name']!r} differs from the table's name")
        try:
            specs.append(service_spec(fields))
        except RequestError as exc:
            path = f"{where}.{exc.field}" if exc.field and exc.field != "name" else where
            raise ManifestError(f"{source}: {path}: {exc.reason}") from None
    return specs


def plan(current: Iterable[Service], wanted: Iterable[ServiceSpec]) -> list[Change]:
    """Per wanted service: create it, update it (what differs), or nothing to do."""
    held = {service.name: service for service in current}
    changes = []
    for spec in wanted:
        service = held.get(spec.name)
        if service is None:
            changes.append(Change(spec.name, CREATE, spec, differences(None, spec)))
        elif service.spec == spec:
            changes.append(Change(spec.name, UNCHANGED, spec, [], service.version))
        else:
            changes.append(Change(spec.name, UPDATE, spec, differences(service.spec, spec), service.version))
    return changes


def differences(old: ServiceSpec | None, new: ServiceSpec) -> list[str]:
    """Field by field, what ``new`` changes of ``old`` ("+ field: value" for a new service)."""
    new_fields = _flat(msgspec.to_builtins(new))
    if old is None:
        defaults = _flat(msgspec.to_builtins(_defaults_like(new)))
        return [
            f"+ {path}: {_shown(value)}"
            for path, value in new_fields.items()
            if path != "name" and (value != defaults.get(path) or path == "template.health.kind")
        ]
    old_fields = _flat(msgspec.to_builtins(old))
    lines = []
    for path in dict.fromkeys([*old_fields, *new_fields]):
        before, after = old_fields.get(path), new_fields.get(path)
        if before != after:
            lines.append(f"~ {path}: {_shown(before)} -> {_shown(after)}")
    return lines


def format_plan(changes: list[Change]) -> str:
    """The diff ``apply --dry-run`` prints."""
    lines = []
    for change in changes:
        if change.action == UNCHANGED:
            lines.append(f"  service {change.name}: unchanged")
            continue
        verb = "create" if change.action == CREATE else f"update (from version {change.expected_version})"
        lines.append(f"{'+' if change.action == CREATE else '~'} service {change.name}: {verb}")
        lines.extend(f"    {line}" for line in change.differences)
    return "\n".join(lines)


def manifest_text(specs: Iterable[ServiceSpec]) -> str:
    """TOML that ``load_manifest`` reads back into the same specs; defaults are left out."""
    out: list[str] = []
    for spec in specs:
        fields = msgspec.to_builtins(spec)
        defaults = msgspec.to_builtins(_defaults_like(spec))
        fields.pop("name")
        fields["ports"] = [f"{p['published']}:{p['target']}/{p['protocol']}" for p in fields["ports"]]
        defaults["ports"] = []
        _table(out, f"service.{spec.name}", fields, defaults, always=True)
    return "\n".join(out).strip() + "\n"


def _defaults_like(spec: ServiceSpec) -> ServiceSpec:
    """A spec of defaults only, with a health check and restart policy where ``spec`` has one
    (of the same kind), so that only what differs from their defaults shows."""
    health = spec.template.health
    template = TaskTemplate(
        image="",
        health=HealthCheck(kind=health.kind) if health is not None else None,
        restart=RestartSpec() if spec.template.restart is not None else None,
    )
    return ServiceSpec(name=spec.name, template=template)


def _table(out: list[str], name: str, fields: Mapping[str, Any], defaults: Any, always: bool = False) -> None:
    scalars = []
    nested = []
    for key, value in fields.items():
        default = defaults.get(key) if isinstance(defaults, Mapping) else None
        is_table = isinstance(value, dict) and key not in ("env", "constraints")
        if value == default and not is_table and not (always and key in ("image", "kind")):
            continue
        if is_table:
            nested.append((key, value, default or {}))
            continue
        if value is not None:
            scalars.append(f"{_key(key)} = {_value(value)}")
    if scalars or always:
        out.append(f"[{name}]")
        out.extend(scalars)
        out.append("")
    for key, value, default in nested:
        # A health check or restart policy all at defaults still needs its table (and kind).
        _table(out, f"{name}.{_key(key)}", value, default, always=key in ("template", "health", "restart"))


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"template": {"image": "a"}} -> {"template.image": "a"}; user maps and lists stay whole."""
    if isinstance(value, dict) and not prefix.endswith(("env", "constraints")):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flat(item, f"{prefix}.{key}" if prefix else key))
        if value or not prefix:
            return flat
    return {prefix: value}


def _shown(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return repr(value)
