"""HAProxy's configuration for one node's ingress (pure).

One ``listen`` section per published port, bound on the node's ingress address, in TCP mode,
with numbered server slots: the ready endpoints of the routing table first, then spare slots
in maintenance that the runtime API points at new endpoints without a reload. The file is
rendered at start and when the set of published ports changes (a reload); between those, the
servers change only through the runtime API, and the file is not kept up to date with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orion.ingress.routing import UNSET_ADDRESS, Mode, RoutingTable, backend_name, slot_name

MIN_SLOTS = 8  # server slots per backend at least; more are added at runtime (``add server``)


@dataclass(frozen=True, slots=True)
class HAProxyTuning:
    connect_timeout: float = 2.0  # a task that neither accepts nor refuses is given up on and retried
    idle_timeout: float = 600.0  # ``timeout client`` and ``timeout server``: an idle connection's life
    fin_timeout: float = 10.0  # a half-closed connection's life
    retries: int = 3  # connection attempts after the first, each to another task (redispatch)
    # After a reload (or a soft stop), the old process serves its established connections for
    # at most this long before it closes them.
    hard_stop_after: float = 600.0


def render_config(
    address: str, admin_socket: Path, table: RoutingTable, tuning: HAProxyTuning = HAProxyTuning()
) -> str:
    """The configuration listening on ``address:published`` for every port of ``table``."""
    if not table:
        raise ValueError("render_config: no published port (HAProxy refuses a configuration without one)")
    lines = [
        "# Rendered by Orion's ingress (orion/ingress/haproxy_config.py) at start and on reloads;",
        "# servers change at runtime through the stats socket, not in this file.",
        "global",
        # expose-fd listeners: a reloaded process takes the listening sockets over from the old
        # one, so no connection is refused while it starts.
        f"    stats socket {admin_socket} mode 600 level admin expose-fd listeners",
        "    stats timeout 10s",
        f"    hard-stop-after {_ms(tuning.hard_stop_after)}",
        "",
        "defaults",
        "    mode tcp",
        f"    timeout connect {_ms(tuning.connect_timeout)}",
        f"    timeout client {_ms(tuning.idle_timeout)}",
        f"    timeout server {_ms(tuning.idle_timeout)}",
        f"    timeout client-fin {_ms(tuning.fin_timeout)}",
        f"    timeout server-fin {_ms(tuning.fin_timeout)}",
        # A connection refused by a task that just stopped is tried again on another one.
        f"    retries {tuning.retries}",
        "    option redispatch 1",
        "    balance roundrobin",
    ]
    for published in sorted(table):
        ready = [endpoint for endpoint in table[published] if endpoint.mode == Mode.READY]
        slots = max(MIN_SLOTS, 2 * len(ready))
        lines += ["", f"listen {backend_name(published)}", f"    bind {_host(address)}:{published}"]
        for number in range(1, slots + 1):
            if number <= len(ready):
                endpoint = ready[number - 1]
                lines.append(f"    server {slot_name(number)} {_host(endpoint.address)}:{endpoint.port}")
            else:
                host, port = UNSET_ADDRESS
                lines.append(f"    server {slot_name(number)} {host}:{port} disabled")
    return "\n".join(lines) + "\n"


def _ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address
