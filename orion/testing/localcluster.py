"""Real local clusters of ``orion node`` processes, for tests, the demo, the benchmarks and the
nemesis. Each node is a separate process with its own config file, data directory and free
ports; node ids carry a random prefix so several clusters (and their containers) can share one
Docker engine without touching each other's.

Node N behaves like a host of its own at loopback address 127.0.0.N: it binds and advertises
there, Docker publishes its tasks' ports there ([docker] host_ip) and its ingress listens there,
so every node can publish the same port (a service's published port is open on all of them).
The REST mirror stays on 127.0.0.1 ([security] http_bind's default).

Clusters are secured by default, like a real one: a cluster key pair and a client token
are generated into ``base_dir/secrets`` and every node's TOML points at them; ``client()``
carries the token. ``LocalCluster(..., insecure=True)`` writes ``[security] insecure = true``.

Every cluster has its own key, but all clusters of one process share one client token: the
one in ORION_TOKEN / ORION_TOKEN_FILE if set, else a random one that the first cluster puts
in this process's ORION_TOKEN. So a tool's plain ``Client(cluster.endpoints)`` works as it
would against a real cluster with ORION_TOKEN exported. Likewise the clusters of a process
share one API key pair ([security] api_key, written as secrets/api.key_secret and api.key),
whose public half the first cluster puts in ORION_SERVER_KEY: clients find the server key.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from orion.testing import ports

T = TypeVar("T")


MAX_NODES = 254  # 127.0.0.1 - 127.0.0.254


def node_address(index: int) -> str:
    """Node ``index``'s own loopback address: 127.0.0.``index``."""
    if not 1 <= index <= MAX_NODES:
        raise ValueError(f"node index: a local cluster has nodes 1-{MAX_NODES}, got {index}")
    return f"127.0.0.{index}"


def free_ports(count: int, address: str = "127.0.0.1") -> list[int]:
    """``count`` different node ports free on ``address``, claimed for this process for its
    lifetime (orion/testing/ports.py says why a free port alone was not enough)."""
    return ports.claim(count, address)


