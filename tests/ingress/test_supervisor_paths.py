"""Where the supervisor puts HAProxy's unix sockets: HAProxy refuses paths over 97 bytes."""

from __future__ import annotations

import stat
from pathlib import Path

from orion.ingress.supervisor import HAProxySupervisor


def test_sockets_live_in_the_run_dir_when_the_path_fits(tmp_path: Path) -> None:
    supervisor = HAProxySupervisor("haproxy", tmp_path / "ingress")
    assert supervisor.admin_socket == tmp_path / "ingress" / "admin.sock"
    assert supervisor.master_socket.parent == tmp_path / "ingress"


def test_a_long_run_dir_gets_a_private_short_socket_dir_removed_at_stop(tmp_path: Path) -> None:
    run_dir = tmp_path / ("d" * 90) / "ingress"
    supervisor = HAProxySupervisor("haproxy", run_dir)
    socket_dir = supervisor.admin_socket.parent
    assert socket_dir != run_dir and len(str(supervisor.master_socket)) <= 97
    assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700  # the admin socket steers traffic
    assert supervisor.config_path.parent == run_dir  # everything else stays in the data dir
    supervisor.stop()
    assert not socket_dir.exists()
