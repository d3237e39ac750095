"""One health check of one task, as the node running it performs it (blocking: run it on a
thread, never on an actor). orion/services/health.py turns the results into health.

- ``http``: GET ``http://host_ip:host_port/path``, where ``host_port`` is the port the task
  publishes for the check's container port on its node's address; passes when the status is
  ``expect_status``.
- ``tcp``: a connection to that port that the other side keeps open. Docker's userland proxy
  accepts every connection on a published port and closes it at once when nothing listens in
  the container, so a bare connect would pass a dead server: a connection closed within
  ``SETTLE_S`` fails.
- ``exec``: the command runs inside the task's container (Docker's exec); exit code 0 passes.

Each waits at most the check's ``timeout``; the tracker also fails a check that took longer.
"""

from __future__ import annotations

import http.client
import socket
import time
from dataclasses import dataclass

import docker.errors

from orion.model import HealthCheck, Task
from orion.worker.docker_worker import DockerWorker, container_name

SETTLE_S = 0.2  # how long a tcp check waits for a proxy's "nothing listens" close
_EXEC_POLL_S = (0.01, 0.1)  # first and longest wait between looks at a running exec
_BODY_LIMIT = 64 * 1024  # an http check reads at most this much of the answer


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    passed: bool
    detail: str


class HealthProber:
    """Runs checks of this node's tasks: ``http``/``tcp`` on the task's published host port,
    ``exec`` in its container through ``worker``'s Docker client."""

    def __init__(self, worker: DockerWorker) -> None:
        self.worker = worker

    def probe(self, task: Task, check: HealthCheck) -> ProbeOutcome:
        try:
            if check.kind == "http":
                return self._http(task, check)
            if check.kind == "tcp":
                return self._tcp(task, check)
            return self._exec(task, check)
        except OSError as exc:
            return ProbeOutcome(False, _os_error(exc))

    def _target(self, task: Task, check: HealthCheck) -> tuple[str, int] | ProbeOutcome:
        key = f"{check.port}/tcp"
        port = task.host_ports.get(key)
        if not port:
            return ProbeOutcome(False, f"the task publishes no host port for {key}")
        host = task.host_ip or self.worker.host_ip
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"  # published on every address: loopback is one of them
        return host, port

    def _http(self, task: Task, check: HealthCheck) -> ProbeOutcome:
        target = self._target(task, check)
        if isinstance(target, ProbeOutcome):
            return target
        host, port = target
        connection = http.client.HTTPConnection(host, port, timeout=check.timeout)
        try:
            connection.request(
                "GET", check.path, headers={"User-Agent": "orion-health", "Connection": "close"}
            )
            response = connection.getresponse()
            response.read(_BODY_LIMIT)
            status = response.status
        except http.client.HTTPException as exc:
            return ProbeOutcome(False, f"bad answer from {host}:{port}: {type(exc).__name__} {exc}".rstrip())
        finally:
            connection.close()
        if status != check.expect_status:
            return ProbeOutcome(False, f"status {status}, expected {check.expect_status}")
        return ProbeOutcome(True, f"status {status}")

    def _tcp(self, task: Task, check: HealthCheck) -> ProbeOutcome:
        target = self._target(task, check)
        if isinstance(target, ProbeOutcome):
            return target
        host, port = target
        with socket.create_connection((host, port), timeout=check.timeout) as connection:
            connection.settimeout(min(SETTLE_S, check.timeout / 2))
            try:
                first = connection.recv(1)
            except TimeoutError:
                return ProbeOutcome(True, f"{host}:{port} accepts connections")
        if first:
            return ProbeOutcome(True, f"{host}:{port} accepts connections")
        return ProbeOutcome(False, f"{host}:{port} closed the connection at once (nothing listening?)")

    def _exec(self, task: Task, check: HealthCheck) -> ProbeOutcome:
        if not check.command:
            return ProbeOutcome(False, "the exec check has no command")
        cluster_id = self.worker.cluster_id
        if not cluster_id:
            return ProbeOutcome(False, "this node does not know its cluster id yet")
        name = container_name(self.worker.node_id, task.id, cluster_id)
        api = self.worker.client.api
        deadline = time.monotonic() + check.timeout
        try:
            exec_id = api.exec_create(name, check.command, stdout=False, stderr=False)["Id"]
            api.exec_start(exec_id, detach=True)
            pause = _EXEC_POLL_S[0]
            while True:
                state = api.exec_inspect(exec_id)
                if not state.get("Running") and state.get("ExitCode") is not None:
                    code = int(state["ExitCode"])
                    return ProbeOutcome(code == 0, f"exit code {code}")
                left = deadline - time.monotonic()
                if left <= 0:
                    # Docker cannot kill an exec; the command runs on, the check failed.
                    return ProbeOutcome(False, f"no exit within {check.timeout:g}s")
                time.sleep(min(pause, left))
                pause = min(pause * 2, _EXEC_POLL_S[1])
        except docker.errors.NotFound:
            return ProbeOutcome(False, "the task's container does not exist")
        except docker.errors.APIError as exc:
            return ProbeOutcome(False, f"docker exec failed: {exc.explanation or exc}")


def _os_error(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    return exc.strerror or str(exc) or type(exc).__name__
