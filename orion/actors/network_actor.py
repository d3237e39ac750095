"""The overlay's shell (every node with ``[network] overlay = true``): level-triggered passes.

Each pass reads the FSM (stale: a slightly old view only delays a route) for every node's
subnet and this node's tasks, asks gossip for the members' VTEPs (underlay address and MAC in
their meta), and has ``OverlayHost.converge`` make the VXLAN device, its routes, neighbours and
FDB entries, and the Docker network match (orion/network/overlay_plan.py decides). A pass runs
on every tick and, at most every ``MIN_PASS_S``, when the FSM changed or leadership moved.

On the leader it also proposes ``AllocateSubnet`` for each live member without a subnet (the
IPAM runs in the FSM, orion/fsm/network.py). On every node it reports its tasks' container
addresses on the overlay network (``ReportOverlayAddress``), which ``task inspect`` shows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pykka
from loguru import logger

from orion.actors.base import FatalHandler, NodeActor
from orion.actors.messages import LeadershipChanged, Outcome, Propose, Read, StateChanged, Tick
from orion.actors.state_view import StateView
from orion.config import NodeConfig
from orion.fsm.commands import AllocateSubnet, Command, ReleaseSubnet, ReportOverlayAddress, encode_command
from orion.fsm.touched import Touched
from orion.model import ACTIVE_STATES, GONE_STATUSES, LIVE_STATUSES, Desired
from orion.network.dns import service_records
from orion.network.dns_server import DnsServer
from orion.network.host import OverlayHost, underlay_address
from orion.network.ipam import gateway_address, subnet_index
from orion.network.overlay_plan import Peer

TICK_S = 1.0
MIN_PASS_S = 0.5
RETRY_S = 5.0  # a proposal not seen applied by then is made again
MEMBERS_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class NodeSubnet:
    node_id: str
    status: str
    subnet: str
    since: float = 0.0  # the record's last change (for a gone node: about when it went)


@dataclass(frozen=True, slots=True)
class OwnTask:
    task_id: str
    overlay_ip: str


@dataclass(frozen=True, slots=True)
class ClusterView:
    is_leader: bool
    nodes: list[NodeSubnet]
    tasks: list[OwnTask]  # this node's tasks that should run here
    services: dict[str, list[str]]  # service name -> its serving replicas' overlay addresses


@dataclass(frozen=True, slots=True)
class _Read:
    outcome: Outcome


def overlay_host(config: NodeConfig) -> OverlayHost:
    """This node's overlay, not started yet (the node starts it before gossip)."""
    network = config.network
    address = "" if network.underlay_interface else underlay_address(config.advertise, config.bind)
    return OverlayHost(config.node_id, network, address)


def cluster_view(node_id: str) -> Any:
    def query(view: StateView) -> ClusterView:
        fsm = view.fsm
        return ClusterView(
            is_leader=view.is_leader,
            nodes=[NodeSubnet(n.id, n.status, n.subnet, n.updated_at) for n in fsm.nodes()],
            tasks=[
                OwnTask(t.id, t.overlay_ip)
                for t in fsm.tasks_on_node(node_id)
                if t.state in ACTIVE_STATES and t.desired == Desired.RUN
            ],
            services=service_records({s.name: fsm.service_tasks(s.name) for s in fsm.services()}),
        )

    return query


def network_concerned(touched: Touched, node_id: str) -> bool:
    """Whether ``cluster_view`` may differ: node records (subnets), overlay addresses, this
    node's tasks, services and their tasks (the names served)."""
    return (
        touched.nodes
        or touched.network
        or touched.services
        or touched.service_tasks
        or touched.concerns_node(node_id)
    )


def subnets_to_allocate(nodes: list[NodeSubnet], cluster_cidr: str) -> list[str]:
    """Members the leader should give a subnet: not gone, and without one in ``cluster_cidr``."""
    return [
        n.node_id
        for n in nodes
        if n.status not in GONE_STATUSES and (not n.subnet or subnet_index(cluster_cidr, n.subnet) is None)
    ]


def subnets_to_release(nodes: list[NodeSubnet], release_after: float, now: float) -> list[str]:
    """Members gone (dead or left) for ``release_after`` seconds that still hold a subnet."""
    return [
        n.node_id for n in nodes if n.subnet and n.status in GONE_STATUSES and now - n.since >= release_after
    ]


def task_of_container(name: str, node_id: str) -> str:
    """The task id in a container name ``orion-<node>-<task>-<cluster8>`` ("" if not ours)."""
    prefix = f"orion-{node_id}-"
    if not name.startswith(prefix):
        return ""
    task_id, sep, _ = name[len(prefix) :].rpartition("-")
    return task_id if sep else ""


def address_reports(node_id: str, tasks: list[OwnTask], addresses: dict[str, str]) -> dict[str, str]:
    """Task id -> overlay address to report: the tasks whose container's address differs
    from what the FSM holds."""
    seen = {task_of_container(name, node_id): address for name, address in addresses.items()}
    return {
        task.task_id: seen[task.task_id]
        for task in tasks
        if seen.get(task.task_id) and seen[task.task_id] != task.overlay_ip
    }


