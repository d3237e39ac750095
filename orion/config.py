"""The node's TOML configuration (``orion node --config FILE``, examples in config/), validated.

A wrong key or a wrong type is a ``ConfigError`` naming it (``scheduler.strategy: ...``);
sizes ("16GiB") and durations ("5s") are parsed here so the rest of the node sees numbers.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from orion.network.settings import NetworkSection, check_network
from orion.scheduler.ports import parse_port_range
from orion.units import parse_duration, parse_size

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Size = int | str
Duration = float | int | str


MAX_RAFT_PAYLOAD = 4 << 20  # half the peer transport's 8 MiB frame limit
DEFAULT_MAX_MEMBERS = 7  # [raft] max_members: Raft members (voters and standbys); further nodes are workers


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the key and the reason."""


class NodeSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    data_dir: str = ""
    bind: str = "127.0.0.1"
    api_bind: str = "127.0.0.1"  # the ZeroMQ client API listens here, not on bind (peers only)
    advertise: str = "127.0.0.1"
    bootstrap: bool = False
    # An empty node with bootstrap = true first listens this long for an existing cluster (a
    # node whose data dir was lost must rejoin it, never found a second one); 0 = at once.
    bootstrap_grace: Duration = "3s"
    join: list[str] = []
    log_level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR"] = "INFO"


class PortsSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    raft: Port = 7100
    gossip: Port = 7200
    api: Port = 7300
    http: Port = 7400  # 0 turns the REST mirror off


class ResourcesSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    memory: Size | None = None
    cpu: Annotated[float, msgspec.Meta(gt=0)] | None = None
    disk: Size | None = None


class SchedulerSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    strategy: Literal["binpack", "spread"] = "binpack"
    reconcile_interval: Duration = "5s"
    # A dead node's tasks move this long after gossip declared it dead. Gossip's suspicion
    # period (Lifeguard) is what keeps a slow node from being declared dead, so no extra wait
    # by default; a longer one lets a node that restarts quickly keep its tasks.
    reschedule_after: Duration = "0s"
    # A node that has not heard the leader for this long, and reaches neither half the voters
    # nor most members, stops its tasks (they may run elsewhere by now); 0 = never (README).
    stop_after_disconnect: Duration = "30s"
    dynamic_ports: str = "20000-32000"  # host ports the leader picks from for "-p 0:80"
    task_retention: Duration = "1h"  # Stopped/Failed tasks are removed from the state after this long


class DockerSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    host_ip: str = "127.0.0.1"
    stop_timeout: Duration = "2s"
    pull_timeout: Duration = "60s"
    restart: Literal["on-failure", "always", "no"] = "on-failure"  # for tasks without their own policy
    restart_attempts: Annotated[int, msgspec.Meta(ge=0)] = 3  # restarts allowed within restart_interval
    restart_interval: Duration = "5m"  # restarts older than this no longer count
    restart_backoff: Duration = "1s"
    restart_backoff_max: Duration = "30s"
    restart_mode: Literal["fail", "delay"] = "fail"  # attempts used: Failed, or wait for the interval


class RaftSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    max_voters: Annotated[int, msgspec.Meta(ge=1, le=9)] = 5
    # Raft members (voters and standbys) at most; further nodes are workers fed by a member
    # (orion/cluster/feed_host.py). None: 7, or max_voters if that is more.
    max_members: Annotated[int, msgspec.Meta(ge=1)] | None = None
    tick: Duration = "50ms"
    election_ticks: Annotated[int, msgspec.Meta(ge=2)] = 10
    heartbeat_ticks: Annotated[int, msgspec.Meta(ge=1)] = 2
    snapshot_threshold: Annotated[int, msgspec.Meta(ge=16)] = 8192
    # ... and at least this many times the last snapshot's bytes of log since it (0: the entry
    # count alone), so a big state is not re-written every snapshot_threshold entries
    snapshot_log_ratio: Annotated[float, msgspec.Meta(ge=0, le=1000)] = 1.0
    trailing_entries: Annotated[int, msgspec.Meta(ge=0)] = 5000  # kept behind a snapshot for slow followers
    max_size_per_msg: Size = "1MiB"  # entry bytes per AppendEntries (etcd's MaxSizePerMsg)
    max_inflight_bytes: Size = "32MiB"  # entry bytes in flight per follower; 0 = no limit
    snapshot_chunk: Size = "1MiB"  # snapshots travel in chunks of this size
    remove_dead_after: Duration = "30s"  # grace before a dead or departed member leaves the configuration
    request_timeout: Duration = "5s"


class GossipSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Half memberlist's LAN profile, so a dead node is declared dead in about 3 s (suspicion
    # 4 x 500 ms) and its tasks run elsewhere within 5 s; Lifeguard keeps false positives down
    # (BENCHMARKS.md, issue 16). Twice the probes: a few dozen small datagrams a second.
    probe_interval: Duration = "500ms"
    probe_timeout: Duration = "250ms"
    suspicion_mult: Annotated[int, msgspec.Meta(ge=1)] = 4
    lifeguard_probe: bool = True
    lifeguard_suspicion: bool = True
    lifeguard_buddy: bool = True
    # Bytes of piggybacked updates per gossip message (memberlist's UDP-sized 1200 by default).
    # Gossip rides ZeroMQ over TCP here, so larger is possible: fewer messages for the same
    # updates, which is what simulating a thousand members on a few cores needs (issue 20).
    packet_budget: Annotated[int, msgspec.Meta(ge=512, le=65536)] = 1200
    # Between gossip rounds (memberlist's LAN 200 ms). Longer spreads updates more slowly with
    # fewer messages: the scale runs slow every node's gossip clock together (issue 20).
    gossip_interval: Duration = "200ms"


class TestingSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    fault_injection: bool = False  # lets the nemesis cut links in the transport; never in production


class SecuritySection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Secure by default: CURVE between nodes, a bearer token for clients (see orion.security)."""

    insecure: bool = False  # true: plain TCP and no token; for local experiments only (warned at start)
    cluster_key: str = "secrets/cluster.key_secret"  # from `orion keygen`; the same file on every node
    token_file: str = "secrets/client.token"  # tokens clients must present, one per line
    http_bind: str = "127.0.0.1"  # the REST mirror listens here, not on [node] bind
    client_rate_limit: Annotated[float, msgspec.Meta(ge=0)] = 1000.0  # requests/s per connection; 0: off
    max_request: Size = "1MiB"  # largest client request (ZeroMQ frame or REST body)
    # The ZeroMQ API's CURVE key pair; "" = the cluster key (clients then want cluster.key).
    api_key: str = ""
    allow_loose_permissions: bool = False  # true: accept key and token files others may read
    tls_cert: str = ""  # both set: the REST mirror speaks HTTPS only
    tls_key: str = ""
    max_connections: Annotated[int, msgspec.Meta(ge=1)] = 1024  # per API socket (ZeroMQ and REST)
    max_connections_per_address: Annotated[int, msgspec.Meta(ge=1)] = 64  # per client IP address
    handshake_timeout: Duration = "5s"  # a connection must finish its CURVE/TLS handshake by then
    idle_timeout: Duration = "5m"  # a connection that sends nothing this long is closed
    http_workers: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 16  # REST requests served at once
    metrics_public: bool = False  # true: GET /metrics without a token (for a Prometheus without one)


class PolicySection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What a task (and a service's template) may ask for; checked where requests enter a node."""

    default_memory: Size = 0  # given to tasks that ask for none; 0 = no limit
    default_cpu: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    allowed_registries: list[str] = []  # e.g. ["docker.io", "registry.example.com:5000"]; [] = any
    host_ports: str = "1024-65535"  # host ports a task may publish (0 = any free one is always allowed)


class ServicesSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The service controller (leader only, orion/actors/service_actor.py)."""

    # A drained task is stopped this long after it left the ingress, so every node's ingress
    # saw the drain before its container gets SIGTERM.
    drain_delay: Duration = "2s"
    controller_interval: Duration = "500ms"  # how often the leader looks at every service


class IngressSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The routing mesh (orion/ingress): HAProxy listening on every published port of a service."""

    enabled: bool = True
    haproxy: str = "haproxy"  # the binary (a name on PATH or /usr/sbin, or a path)
    address: str = ""  # where published ports listen; "" = [docker] host_ip, else [node] advertise


class VolumesSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Cluster volumes (orion/volumes): the host directories a bind volume may mount here."""

    host_paths: list[str] = []  # absolute paths; a bind volume's device must be one or inside one


def _host_paths(raw: RawConfig) -> tuple[str, ...]:
    for path in raw.volumes.host_paths:
        if not path.startswith("/"):
            raise ConfigError(f"volumes.host_paths: {path!r} is not an absolute path")
    return tuple(raw.volumes.host_paths)


def _ingress_address(raw: RawConfig) -> str:
    import ipaddress  # only here: the ingress's address is the one key that must be an IP

    address = raw.ingress.address or raw.docker.host_ip or raw.node.advertise
    try:
        ipaddress.ip_address(address)
    except ValueError:
        key = "ingress.address" if raw.ingress.address else "docker.host_ip or node.advertise"
        raise ConfigError(f"{key}: the ingress listens on an IP address, got {address!r}") from None
    return address


class RawConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    node: NodeSection
    ports: PortsSection = msgspec.field(default_factory=PortsSection)
    resources: ResourcesSection = msgspec.field(default_factory=ResourcesSection)
    tags: dict[str, str] = {}
    scheduler: SchedulerSection = msgspec.field(default_factory=SchedulerSection)
    docker: DockerSection = msgspec.field(default_factory=DockerSection)
    raft: RaftSection = msgspec.field(default_factory=RaftSection)
    gossip: GossipSection = msgspec.field(default_factory=GossipSection)
    testing: TestingSection = msgspec.field(default_factory=TestingSection)
    security: SecuritySection = msgspec.field(default_factory=SecuritySection)
    services: ServicesSection = msgspec.field(default_factory=ServicesSection)
    ingress: IngressSection = msgspec.field(default_factory=IngressSection)
    policy: PolicySection = msgspec.field(default_factory=PolicySection)
    volumes: VolumesSection = msgspec.field(default_factory=VolumesSection)
    network: NetworkSection = msgspec.field(default_factory=NetworkSection)


class NodeConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The validated configuration with sizes in bytes and durations in seconds."""

    node_id: str
    data_dir: Path
    bind: str
    advertise: str
    bootstrap: bool
    join: tuple[str, ...]
    log_level: str
    raft_port: int
    gossip_port: int
    api_port: int
    http_port: int
    memory: int | None
    cpu: float | None
    disk: int | None
    tags: dict[str, str]
    strategy: str
    reconcile_interval: float
    reschedule_after: float
    host_ip: str
    stop_timeout: float
    pull_timeout: float
    restart_attempts: int
    restart_backoff: float
    restart_backoff_max: float
    max_voters: int
    tick: float
    election_ticks: int
    heartbeat_ticks: int
    snapshot_threshold: int
    remove_dead_after: float
    request_timeout: float
    probe_interval: float
    probe_timeout: float
    suspicion_mult: int
    lifeguard_probe: bool
    lifeguard_suspicion: bool
    lifeguard_buddy: bool
    fault_injection: bool
    insecure: bool = False
    gossip_packet_budget: int = 1200
    gossip_interval: float = 0.2
    cluster_key_path: Path = Path("secrets/cluster.key_secret")  # paths only: secrets load at start
    token_path: Path = Path("secrets/client.token")
    http_bind: str = "127.0.0.1"
    client_rate_limit: float = 1000.0
    max_request: int = 1024 * 1024
    dynamic_ports: tuple[int, int] = (20000, 32000)
    restart_condition: str = "on-failure"
    restart_interval: float = 300.0
    restart_mode: str = "fail"
    task_retention: float = 3600.0  # seconds a Stopped/Failed task stays before the leader collects it
    stop_after_disconnect: float = 30.0  # 0: a node cut off from the leader never stops its tasks
    bootstrap_grace: float = 3.0
    trailing_entries: int = 5000
    snapshot_log_ratio: float = 1.0
    max_size_per_msg: int = 1 << 20
    max_inflight_bytes: int = 32 << 20
    snapshot_chunk: int = 1 << 20
    max_members: int = DEFAULT_MAX_MEMBERS  # [raft]: members beyond it are workers
    drain_delay: float = 2.0  # [services]
    controller_interval: float = 0.5
    ingress_enabled: bool = True  # [ingress]
    haproxy: str = "haproxy"
    ingress_address: str = "127.0.0.1"
    volume_host_paths: tuple[str, ...] = ()  # [volumes] host_paths
    api_bind: str = "127.0.0.1"  # [node] api_bind and the [security] hardening keys
    api_key_path: Path | None = None  # None: the cluster key
    allow_loose_permissions: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_connections: int = 1024
    max_connections_per_address: int = 64
    handshake_timeout: float = 5.0
    idle_timeout: float = 300.0
    http_workers: int = 16
    metrics_public: bool = False
    policy_default_memory: int = 0  # [policy]
    policy_default_cpu: float = 0.0
    policy_registries: tuple[str, ...] = ()
    policy_host_ports: tuple[int, int] = (1024, 65535)
    network: NetworkSection = NetworkSection()  # [network]: the overlay (orion/network)

    @property
    def raft_address(self) -> str:
        return f"{self.advertise}:{self.raft_port}"

    @property
    def gossip_address(self) -> str:
        return f"{self.advertise}:{self.gossip_port}"