def wait_for(
    condition: Callable[[], T | None], timeout: float, interval: float = 0.1, what: str = "condition"
) -> T:
    """Poll ``condition`` until it returns something truthy; raise TimeoutError naming ``what``.

    An exception from ``condition`` is taken as "not yet" (the cluster may be mid-election),
    except an AssertionError: an ``assert`` inside a condition is a test's verdict, and polling
    on would hide the failed check behind a timeout, or pass if a later call went another way.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except AssertionError:
            raise
        except Exception as exc:  # the cluster may be mid-election: keep polling until the deadline
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


UNPLACEABLE = {"role": "nowhere"}  # a node selector no node matches: the task stays Pending, no Docker
ENV_VALUE_MAX = 32 * 1024  # the protocol's limit on one env value
BIG_ENTRY_BYTES = 896_000  # env bytes per big task: the request stays under max_request (1 MiB)


def big_env(nbytes: int) -> dict[str, str]:
    """A task env of ``nbytes`` bytes of incompressible text, in values the protocol accepts
    (so the bytes travel and are stored as they are: no compression makes the state small)."""
    env: dict[str, str] = {}
    while nbytes > 0:
        size = min(ENV_VALUE_MAX, nbytes)
        env[f"BULK_{len(env):03d}"] = secrets.token_urlsafe(size)[:size]
        nbytes -= size
    return env


@dataclass
class LocalNode:
    index: int
    node_id: str
    raft_port: int
    gossip_port: int
    api_port: int
    http_port: int
    config_path: Path
    data_dir: Path
    log_path: Path
    address: str = "127.0.0.1"  # bind, advertise, Docker host_ip and ingress: node_address(index)
    process: subprocess.Popen[bytes] | None = None

    @property
    def api_endpoint(self) -> str:
        return f"{self.address}:{self.api_port}"

    @property
    def gossip_address(self) -> str:
        return f"{self.address}:{self.gossip_port}"

    @property
    def raft_address(self) -> str:
        return f"{self.address}:{self.raft_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


@dataclass
class LocalCluster:
    """``LocalCluster(3, tmp_path).start()`` gives three joined nodes; ``close()`` ends them."""

    size: int
    base_dir: Path
    prefix: str = field(default_factory=lambda: "t" + secrets.token_hex(3))
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # extra TOML sections
    per_node: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)
    nodes: list[LocalNode] = field(default_factory=list)
    insecure: bool = False
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.secrets_dir = self.base_dir / "secrets"
        if not self.insecure:
            self.token = self._ensure_secrets()
        for index in range(1, self.size + 1):
            self._add_node(index)

    # ------------------------------------------------------------------ layout
    def _add_node(self, index: int) -> LocalNode:
        address = node_address(index)
        raft, gossip, api, http = ports.claim(4, address)  # released by close()
        node_id = f"{self.prefix}-n{index}"
        node = LocalNode(
            index=index,
            node_id=node_id,
            raft_port=raft,
            gossip_port=gossip,
            api_port=api,
            http_port=http,
            config_path=self.base_dir / f"{node_id}.toml",
            data_dir=self.base_dir / node_id,
            log_path=self.base_dir / f"{node_id}.log",
            address=address,
        )
        self.nodes.append(node)
        self._write_config(node)
        return node

    def _ensure_secrets(self) -> str:
        """The cluster key and token in secrets_dir (made once, reused on a second LocalCluster)."""
        from orion.security.keys import (
            TOKEN_NAME,
            cluster_key_paths,
            read_tokens,
            write_cluster_key,
            write_token,
        )

        secret_path, _ = cluster_key_paths(self.secrets_dir)
        if not secret_path.exists():
            write_cluster_key(self.secrets_dir)
        token_path = self.secrets_dir / TOKEN_NAME
        if not token_path.exists():
            write_token(token_path, self.token or _process_token())
        self.cluster_key_path, self.token_path = secret_path, token_path
        self.api_key_path = _write_process_api_key(self.secrets_dir)
        return read_tokens(token_path)[0]

    def add_node(self) -> LocalNode:
        return self._add_node(len(self.nodes) + 1)

    def _write_config(self, node: LocalNode) -> None:
        first = self.nodes[0]
        sections: dict[str, dict[str, Any]] = {
            "node": {
                "id": node.node_id,
                "data_dir": str(node.data_dir),
                "bind": node.address,
                "advertise": node.address,
                **_api_bind(node.address),
                "bootstrap": node.index == 1,
                "join": [] if node.index == 1 else [first.gossip_address],
                "log_level": "DEBUG" if os.environ.get("ORION_DEBUG") else "INFO",
            },
            "ports": {
                "raft": node.raft_port,
                "gossip": node.gossip_port,
                "api": node.api_port,
                "http": node.http_port,
            },
            "gossip": {"probe_interval": "500ms", "probe_timeout": "250ms"},
            "raft": {"remove_dead_after": "10s"},
            "scheduler": {"reconcile_interval": "2s", "reschedule_after": "3s"},
            "docker": {"stop_timeout": "1s", "host_ip": node.address},
            "ingress": {"address": node.address},
            "security": (
                {"insecure": True}
                if self.insecure
                else {
                    "cluster_key": str(self.cluster_key_path),
                    "token_file": str(self.token_path),
                    "api_key": str(self.api_key_path),
                }
            ),
        }
        for overrides in (self.settings, self.per_node.get(node.index, {})):
            for section, values in overrides.items():
                sections.setdefault(section, {}).update(values)
        node.config_path.write_text(_to_toml(sections))

    # ------------------------------------------------------------------ processes
    def start(self, wait: bool = True, timeout: float = 60.0) -> LocalCluster:
        for node in self.nodes:
            if not node.running:
                self.start_node(node.index)
        if wait:
            self.wait_ready(timeout)
            gone = [n.node_id for n in self.nodes if not n.running]
            if gone:  # wait_ready only counts running nodes: one that could not start is a failure here
                sys.stderr.write(self.logs())
                raise RuntimeError(f"nodes exited while the cluster formed: {', '.join(gone)} (logs above)")
        return self

    def start_node(self, index: int) -> LocalNode:
        node = self.node(index)
        log = open(node.log_path, "ab")  # noqa: SIM115 - owned by the child process
        node.process = subprocess.Popen(
            [sys.executable, "-m", "orion", "node", "--config", str(node.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        return node

    def kill(self, index: int) -> None:
        """kill -9: no goodbye, no flush beyond what the node already made durable."""
        node = self.node(index)
        if node.running:
            os.kill(node.process.pid, signal.SIGKILL)
            node.process.wait(10)

    def pause(self, index: int) -> None:
        node = self.node(index)
        if node.running:
            os.kill(node.process.pid, signal.SIGSTOP)

    def resume(self, index: int) -> None:
        node = self.node(index)
        if node.running:
            os.kill(node.process.pid, signal.SIGCONT)

    def wipe(self, index: int, restart: bool = True) -> LocalNode:
        """Disk loss: ``kill -9``, delete the data dir, and (by default) start the node again
        with the same config, as an operator replacing a failed disk would."""
        node = self.node(index)
        self.kill(index)
        shutil.rmtree(node.data_dir)
        if restart:
            self.start_node(index)
        return node

    def stop_node(self, index: int, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait: the graceful path (leadership handed over, gossip leave)."""
        node = self.node(index)
        if not node.running:
            return node.process.returncode if node.process else None
        os.kill(node.process.pid, signal.SIGCONT)
        os.kill(node.process.pid, signal.SIGTERM)
        try:
            return node.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(node.process.pid, signal.SIGKILL)
            return node.process.wait(10)

    def close(self) -> None:
        for node in self.nodes:
            if node.running:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(node.process.pid, signal.SIGCONT)
                self.stop_node(node.index, timeout=15.0)
        self.remove_containers()
        ports.release(
            [port for n in self.nodes for port in (n.raft_port, n.gossip_port, n.api_port, n.http_port)]
        )

    def remove_containers(self) -> None:
        """Remove every container that any node of this cluster started (by label)."""
        try:
            import docker

            engine = docker.from_env()
        except Exception:
            return
        try:
            for node in self.nodes:
                for container in engine.containers.list(
                    all=True, filters={"label": f"orion.node.id={node.node_id}"}
                ):
                    with contextlib.suppress(Exception):
                        container.remove(force=True)
        finally:
            engine.close()

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ queries
    def node(self, index: int) -> LocalNode:
        return self.nodes[index - 1]

    @property
    def endpoints(self) -> list[str]:
        return [n.api_endpoint for n in self.nodes]

    def client(self, *indexes: int, timeout: float = 5.0, retries: int = 2) -> Any:
        from orion.client import Client

        chosen = [self.node(i) for i in indexes] if indexes else [n for n in self.nodes if n.running]
        return Client(
            [n.api_endpoint for n in chosen],
            timeout=timeout,
            retries=retries,
            token=self.token or "",
            server_key=_process_api_key().public if self.token else "",
        )

    def auth_headers(self) -> dict[str, str]:
        """HTTP headers for the REST mirror (empty for an insecure cluster)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client_env(self) -> dict[str, str]:
        """Environment for a CLI or tool subprocess: endpoints and the token file."""
        env = {"ORION_ENDPOINTS": ",".join(self.endpoints)}
        if self.token:
            env["ORION_TOKEN_FILE"] = str(self.token_path)
            env["ORION_SERVER_KEY_FILE"] = str(self.api_key_path.with_suffix(".key"))
        return env

    def leaked_secrets(self) -> list[str]:
        """Which secret (a cluster secret key or a client token of any node's config) appears
        in which node log; empty when none does. Used by tests after every cluster run."""
        from orion.config import parse_config
        from orion.security.keys import load_cluster_key, read_tokens

        secrets_found: dict[str, str] = {}  # secret -> what it is (never the secret itself)
        for node in self.nodes:
            config = parse_config(node.config_path.read_text(), self.base_dir)
            if config.insecure:
                continue
            with contextlib.suppress(OSError):
                key = load_cluster_key(config.cluster_key_path)
                secrets_found[key.secret.decode()] = f"the secret key of {config.cluster_key_path}"
            with contextlib.suppress(OSError):
                for token in read_tokens(config.token_path):
                    secrets_found[token] = f"a client token of {config.token_path}"
        leaks = []
        for node in self.nodes:
            if not node.log_path.exists():
                continue
            text = node.log_path.read_text(errors="replace")
            leaks += [
                f"{what} in {node.log_path}" for what, secret in secrets_found.items() if secret in text
            ]
        return leaks

    def raft_status(self, index: int) -> Any:
        with self.client(index, timeout=2.0, retries=1) as client:
            return client.raft()

    def leader_index(self) -> int | None:
        """The index of the node that some running node reports as leader, if all agree."""
        leaders = set()
        for node in self.nodes:
            if not node.running:
                continue
            with contextlib.suppress(Exception):
                status = self.raft_status(node.index)
                if status.leader_id:
                    leaders.add(status.leader_id)
        if len(leaders) != 1:
            return None
        leader = leaders.pop()
        for node in self.nodes:
            if node.node_id == leader and node.running:
                return node.index
        return None

    # ------------------------------------------------------------------ big state, catch-up
    def fill_state(
        self,
        megabytes: float,
        entry_bytes: int = BIG_ENTRY_BYTES,
        prefix: str = "big",
        via: tuple[int, ...] = (),
    ) -> list[str]:
        """Submit unplaceable tasks carrying ``entry_bytes`` of env each (through the nodes
        ``via``, default every running one) until their env adds up to ``megabytes`` MiB; the
        ids, every one acknowledged (a retry reuses the id, so it is never applied twice)."""
        ids: list[str] = []
        total = 0
        with self.client(*via, timeout=15.0, retries=2) as client:
            while total < megabytes * 2**20:
                task_id = f"{prefix}-{len(ids):05d}-{secrets.token_hex(4)}"
                submit = functools.partial(
                    client.submit,
                    "orion-busybox:latest",
                    id=task_id,
                    node_selectors=UNPLACEABLE,
                    env=big_env(entry_bytes),
                )
                wait_for(
                    submit,
                    120,
                    what=f"submit of {task_id} after {total / 2**20:.1f} MiB",
                )
                ids.append(task_id)
                total += entry_bytes
        return ids

    def catch_up_gap(self, index: int, task_ids: list[str]) -> str:
        """What node ``index`` still lacks, for a failure message; empty once it is a voter in
        the leader's configuration, has reached the leader's commit index and serves every one
        of ``task_ids`` from its own replica (stale reads)."""
        from orion.client import NotFound

        node = self.node(index)
        leader = self.leader_index()
        if leader is None:
            return "the running nodes do not agree on one leader"
        leader_status = self.raft_status(leader)
        status = self.raft_status(index)
        if node.node_id not in leader_status.voters:
            return (
                f"{node.node_id} is not a voter of leader {leader_status.node_id} (voters "
                f"{leader_status.voters}, non-voters {leader_status.non_voters})"
            )
        # The leader is asked first: under load its commit index moves on, and a caught-up
        # node's answer, read after it, is at least the leader's earlier one.
        if status.commit_index < leader_status.commit_index:
            return (
                f"{node.node_id} has commit index {status.commit_index} (applied {status.applied_index}, "
                f"term {status.term}, leader {status.leader_id}); leader {leader_status.node_id} has "
                f"{leader_status.commit_index} (term {leader_status.term})"
            )
        with self.client(index, timeout=10.0, retries=1) as client:
            for position, task_id in enumerate(reversed(task_ids)):  # newest first: likeliest missing
                try:
                    client.task(task_id, stale=True)
                except NotFound:
                    return (
                        f"{node.node_id} reached commit index {status.commit_index} but its replica lacks "
                        f"task {task_id} ({position} of the {len(task_ids)} newest were there)"
                    )
        return ""

    @property
    def max_voters(self) -> int:
        return int(self.settings.get("raft", {}).get("max_voters", 5))

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until every running node answers and names the same leader, and every running node is
        a voter or non-voter of it. A node just restarted is still a voter in the leader's
        configuration before its process listens, so membership alone would call the cluster
        ready while that node is down (a rolling restart then stopped the next node too early)."""

        def ready() -> bool:
            running = [n for n in self.nodes if n.running]
            leaders = {self.raft_status(node.index).leader_id for node in running}  # raises: not yet
            if len(leaders) != 1 or not next(iter(leaders)):
                return False
            leader = next((n for n in running if n.node_id in leaders), None)
            if leader is None:
                return False
            status = self.raft_status(leader.index)
            members = set(status.voters) | set(status.non_voters)
            names = {n.node_id for n in running}
            return names <= members and len(status.voters) == min(len(names), self.max_voters)

        try:
            wait_for(ready, timeout, what=f"a {self.size}-node cluster to form")
        except TimeoutError:
            sys.stderr.write(self.logs())
            raise

    def logs(self, tail: int = 60) -> str:
        out = []
        for node in self.nodes:
            if node.log_path.exists():
                lines = node.log_path.read_text(errors="replace").splitlines()[-tail:]
                out.append(f"----- {node.node_id} ({node.log_path}) -----\n" + "\n".join(lines))
        return "\n".join(out) + "\n"


def _api_bind(address: str) -> dict[str, str]:
    """``api_bind = address`` where the config has that key (the client API then listens on the
    node's own address, as it does on ``bind`` where it has not)."""
    from orion.config import NodeSection

    return {"api_bind": address} if "api_bind" in NodeSection.__struct_fields__ else {}


def _process_token() -> str:
    """The client token shared by this process's local clusters (see the module doc)."""
    from orion.client import default_token

    token = default_token()
    if token is None:
        token = secrets.token_urlsafe(32)
        os.environ["ORION_TOKEN"] = token
    return token


@functools.cache
def _process_api_key() -> Any:
    """The API key pair shared by this process's local clusters (see the module doc)."""
    from orion.security.keys import ClusterKey

    return ClusterKey.generate()


def _write_process_api_key(directory: Path) -> Path:
    """secrets/api.key_secret (and api.key) holding the process's API key pair; its path.
    Puts the public key in ORION_SERVER_KEY unless set (again for every cluster: a test may
    have cleared it since)."""
    os.environ.setdefault("ORION_SERVER_KEY", _process_api_key().public.decode())
    from orion.security.keys import KeyFileError, load_cluster_key, write_cluster_key

    secret, public = directory / "api.key_secret", directory / "api.key"
    try:
        current = load_cluster_key(secret) == _process_api_key()
    except KeyFileError:
        current = False
    if not current:  # none yet, or another process's
        secret.unlink(missing_ok=True)
        public.unlink(missing_ok=True)
        staging = directory / f".api-{os.getpid()}"
        written, written_public = write_cluster_key(staging, _process_api_key())
        written.rename(secret)
        written_public.rename(public)
        staging.rmdir()
    return secret


def _to_toml(sections: dict[str, dict[str, Any]]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"cannot write {type(v).__name__} to TOML")

    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {value(v)}" for key, v in values.items())
        lines.append("")
    return "\n".join(lines)