class NetworkActor(NodeActor):
    wants_state = staticmethod(network_concerned)  # RaftListeners tells it only these

    def __init__(
        self,
        node_id: str,
        host: OverlayHost,
        raft: pykka.ActorRef,
        gossip: pykka.ActorRef,
        request_timeout: float,
        on_fatal: FatalHandler,
    ) -> None:
        super().__init__(on_fatal)
        self.node_id = node_id
        self.host = host
        self.raft = raft
        self.gossip = gossip
        self.timeout = request_timeout
        self._reading = False
        self._last_pass = -MIN_PASS_S
        self._proposed: dict[tuple[str, str], float] = {}  # (kind, key) -> when last proposed
        self._last_problem = ""
        self._last_skipped: tuple[str, ...] = ()
        self._dns: DnsServer | None = None

    def on_receive(self, message: Any) -> Any:
        match message:
            case Tick(_, gate):
                if gate is not None:
                    gate.release()
                self._read()
            case StateChanged(touched) if not network_concerned(touched, self.node_id):
                pass
            case StateChanged() | LeadershipChanged():
                if time.monotonic() - self._last_pass >= MIN_PASS_S:
                    self._read()
            case _Read(outcome):
                self._reading = False
                self._last_pass = time.monotonic()
                if outcome.ok:
                    self._pass(outcome.value)
                else:
                    logger.debug("network: cannot read the cluster state: {}", outcome.message)
        return None

    def on_stop(self) -> None:
        if self._dns is not None:
            self._dns.stop()
        self.host.stop()

    def _read(self) -> None:
        if not self._reading:
            self._reading = True
            self.raft.tell(
                Read(cluster_view(self.node_id), self.answer(_Read), stale=True, timeout=self.timeout)
            )

    def _pass(self, view: ClusterView) -> None:
        now = time.monotonic()
        cidr = self.host.settings.cluster_cidr
        if view.is_leader:
            wall = time.time()
            for node_id in subnets_to_allocate(view.nodes, cidr):
                allocate = AllocateSubnet(node_id=node_id, cluster_cidr=cidr, at=wall)
                self._propose(("subnet", node_id), allocate, now)
            release_after = float(self.host.settings.release_after)
            for node_id in subnets_to_release(view.nodes, release_after, wall):
                release = ReleaseSubnet(node_id=node_id, reason=f"gone for {release_after:g} s", at=wall)
                self._propose(("release", node_id), release, now)
        subnets = {n.node_id: n for n in view.nodes}
        own = subnets.get(self.node_id)
        if own is None or not own.subnet or subnet_index(cidr, own.subnet) is None:
            return  # no subnet yet: the leader allocates one
        try:
            members = self.gossip.ask("members", timeout=MEMBERS_TIMEOUT_S)
        except pykka.Timeout:
            logger.debug("network: gossip did not list the members in time")
            return
        peers = [
            Peer(m.id, subnets[m.id].subnet, m.meta.underlay_ip, m.meta.vtep_mac.lower())
            for m in members
            if m.id != self.node_id and m.status in LIVE_STATUSES and m.id in subnets
        ]
        try:
            done = self.host.converge(own.subnet, peers)
            addresses = self.host.addresses()
        except Exception as exc:  # netlink, Docker or iptables: the next pass tries again
            logger.warning("network: cannot apply the overlay plan: {}", exc)
            return
        changes = done.changes
        for route in changes.add_routes:
            logger.info("network: route to {} via {}", route.subnet, route.gateway)
        for route in changes.del_routes:
            logger.info("network: route to {} removed", route.subnet)
        if done.skipped != self._last_skipped:
            self._last_skipped = done.skipped
            for why in done.skipped:
                logger.info("network: peer left out: {}", why)
        if done.problem != self._last_problem:
            self._last_problem = done.problem
            if done.problem:
                logger.warning("network: {}", done.problem)
        if not done.problem:
            self._serve_names(gateway_address(own.subnet), view.services)
        for task_id, address in address_reports(self.node_id, view.tasks, addresses).items():
            command = ReportOverlayAddress(
                task_id=task_id, node_id=self.node_id, overlay_ip=address, at=time.time()
            )
            self._propose(("address", f"{task_id}/{address}"), command, now)

    def _serve_names(self, gateway: str, records: dict[str, list[str]]) -> None:
        """The service-name resolver on the task bridge's gateway (made again if it moved)."""
        if self._dns is not None and self._dns.address != gateway:
            self._dns.stop()
            self._dns = None
        if self._dns is None:
            try:
                self._dns = DnsServer(gateway).start()
            except OSError as exc:
                logger.warning("network: cannot serve service names on {}:53: {}", gateway, exc)
                return
            logger.info("network: serving service names on {}:53", gateway)
        self._dns.set_records(records)

    def _propose(self, key: tuple[str, str], command: Command, now: float) -> None:
        if now - self._proposed.get(key, -RETRY_S) < RETRY_S:
            return
        self._proposed[key] = now
        if len(self._proposed) > 10_000:  # only recent ones matter
            self._proposed = {k: t for k, t in self._proposed.items() if now - t < RETRY_S}
        self.raft.tell(Propose(encode_command(command), _log_refusal, timeout=self.timeout))


def _log_refusal(outcome: Outcome) -> None:
    if not outcome.ok:
        logger.info("network: proposal not applied: {} {}", outcome.code, outcome.message)
