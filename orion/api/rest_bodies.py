"""Bodies of the REST mirror that are not requests of the ZeroMQ protocol (orion/api/protocol.py):
decoded by orion/api/http.py, described by orion/api/openapi.py."""

from __future__ import annotations

from typing import Any

import msgspec


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
