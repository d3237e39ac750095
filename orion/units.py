"""Parsing of human sizes ("256MiB") and durations ("5s") used by config, API and CLI."""

from __future__ import annotations

import re

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}
_NUMBER_UNIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: int | float | str, field: str = "size") -> int:
    """Bytes from an int or a string such as "256MiB" or "1.5GB"; errors name the field."""
    if isinstance(value, bool):
        raise ValueError(f"{field}: expected a size, got a boolean")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{field}: must be >= 0, got {value}")
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected bytes or a string like '256MiB', got {type(value).__name__}")
    match = _NUMBER_UNIT.match(value)
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"{field}: cannot parse size {value!r} (use bytes or e.g. '256MiB', '2GB')")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def parse_duration(value: int | float | str, field: str = "duration") -> float:
    """Seconds from a number or a string such as "5s", "250ms", "2m"."""
    if isinstance(value, bool):
        raise ValueError(f"{field}: expected a duration, got a boolean")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{field}: must be >= 0, got {value}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected seconds or a string like '5s', got {type(value).__name__}")
    match = _NUMBER_UNIT.match(value)
    if not match or match.group(2).lower() not in _DURATION_UNITS:
        raise ValueError(f"{field}: cannot parse duration {value!r} (use e.g. '5s', '250ms', '2m')")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


def format_size(n: int | float) -> str:
    """Binary units with one decimal, as used in pending reasons: '15.9 GiB'."""
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"