def _check_address(value: str, field: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{field}: expected 'host:port', got {value!r}")
    return value


def _convert(raw: RawConfig, base_dir: Path) -> NodeConfig:
    def size(value: Size | None, field: str) -> int | None:
        try:
            return None if value is None else parse_size(value, field)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def duration(value: Duration, field: str) -> float:
        try:
            return parse_duration(value, field)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def path(value: str) -> Path:
        return Path(value) if Path(value).is_absolute() else base_dir / value

    data_dir = path(raw.node.data_dir or f"data/{raw.node.id}")
    join = tuple(_check_address(a, f"node.join[{i}]") for i, a in enumerate(raw.node.join))
    ports = raw.ports
    used = [p for p in (ports.raft, ports.gossip, ports.api, ports.http) if p]
    if len(set(used)) != len(used):
        raise ConfigError(f"ports: every port must differ, got {msgspec.structs.asdict(ports)}")
    for name in ("raft", "gossip", "api"):
        if getattr(ports, name) == 0:
            raise ConfigError(f"ports.{name}: must be a port number 1-65535, got 0")
    for name in ("probe_interval", "probe_timeout", "gossip_interval"):
        if duration(getattr(raw.gossip, name), f"gossip.{name}") <= 0:
            # 0 would make the gossip loop spin without pause (or time every probe out at once).
            raise ConfigError(f"gossip.{name}: must be longer than 0, got {getattr(raw.gossip, name)!r}")
    task_retention = duration(raw.scheduler.task_retention, "scheduler.task_retention")
    if task_retention <= 0:
        # 0 would remove a task the moment it stops, before anyone could inspect why.
        raise ConfigError(
            f"scheduler.task_retention: must be more than 0 (e.g. '1h'), got {raw.scheduler.task_retention!r}"
        )
    max_request = size(raw.security.max_request, "security.max_request") or 0
    if max_request < 1024:
        raise ConfigError(f"security.max_request: must be at least 1KiB, got {raw.security.max_request!r}")
    raft_sizes = {
        name: size(getattr(raw.raft, name), f"raft.{name}") or 0
        for name in ("max_size_per_msg", "max_inflight_bytes", "snapshot_chunk")
    }
    # Every Raft frame must fit the transport's frame limit with room for its envelope: an
    # oversize frame would be dropped on every retry and the follower never catch up.
    for name in ("max_size_per_msg", "snapshot_chunk"):
        if not 1024 <= raft_sizes[name] <= MAX_RAFT_PAYLOAD:
            raise ConfigError(
                f"raft.{name}: must be between 1KiB and {MAX_RAFT_PAYLOAD >> 20}MiB (half the transport's "
                f"frame limit), got {getattr(raw.raft, name)!r}"
            )
    if max_request > MAX_RAFT_PAYLOAD:
        raise ConfigError(
            f"security.max_request: must be at most {MAX_RAFT_PAYLOAD >> 20}MiB (one request is one Raft "
            f"entry and must fit a frame), got {raw.security.max_request!r}"
        )
    try:
        dynamic_ports = parse_port_range(raw.scheduler.dynamic_ports, "scheduler.dynamic_ports")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    restart_interval = duration(raw.docker.restart_interval, "docker.restart_interval")
    if restart_interval <= 0:
        got = raw.docker.restart_interval
        raise ConfigError(f"docker.restart_interval: must be more than 0, got {got!r}")
    drain_delay = duration(raw.services.drain_delay, "services.drain_delay")
    if not 0 <= drain_delay <= 600:
        got = raw.services.drain_delay
        raise ConfigError(f"services.drain_delay: must be between 0 and 10m, got {got!r}")
    controller_interval = duration(raw.services.controller_interval, "services.controller_interval")
    if not 0.05 <= controller_interval <= 60:
        # Faster would keep the leader busy for nothing; slower would let updates crawl.
        got = raw.services.controller_interval
        raise ConfigError(f"services.controller_interval: must be between 50ms and 60s, got {got!r}")
    max_members = raw.raft.max_members
    if max_members is None:
        max_members = max(DEFAULT_MAX_MEMBERS, raw.raft.max_voters)
    elif max_members < raw.raft.max_voters:
        # Every voter is a member: a smaller cap could never seat the voters asked for.
        raise ConfigError(
            f"raft.max_members: must be at least raft.max_voters ({raw.raft.max_voters}), got {max_members}"
        )
    return NodeConfig(
        max_members=max_members,
        **_hardening(raw.security, raw.policy, path, duration, size),
        drain_delay=drain_delay,
        controller_interval=controller_interval,
        ingress_enabled=raw.ingress.enabled,
        haproxy=raw.ingress.haproxy,
        ingress_address=_ingress_address(raw),
        volume_host_paths=_host_paths(raw),
        api_bind=raw.node.api_bind,
        dynamic_ports=dynamic_ports,
        restart_condition=raw.docker.restart,
        restart_interval=restart_interval,
        restart_mode=raw.docker.restart_mode,
        node_id=raw.node.id,
        data_dir=data_dir,
        bind=raw.node.bind,
        advertise=raw.node.advertise,
        bootstrap=raw.node.bootstrap,
        join=join,
        log_level=raw.node.log_level,
        raft_port=ports.raft,
        gossip_port=ports.gossip,
        api_port=ports.api,
        http_port=ports.http,
        memory=size(raw.resources.memory, "resources.memory"),
        cpu=raw.resources.cpu,
        disk=size(raw.resources.disk, "resources.disk"),
        tags=dict(raw.tags),
        strategy=raw.scheduler.strategy,
        reconcile_interval=duration(raw.scheduler.reconcile_interval, "scheduler.reconcile_interval"),
        reschedule_after=duration(raw.scheduler.reschedule_after, "scheduler.reschedule_after"),
        stop_after_disconnect=duration(
            raw.scheduler.stop_after_disconnect, "scheduler.stop_after_disconnect"
        ),
        task_retention=task_retention,
        host_ip=raw.docker.host_ip,
        stop_timeout=duration(raw.docker.stop_timeout, "docker.stop_timeout"),
        pull_timeout=duration(raw.docker.pull_timeout, "docker.pull_timeout"),
        restart_attempts=raw.docker.restart_attempts,
        restart_backoff=duration(raw.docker.restart_backoff, "docker.restart_backoff"),
        restart_backoff_max=duration(raw.docker.restart_backoff_max, "docker.restart_backoff_max"),
        max_voters=raw.raft.max_voters,
        tick=duration(raw.raft.tick, "raft.tick"),
        election_ticks=raw.raft.election_ticks,
        heartbeat_ticks=raw.raft.heartbeat_ticks,
        snapshot_threshold=raw.raft.snapshot_threshold,
        snapshot_log_ratio=raw.raft.snapshot_log_ratio,
        remove_dead_after=duration(raw.raft.remove_dead_after, "raft.remove_dead_after"),
        request_timeout=duration(raw.raft.request_timeout, "raft.request_timeout"),
        probe_interval=duration(raw.gossip.probe_interval, "gossip.probe_interval"),
        probe_timeout=duration(raw.gossip.probe_timeout, "gossip.probe_timeout"),
        suspicion_mult=raw.gossip.suspicion_mult,
        lifeguard_probe=raw.gossip.lifeguard_probe,
        lifeguard_suspicion=raw.gossip.lifeguard_suspicion,
        lifeguard_buddy=raw.gossip.lifeguard_buddy,
        gossip_packet_budget=raw.gossip.packet_budget,
        gossip_interval=duration(raw.gossip.gossip_interval, "gossip.gossip_interval"),
        fault_injection=raw.testing.fault_injection,
        insecure=raw.security.insecure,
        cluster_key_path=path(raw.security.cluster_key),
        token_path=path(raw.security.token_file),
        http_bind=raw.security.http_bind,
        client_rate_limit=raw.security.client_rate_limit,
        max_request=max_request,
        bootstrap_grace=duration(raw.node.bootstrap_grace, "node.bootstrap_grace"),
        trailing_entries=raw.raft.trailing_entries,
        **raft_sizes,
        network=_network(raw.network),
    )


def _network(section: NetworkSection) -> NetworkSection:
    try:
        return check_network(section)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _hardening(
    security: SecuritySection,
    policy: PolicySection,
    path: Callable[[str], Path],
    duration: Callable[[Duration, str], float],
    size: Callable[[Size | None, str], int | None],
) -> dict[str, Any]:
    """The NodeConfig fields of the security hardening keys and [policy], validated."""
    if bool(security.tls_cert) != bool(security.tls_key):
        raise ConfigError("security.tls_cert, security.tls_key: give both (HTTPS) or neither")
    handshake = duration(security.handshake_timeout, "security.handshake_timeout")
    idle = duration(security.idle_timeout, "security.idle_timeout")
    if not 0.1 <= handshake <= 300 or not 1 <= idle <= 86400:
        raise ConfigError(
            "security.handshake_timeout, security.idle_timeout: must be within 100ms-5m and 1s-24h, got "
            f"{security.handshake_timeout!r}, {security.idle_timeout!r}"
        )
    if security.max_connections_per_address > security.max_connections:
        raise ConfigError("security.max_connections_per_address: must not exceed security.max_connections")
    try:
        host_ports = parse_port_range(policy.host_ports, "policy.host_ports")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for i, registry in enumerate(policy.allowed_registries):
        if not registry or "/" in registry or registry != registry.strip():
            raise ConfigError(f"policy.allowed_registries[{i}]: expected a registry host, got {registry!r}")
    return {
        "api_key_path": path(security.api_key) if security.api_key else None,
        "allow_loose_permissions": security.allow_loose_permissions,
        "tls_cert": path(security.tls_cert) if security.tls_cert else None,
        "tls_key": path(security.tls_key) if security.tls_key else None,
        "max_connections": security.max_connections,
        "max_connections_per_address": security.max_connections_per_address,
        "handshake_timeout": handshake,
        "idle_timeout": idle,
        "http_workers": security.http_workers,
        "metrics_public": security.metrics_public,
        "policy_default_memory": size(policy.default_memory, "policy.default_memory") or 0,
        "policy_default_cpu": policy.default_cpu,
        "policy_registries": tuple(policy.allowed_registries),
        "policy_host_ports": host_ports,
    }


def parse_config(text: str, base_dir: Path | None = None) -> NodeConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from None
    try:
        raw = msgspec.convert(data, RawConfig)
    except msgspec.ValidationError as exc:
        # msgspec names the path as `$.scheduler.strategy`; say it as the TOML key.
        raise ConfigError(str(exc).replace("`$.", "`")) from None
    return _convert(raw, base_dir or Path.cwd())


def load_config(
    path: str | os.PathLike[str], *, bootstrap: bool | None = None, join: list[str] | None = None
) -> NodeConfig:
    """Read a TOML file; ``--bootstrap`` and ``--join`` flags override the file."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {file}: {exc.strerror}") from None
    config = parse_config(text, Path.cwd())
    overrides: dict[str, object] = {}
    if bootstrap is not None:
        overrides["bootstrap"] = bootstrap
    if join:
        overrides["join"] = tuple(_check_address(a, "--join") for a in join)
    return msgspec.structs.replace(config, **overrides) if overrides else config
