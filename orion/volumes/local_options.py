"""The options of the Docker ``local`` volume driver, checked when a volume is created (by the
spec's validation, before any node is involved) and used by the driver itself."""

from __future__ import annotations

import re

OPTION_KEYS = ("type", "o", "device")
_TYPE = re.compile(r"^[a-z0-9]{1,16}$")


def binds(options: dict[str, str]) -> bool:
    return "bind" in options.get("o", "").split(",")


def option_problem(key: str, value: str, options: dict[str, str]) -> str:
    """Why ``key=value`` is not a valid local-driver option ("" when it is)."""
    if key not in OPTION_KEYS:
        return f"unknown option of the local driver (known: {', '.join(OPTION_KEYS)})"
    if key == "type" and not _TYPE.match(value):
        return f"{value!r} is not a filesystem type (e.g. tmpfs, none)"
    if key == "device" and binds(options) and not value.startswith("/"):
        return f"a bind device must be an absolute host path, got {value!r}"
    if key == "o" and len(value) > 256:
        return "at most 256 characters"
    if key == "type" and value == "none" and not binds(options):
        return "type=none needs o=bind and a device (a host directory)"
    return ""
