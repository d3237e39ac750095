"""Deterministic simulation of a cluster of SwimCores on a virtual clock.

One thread, one seed: a heap of timed actions (deliver a datagram, tick a core) drives the real
``SwimCore`` objects through ``tick``/``receive`` exactly as a node shell would, so a failing seed
replays. Each core is ticked at its own ``next_deadline()``, never by a fixed step.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from orion.gossip.config import GossipConfig
from orion.gossip.core import SwimCore
from orion.gossip.events import ForeignGossip, MemberEvent
from orion.gossip.messages import GossipMessage, decode_message, encode_message
from orion.model import NodeMeta
from orion.sim.gossip_network import GossipNetwork

_TICK = 0
_DELIVER = 1


@dataclass(frozen=True, slots=True)
class ObservedEvent:
    at: float
    observer: str  # the member whose core emitted the event
    event: MemberEvent


def sim_meta(index: int, **fields: object) -> NodeMeta:
    """Meta for simulated member ``index``: id n000.., gossip address 127.0.0.1:(20000 + index)."""
    return NodeMeta(id=f"n{index:03d}", gossip_port=20000 + index, **fields)  # type: ignore[arg-type]


class GossipCluster:
    def __init__(
        self,
        size: int,
        config: GossipConfig,
        seed: int,
        *,
        loss: float = 0.0,
        delay: tuple[float, float] = (0.001, 0.005),
        encode: bool = False,
        record_events: bool = True,
        measure_cpu: bool = False,
    ) -> None:
        self.config = config
        self.seed = seed
        self.now = 0.0
        self._rng = random.Random(seed)
        self.network = GossipNetwork(random.Random(self._rng.getrandbits(64)), loss=loss, delay=delay)
        self._encode = encode
        self._record = record_events
        self._measure = measure_cpu
        self.cores: dict[str, SwimCore] = {}
        self.metas: dict[str, NodeMeta] = {}
        self._by_address: dict[str, str] = {}
        self.crashed: set[str] = set()
        self.events: list[ObservedEvent] = []
        self.foreign: list[tuple[str, ForeignGossip]] = []  # (observer, report) for gossip it dropped
        self.on_event: Callable[[ObservedEvent], None] | None = None
        self.core_seconds = 0.0  # CPU time spent inside the cores, when measure_cpu is set
        self.delivered = 0
        self.rejected = 0  # datagrams that failed to decode
        self._heap: list[tuple[float, int, int, str, object]] = []
        self._counter = 0
        self._tick_at: dict[str, float] = {}
        for index in range(size):
            self.add(sim_meta(index))

    # ----- membership of the simulation ---------------------------------------------------------

    def add(self, meta: NodeMeta) -> SwimCore:
        """Start a (new or restarted) core for ``meta``; it does not join until told to."""
        core = SwimCore(meta, self.config, random.Random(self._rng.getrandbits(64)), self.now)
        self.cores[meta.id] = core
        self.metas[meta.id] = meta
        self._by_address[meta.gossip_address] = meta.id
        self.crashed.discard(meta.id)
        self._tick_at.pop(meta.id, None)
        self._pump(meta.id)
        return core

    @property
    def ids(self) -> list[str]:
        return list(self.cores)

    def address(self, node_id: str) -> str:
        return self.metas[node_id].gossip_address

    def join(self, node_id: str, seeds: list[str]) -> None:
        self.cores[node_id].join([self.address(seed) for seed in seeds], self.now)
        self._pump(node_id)

    def join_all(self, seed: str | None = None) -> None:
        """Every member joins through one seed (the first member by default)."""
        seed = seed or next(iter(self.cores))
        for node_id in self.cores:
            if node_id != seed:
                self.join(node_id, [seed])

    def crash(self, node_id: str) -> None:
        """Stop a member silently: it neither ticks nor processes datagrams any more."""
        self.crashed.add(node_id)

    def restart(self, node_id: str, seeds: list[str], meta: NodeMeta | None = None) -> SwimCore:
        """A new process for a crashed member: fresh core (incarnation 0), same id and address.

        ``meta`` replaces the member's meta (same id and address): a wiped data dir comes back with
        a new ``raft_incarnation`` and a meta version counting from the start again. With no seeds
        the member joins through nobody and waits for the others to reach it.
        """
        if meta is not None and (meta.id != node_id or meta.gossip_address != self.address(node_id)):
            raise ValueError(f"restart meta must keep id {node_id} and address {self.address(node_id)}")
        core = self.add(meta or self.metas[node_id])
        if seeds:
            self.join(node_id, seeds)
        return core

    def set_identity(self, node_id: str, cluster_id: str, raft_incarnation: str) -> None:
        """The member learnt its cluster id from Raft (its gossip actor got ClusterIdentity)."""
        self.cores[node_id].set_identity(cluster_id, raft_incarnation, self.now)
        self._pump(node_id)

    def leave(self, node_id: str) -> None:
        self.cores[node_id].leave(self.now)
        self._pump(node_id)

    def update_meta(self, meta: NodeMeta) -> None:
        self.cores[meta.id].update_meta(meta, self.now)
        self._pump(meta.id)

    def partition(self, groups: list[list[str]]) -> None:
        self.network.partition([[self.address(node_id) for node_id in group] for group in groups])

    def heal(self) -> None:
        self.network.heal()

    def set_slow(self, node_id: str, processing_delay: tuple[float, float] | None) -> None:
        self.network.set_slow(self.address(node_id), processing_delay)

    def inject(self, node_id: str, datagram: bytes) -> bool:
        """Hand raw bytes to a member as its shell would: decode, and drop what fails. True if accepted."""
        try:
            msg = decode_message(datagram)
        except Exception:
            self.rejected += 1
            return False
        self._run_core(node_id, lambda core: core.receive(msg, self.now))
        return True

    # ----- running ------------------------------------------------------------------------------

    def run_until(self, deadline: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= deadline:
            at, _, kind, node_id, payload = heapq.heappop(heap)
            self.now = at
            if node_id in self.crashed:
                continue
            if kind == _TICK:
                if self._tick_at.get(node_id) != at:
                    continue  # superseded by an earlier tick
                del self._tick_at[node_id]
                self._run_core(node_id, lambda core: core.tick(self.now))
            else:
                self._deliver(node_id, payload)
        self.now = max(self.now, deadline)

    def run_for(self, duration: float) -> None:
        self.run_until(self.now + duration)

    def run_until_true(self, condition: Callable[[], bool], timeout: float, step: float = 0.25) -> bool:
        """Advance simulated time until ``condition()`` holds (checked every ``step``) or timeout passes."""
        deadline = self.now + timeout
        while not condition():
            if self.now >= deadline:
                return False
            self.run_until(min(deadline, self.now + step))
        return True

    # ----- observing ----------------------------------------------------------------------------

    def view(self, observer: str) -> dict[str, str]:
        """node id -> status as ``observer`` sees it (itself included)."""
        return {member.id: member.status for member in self.cores[observer].members()}

    def running(self) -> list[str]:
        return [node_id for node_id in self.cores if node_id not in self.crashed]

    def all_see(self, node_id: str, status: str, observers: list[str] | None = None) -> bool:
        observers = observers if observers is not None else self.running()
        return all(self.view(obs).get(node_id) == status for obs in observers if obs != node_id)

    def converged(self, members: list[str] | None = None) -> bool:
        """Every running member sees exactly the running members, all alive."""
        running = members if members is not None else self.running()
        expected = dict.fromkeys(running, "alive")
        for observer in running:
            view = self.view(observer)
            if {k: v for k, v in view.items() if v in ("alive", "suspect")} != expected:
                return False
        return True

    # ----- internals ----------------------------------------------------------------------------

    def _run_core(self, node_id: str, action: Callable[[SwimCore], None]) -> None:
        core = self.cores[node_id]
        if self._measure:
            started = time.process_time()
            action(core)
            self.core_seconds += time.process_time() - started
        else:
            action(core)
        self._pump(node_id)

    def _deliver(self, node_id: str, payload: object) -> None:
        self.delivered += 1
        if self._encode:
            try:
                msg: GossipMessage = decode_message(payload)  # type: ignore[arg-type]
            except Exception:
                self.rejected += 1
                return
        else:
            msg = payload  # type: ignore[assignment]
        self._run_core(node_id, lambda core: core.receive(msg, self.now))

    def _push(self, at: float, kind: int, node_id: str, payload: object) -> None:
        self._counter += 1
        heapq.heappush(self._heap, (at, self._counter, kind, node_id, payload))

    def _pump(self, node_id: str) -> None:
        """Collect what a core produced: datagrams onto the network, events into the log, its next tick."""
        core = self.cores[node_id]
        source = core.address
        started = time.process_time() if self._measure else 0.0
        outbox = core.drain_outbox()
        events = core.drain_events()
        foreign = core.drain_foreign()
        deadline = core.next_deadline()
        if self._measure:
            self.core_seconds += time.process_time() - started
        for destination, msg in outbox:
            target = self._by_address.get(destination)
            if target is None:
                continue
            latency = self.network.fate(source, destination)
            if latency is None:
                continue
            payload: object = encode_message(msg) if self._encode else msg
            self._push(self.now + latency, _DELIVER, target, payload)
        self.foreign.extend((node_id, report) for report in foreign)
        if events and (self._record or self.on_event is not None):
            for event in events:
                observed = ObservedEvent(self.now, node_id, event)
                if self._record:
                    self.events.append(observed)
                if self.on_event is not None:
                    self.on_event(observed)
        if deadline is not None:
            at = max(deadline, self.now)
            current = self._tick_at.get(node_id)
            if current is None or at < current:
                self._tick_at[node_id] = at
                self._push(at, _TICK, node_id, None)
