"""Bodies of the REST mirror that are not requests of the ZeroMQ protocol (orion/api/protocol.py):
decoded by orion/api/http.py, described by orion/api/openapi.py."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from orion.api.protocol import RequestError


class RestSubmit(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """The body of POST /tasks: the PRD's payload plus Orion's optional fields."""

    image: str
    id: str | None = None
    name: str | None = None
    memory: int | str = 0
    cpu: float = 0.0
    disk: int | str = 0
    port_bindings: dict[str, str | int | None] = {}  # "" / 0 / null: any free host port
    restart: str | dict[str, Any] | None = None  # "always" or {"policy": ..., "interval": "5m", ...}
    node_selectors: dict[str, str] = {}
    command: list[str] | None = None
    env: dict[str, str] = {}
    volumes: dict[str, str] | list[str] | None = None  # {"data": "/var/lib/app"} or ["data:/x:ro"]


def json_object(raw: bytes) -> dict[str, Any]:
    """A REST body as a JSON object ({} when empty); RequestError for anything else."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise RequestError("", f"malformed JSON: {exc}") from None
    if not isinstance(value, dict):
        raise RequestError("", "the body must be a JSON object")
    return value
