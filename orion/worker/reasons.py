"""Turn Docker's error texts into short reasons a user can act on.

Docker reports a taken host port in two ways: "port is already allocated" when another
container holds it, "address already in use" when a host process does. Both mean the same
thing to the user.
"""

from __future__ import annotations

import re

_PORT_ALLOCATED = re.compile(
    r"Bind for (?P<ip>[0-9a-fA-F.:\[\]]+?):(?P<port>\d+) failed: port is already allocated"
)
_PORT_IN_USE = re.compile(
    r"listen tcp[46]? (?P<ip>[0-9a-fA-F.:\[\]]+?):(?P<port>\d+): bind: address already in use"
)
_NO_EXECUTABLE = re.compile(r'exec: "(?P<command>[^"]+)": executable file not found')
_NO_SUCH_FILE = re.compile(r'exec: "(?P<command>[^"]+)": stat [^:]+: no such file or directory')


def port_in_use(explanation: str) -> tuple[str, int] | None:
    """(host ip, port) when Docker refused a container because a host port is taken."""
    for pattern in (_PORT_ALLOCATED, _PORT_IN_USE):
        match = pattern.search(explanation)
        if match:
            return match["ip"].strip("[]"), int(match["port"])
    return None


def start_failure(explanation: str, image: str) -> str:
    """A reason for a container that Docker would not create or start."""
    for pattern in (_PORT_ALLOCATED, _PORT_IN_USE):
        match = pattern.search(explanation)
        if match:
            return f"port {match['port']} on {match['ip']} already in use"
    for pattern in (_NO_EXECUTABLE, _NO_SUCH_FILE):
        match = pattern.search(explanation)
        if match:
            return f"command {match['command']!r} not found in image {image}"
    return f"docker refused the container: {explanation.strip()}"


def pull_failure(image: str, explanation: str) -> str:
    return f"cannot pull image {image}: {explanation.strip()}"
