"""One Orion node: wires transports, actors, the API servers and the ticker together.

``orion node --config node1.toml`` ends up in ``run_node``. Start order follows the data:
store and Raft first (everything reads the FSM), then the worker, reconciler and scheduler
that act on it, then gossip (whose events drive membership), then the client-facing servers.
A failure in any actor stops the whole node cleanly instead of leaving it half alive.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import sys
import threading
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
import pykka
import zmq
from loguru import logger

from orion import memory_trace
from orion.actors.api_actor import ApiActor
from orion.actors.events_actor import EventsActor
from orion.actors.front import front_handler
from orion.actors.gossip_actor import GossipActor, Join
from orion.actors.health_actor import TICK_S as HEALTH_TICK_S
from orion.actors.health_actor import HealthActor
from orion.actors.ingress_actor import TICK_S as INGRESS_TICK_S
from orion.actors.ingress_actor import IngressActor, IngressSettings
from orion.actors.logs_actor import LogsActor
from orion.actors.messages import ContainerExited, Outcome, Read, Shutdown
from orion.actors.metrics_sources import gossip_source, raft_source
from orion.actors.raft_actor import RaftActor
from orion.actors.reconciler_actor import ReconcilerActor
from orion.actors.scheduler_actor import SchedulerActor
from orion.actors.service_actor import ServiceActor
from orion.actors.state_view import StateView
from orion.actors.ticker import Ticker
from orion.actors.volume_actor import TICK_S as VOLUME_TICK_S
from orion.actors.volume_actor import VolumeActor, node_volumes
from orion.actors.worker_actor import WorkerActor
from orion.api.http import HttpApi
from orion.api.server import ApiServer
from orion.api.task_policy import TaskPolicy
from orion.config import ConfigError, NodeConfig, load_config
from orion.malloc_policy import pin_malloc_thresholds
from orion.metrics import NodeMetrics
from orion.model import NodeMeta
from orion.raft.data_dir import DataDirInUse, prepare_data_dir
from orion.raft.duckdb_store import DuckDBStore
from orion.raft.types import StoreCorruptError
from orion.security.settings import load_node_security
from orion.transport.peer import Channel, PeerTransport
from orion.worker.docker_worker import DockerWorker
from orion.worker.health_probe import HealthProber
from orion.worker.restart_policy import RestartPolicy

GOSSIP_TICK_S = 0.05
SCHEDULER_TICK_S = 1.0
SHUTDOWN_STEP_S = 5.0
EVENTS_TICK_S = 0.25  # ends the long polls of event readers on time
LOGS_TICK_S = 0.5  # ends forwarded log requests whose node did not answer
MAIN_WAIT_S = 5.0


def detect_meta(config: NodeConfig, port_space: str = "", raft_incarnation: str = "") -> NodeMeta:
    """Capacity from the config when given, else from the machine. ``port_space``: which
    host ports this node shares (its Docker engine's, orion/scheduler/ports.py); without one
    the scheduler keys the node's ports by its advertise address."""
    memory_total, memory_used = _memory()
    disk_total = shutil.disk_usage(config.data_dir).total
    return NodeMeta(
        id=config.node_id,
        role="node",
        address=config.advertise,
        raft_port=config.raft_port,
        gossip_port=config.gossip_port,
        api_port=config.api_port,
        http_port=config.http_port,
        memory_total=config.memory if config.memory is not None else memory_total,
        memory_used=memory_used,
        cpu_total=config.cpu if config.cpu is not None else float(os.cpu_count() or 1),
        disk_total=config.disk if config.disk is not None else disk_total,
        tags=dict(config.tags),
        version=1,
        host_ip=config.host_ip,
        port_space=port_space,
        raft_incarnation=raft_incarnation,
    )


def _memory() -> tuple[int, int]:
    values: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                key, _, rest = line.partition(":")
                values[key] = int(rest.split()[0]) * 1024
    except OSError:
        return 0, 0
    total = values.get("MemTotal", 0)
    return total, total - values.get("MemAvailable", total)


def _refresh_used(meta: NodeMeta) -> NodeMeta:
    _, used = _memory()
    # Only a real change (> 1%) is worth a new version on gossip.
    if meta.memory_total and abs(used - meta.memory_used) * 100 < meta.memory_total:
        return meta
    return NodeMeta(**{**_fields(meta), "memory_used": used, "version": meta.version + 1})


def _fields(meta: NodeMeta) -> dict[str, Any]:
    return {name: getattr(meta, name) for name in meta.__struct_fields__}


class _FrameRouter:
    """Transport callbacks are set before the actors exist; frames arriving early are dropped."""

    def __init__(self) -> None:
        self.handlers: list[Callable[[Channel, bytes], None]] = []

    def __call__(self, channel: Channel, payload: bytes) -> None:
        for handler in self.handlers:
            handler(channel, payload)


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.fatal = threading.Event()
        self.fatal_reason = ""
        self.wake = threading.Event()  # the main thread's: set on a fatal error or a stop signal
        self._refs: list[pykka.ActorRef] = []
        self._servers: list[Any] = []
        self.ticker = Ticker(slack=GOSSIP_TICK_S)  # others share the Raft tick's wakeups (ticker.py)
        self.store: DuckDBStore | None = None
        self.raft_transport: PeerTransport | None = None
        self.gossip_transport: PeerTransport | None = None
        self.raft: pykka.ActorRef | None = None
        self.gossip: pykka.ActorRef | None = None
        self.data_dir_lock: Any = None
        self.metrics: NodeMetrics | None = None

    def _on_fatal(self, reason: str) -> None:
        if not self.fatal.is_set():
            self.fatal_reason = reason
            self.fatal.set()
            self.wake.set()

    def start(self) -> None:
        config = self.config
        # The data dir first: a second process on it refuses with one line before it says or
        # loads anything else. Then the keys: a node without them must not start at all
        # (KeyFileError is an OSError).
        self.data_dir_lock = prepare_data_dir(config.data_dir)
        security = load_node_security(config)
        _raise_open_file_limit()
        _raise_socket_limit()
        self.store = DuckDBStore(config.data_dir / "raft.duckdb")
        # Read the store once here, before anything starts: a damaged file then reaches
        # run_node as StoreCorruptError ("refusing to start: ..."). Found by the nemesis: the
        # Raft actor's own load in on_start failed inside the actor and the node died with an
        # ActorDeadError traceback instead of naming the file.
        stored = self.store.load()
        # The incarnation names this life of the node's data: a node whose data dir was lost
        # comes back as a new incarnation, which the others never mistake for the old one.
        incarnation = self.store.load_identity()
        if incarnation is None:
            incarnation = uuid.uuid4().hex
            self.store.save_identity(incarnation)
            logger.info("new data dir: this node is incarnation {}", incarnation)
        raft_router, gossip_router = _FrameRouter(), _FrameRouter()
        self.raft_transport = PeerTransport(
            config.bind,
            config.raft_port,
            raft_router,
            name=f"{config.node_id}-raft",
            advertise=config.advertise,
            allow_fault_injection=config.fault_injection,
            curve=security.peer_key,
            on_zap_death=self._on_fatal,
        )
        self.gossip_transport = PeerTransport(
            config.bind,
            config.gossip_port,
            gossip_router,
            name=f"{config.node_id}-gossip",
            advertise=config.advertise,
            allow_fault_injection=config.fault_injection,
            curve=security.peer_key,
            on_zap_death=self._on_fatal,
        )
        # Each transport is run by its actor's thread while it waits (orion/actors/hosted_inbox.py):
        # a frame wakes the one thread that handles it, and that thread's sends are written at
        # once. The Raft transport had a thread of its own until session 10: hosted, c=64 writes
        # were slower, until a race in Mailbox.drain (a wake-up byte left with nothing queued:
        # the host polled without sleeping) was fixed; since then c=1 and c=64 are no worse side
        # by side and idle nodes ~0.05% of a core lower (BENCHMARKS.md, issue 16, session 10).
        self.raft_transport.bind()
        self.gossip_transport.bind()

        metrics = self.metrics = NodeMetrics(config.node_id)
        raft = RaftActor.start(
            config,
            self.store,
            stored,
            self.raft_transport,
            self._on_fatal,
            incarnation=incarnation,
            metrics=metrics,
        )
        self.raft = raft
        self._refs.append(raft)
        raft_router.handlers.append(raft.proxy().frame_handler().get())
        # The event stream (every node: each applies the same log) and the metrics it feeds.
        events = EventsActor.start(self._on_fatal, on_events=metrics.events)
        self._refs.append(events)
        raft.proxy().set_event_sink(events).get()
        self.ticker.add(events, EVENTS_TICK_S)
        metrics.add_source(raft_source(raft))

        # Cluster volumes (orion/volumes): mounted when a task starts, audited every few seconds.
        volumes = node_volumes(config.node_id, config.volume_host_paths, raft, config.request_timeout)
        volume_actor = VolumeActor.start(raft, volumes, config.request_timeout, self._on_fatal)
        self._refs.append(volume_actor)
        self.ticker.add(volume_actor, VOLUME_TICK_S)
        overlay = None
        if config.network.overlay:
            # Imported here: its netlink library (pyroute2) costs a node without the overlay
            # about 10 MB and seconds of start-up.
            from orion.actors.network_actor import overlay_host

            overlay = overlay_host(config)
        docker = DockerWorker(
            config.node_id,
            host_ip=config.host_ip,
            stop_timeout=config.stop_timeout,
            pull_timeout=config.pull_timeout,
            volumes=volumes.mounts,
            network=config.network.docker_network if overlay is not None else "",
        )
        reconciler_box: list[pykka.ActorRef] = []

        def on_exit(event: ContainerExited) -> None:
            if reconciler_box:
                reconciler_box[0].tell(event)

        worker = WorkerActor.start(docker, on_exit, self._on_fatal, on_error=metrics.docker_error)
        self._refs.append(worker)
        # Task logs: read here for tasks this node runs, else asked of the node that runs them.
        logs = LogsActor.start(
            config.node_id,
            config.raft_address,
            raft,
            docker,
            self.raft_transport.send,
            self._on_fatal,
            config.request_timeout,
        )
        self._refs.append(logs)
        raft_router.handlers.append(logs.proxy().frame_handler().get())
        self.ticker.add(logs, LOGS_TICK_S)
        policy = RestartPolicy(
            condition=config.restart_condition,
            max_attempts=config.restart_attempts,
            interval=config.restart_interval,
            base=config.restart_backoff,
            cap=config.restart_backoff_max,
            mode=config.restart_mode,
        )
        reconciler = ReconcilerActor.start(
            config.node_id,
            raft,
            worker,
            policy,
            config.request_timeout,
            self._on_fatal,
            stop_after_disconnect=config.stop_after_disconnect,
        )
        reconciler_box.append(reconciler)
        self._refs.append(reconciler)
        scheduler = SchedulerActor.start(
            raft,
            config.strategy,
            config.request_timeout,
            self._on_fatal,
            dynamic_ports=config.dynamic_ports,
            task_retention=config.task_retention,
        )
        self._refs.append(scheduler)
        raft.proxy().add_listener(reconciler).get()
        raft.proxy().add_listener(scheduler).get()
        # Health checks of this node's tasks (every node): transitions go through Raft.
        health = HealthActor.start(
            config.node_id, raft, HealthProber(docker), config.request_timeout, self._on_fatal
        )
        self._refs.append(health)
        raft.proxy().add_listener(health).get()
        self.ticker.add(health, HEALTH_TICK_S)
        # The service controller (acts on the leader only): its decisions go through Raft.
        services = ServiceActor.start(
            raft, config.request_timeout, self._on_fatal, drain_delay=config.drain_delay
        )
        self._refs.append(services)
        raft.proxy().add_listener(services).get()
        self.ticker.add(services, config.controller_interval)
        # The routing mesh (every node): HAProxy on each published port, routed as the FSM says.
        if config.ingress_enabled:
            settings = IngressSettings(config.ingress_address, config.data_dir / "ingress", config.haproxy)
            ingress = IngressActor.start(raft, settings, self._on_fatal, config.request_timeout)
            self._refs.append(ingress)
            raft.proxy().add_listener(ingress).get()
            self.ticker.add(ingress, INGRESS_TICK_S)
        # The cluster id labels this node's containers: the worker touches none and the
        # reconciler starts no round until the Raft configuration names it (worker told first).
        raft.proxy().add_identity_listener(worker).get()
        raft.proxy().add_identity_listener(reconciler).get()

        port_space = docker.port_space()
        if not port_space:
            logger.warning("docker engine not answering: host ports are keyed by the advertise address")
        meta = detect_meta(config, port_space, incarnation)
        if overlay is not None:  # the VTEP rides in the first gossip meta (orion/network)
            vtep = overlay.start()
            meta = msgspec.structs.replace(meta, vtep_mac=vtep.mac, underlay_ip=vtep.underlay_ip)
        gossip = GossipActor.start(
            config,
            meta,
            self.gossip_transport,
            raft,
            self._on_fatal,
            refresh_meta=_refresh_used,
            raft_incarnation=incarnation,
        )
        raft.proxy().add_identity_listener(gossip).get()  # the cluster id, once the configuration names it
        self._refs.append(gossip)
        gossip_router.handlers.append(gossip.proxy().frame_handler().get())
        self.gossip = gossip
        if overlay is not None:  # routes, neighbours and FDB entries to every peer's subnet
            from orion.actors.network_actor import TICK_S as NETWORK_TICK_S
            from orion.actors.network_actor import NetworkActor

            network = NetworkActor.start(
                config.node_id, overlay, raft, gossip, config.request_timeout, self._on_fatal
            )
            self._refs.append(network)
            raft.proxy().add_listener(network).get()
            self.ticker.add(network, NETWORK_TICK_S)
        metrics.add_source(gossip_source(gossip))

        block_peers = None
        if config.fault_injection:
            logger.warning("fault injection is enabled ([testing]): never run this way in production")

            def block_peers(addresses: set[str]) -> None:
                self.raft_transport.block(addresses)
                self.gossip_transport.block(addresses)

        api_actor = ApiActor.start(raft, config.request_timeout, self._on_fatal, block_peers)
        self._refs.append(api_actor)
        handler = api_actor.proxy().handler().get()
        handler = front_handler(handler, events=events, logs=logs, metrics=metrics)
        policy = TaskPolicy.from_config(config)
        api_server = ApiServer(
            config.api_bind,
            config.api_port,
            handler,
            max_request=config.max_request,
            rate_limit_per_s=config.client_rate_limit,
            tokens=security.tokens,
            name=f"{config.node_id}-api",
            curve=security.api_key,
            on_zap_death=self._on_fatal,
            max_connections=config.max_connections,
            max_connections_per_address=config.max_connections_per_address,
            handshake_timeout=config.handshake_timeout,
            idle_timeout=config.idle_timeout,
            prepare=policy.apply,
        )
        api_server.start()
        self._servers.append(api_server)
        if config.http_port:
            http = HttpApi(
                config.http_bind,
                config.http_port,
                handler,
                timeout=config.request_timeout + 1.0,
                max_body=config.max_request,
                tokens=security.tokens,
                api_port=config.api_port,
                workers=config.http_workers,
                max_connections=config.max_connections,
                max_connections_per_address=config.max_connections_per_address,
                socket_timeout=config.handshake_timeout,
                tls_cert=config.tls_cert,
                tls_key=config.tls_key,
                prepare=policy.apply,
                metrics=metrics,
                metrics_public=config.metrics_public,
            )
            http.start()
            self._servers.append(http)

        # The Raft actor's first Tick starts its clock, once everything is wired; it times its
        # own Ticks from then on (orion/actors/timed_inbox.py) and tells the ticker to send no more.
        self.ticker.add(raft, config.tick * config.heartbeat_ticks, strict=True)
        self.ticker.add(gossip, GOSSIP_TICK_S)
        self.ticker.add(reconciler, config.reconcile_interval)
        self.ticker.add(scheduler, SCHEDULER_TICK_S)
        self.ticker.start()

        seeds = list(config.join)
        for seed in self._known_seeds():
            if seed not in seeds and seed != config.gossip_address:
                seeds.append(seed)
        gossip.tell(Join(seeds))
        logger.info(
            "node {} up: raft {} gossip {} api {}:{} http {}",
            config.node_id,
            config.raft_port,
            config.gossip_port,
            config.api_bind,
            config.api_port,
            config.http_port or "off",
        )

    def _known_seeds(self) -> list[str]:
        done = threading.Event()
        box: list[Outcome] = []

        def callback(outcome: Outcome) -> None:
            box.append(outcome)
            done.set()

        def seeds(view: StateView) -> list[str]:
            return view.gossip_seeds()

        self.raft.tell(Read(seeds, callback, stale=True))
        done.wait(5.0)
        return list(box[0].value) if box and box[0].ok else []

    def stop(self) -> None:
        """Graceful: hand leadership over, announce the leave, then stop everything. Also
        safe on a node whose start failed half way: it stops what did start."""
        if not self.fatal.is_set():
            for ref in filter(None, (self.raft, self.gossip)):
                finished = threading.Event()
                try:
                    ref.tell(Shutdown(finished.set))
                    finished.wait(SHUTDOWN_STEP_S)
                except pykka.ActorDeadError:
                    pass
        self.ticker.stop()
        for server in reversed(self._servers):
            server.stop()
        for ref in reversed(self._refs):
            try:
                ref.stop(timeout=10)
            except pykka.ActorDeadError:
                pass
            except Exception:  # keep stopping the rest: a half-stopped node must still exit
                logger.exception("stopping an actor failed")
        for transport in filter(None, (self.raft_transport, self.gossip_transport)):
            transport.stop()
        if self.store is not None:
            self.store.close()
        if self.data_dir_lock is not None:
            self.data_dir_lock.release()


def _raise_socket_limit() -> None:
    """ZeroMQ allows 1,023 sockets per context by default, and a node holds four per peer (a
    DEALER per channel kind and their CURVE monitors): at ~250 members the leader's transport
    could not connect to new ones ("Too many open files", issue 20). Set before the first socket."""
    context = zmq.Context.instance()
    context.set(zmq.MAX_SOCKETS, context.get(zmq.SOCKET_LIMIT))


def _raise_open_file_limit() -> None:
    """Use the hard open-file limit: client connections, Docker's event stream and DuckDB share
    it, and the API's connection caps are sized for it, not for a default soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
        except (ValueError, OSError) as exc:
            logger.warning("cannot raise the open-file limit from {}: {}", soft, exc)


def setup_logging(config: NodeConfig) -> None:
    logger.remove()
    logger.configure(extra={"node": config.node_id})
    logger.add(
        sys.stderr,
        level=config.log_level,
        format="{time:HH:mm:ss.SSS} {level: <7} [{extra[node]}] {message}",
        backtrace=False,
        diagnose=False,  # never print variable values: they may hold secrets
    )


def run_node(config_path: str, bootstrap: bool | None = None, join: list[str] | None = None) -> int:
    try:
        config = load_config(config_path, bootstrap=bootstrap, join=join)
    except ConfigError as exc:
        print(f"orion node: {config_path}: {exc}", file=sys.stderr)
        return 2
    setup_logging(config)
    pin_malloc_thresholds()  # big freed blocks go back to the system (orion/malloc_policy.py)
    if memory_trace.install() is not None:
        logger.warning("{} is set: tracing allocations (slow; SIGUSR2 writes them)", memory_trace.ENV_VAR)
    node = Node(config)
    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        logger.info("received {}: shutting down", signal.Signals(signum).name)
        stop_requested.set()
        node.wake.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        node.start()
    except (StoreCorruptError, DataDirInUse, OSError) as exc:
        refusal = "refusing to start" if isinstance(exc, StoreCorruptError | DataDirInUse) else "cannot start"
        logger.error("{}: {}", refusal, exc)
        node.fatal.set()  # no graceful hand-over: this node never served
        node.stop()
        return 1
    while not stop_requested.is_set() and not node.fatal.is_set():
        # Woken by a signal or a fatal error; the timeout is only a safety net (an idle node's
        # main thread polled five times a second before).
        node.wake.wait(MAIN_WAIT_S)
    if node.fatal.is_set():
        logger.error("stopping: {}", node.fatal_reason)
    node.stop()
    logger.info("node {} stopped", config.node_id)
    return 1 if node.fatal.is_set() else 0
