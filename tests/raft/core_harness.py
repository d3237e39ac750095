"""A few RaftCores wired together directly, for focused core tests.

Each Ready is handled in the documented order (snapshot, persist, send, apply, advance), with a
MemoryStore per node. Messages go into one inbox and are delivered in order; a test can block
a node (its messages are lost both ways), drop messages matching a predicate, or hold them
aside and release them later. Every message handed over is kept in ``sent``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from orion.raft.core import LEADER, RaftConfig, RaftCore
from orion.raft.memory_store import MemoryStore
from orion.raft.messages import AppendEntries, InstallSnapshot, Message
from orion.raft.types import Membership, Snapshot, StoredState

MessageFilter = Callable[[Message], bool]


class CoreHarness:
    def __init__(
        self,
        ids: list[str],
        config: RaftConfig,
        *,
        seed: int = 1,
        membership: Membership | None = None,
    ) -> None:
        self.config = config
        self.membership = membership or Membership(voters={i: f"core:{i}" for i in ids}, cluster_id="c0ffee")
        self.stores: dict[str, MemoryStore] = {}
        self.cores: dict[str, RaftCore] = {}
        self.applied: dict[str, int] = {}
        self.installed: dict[str, list[Snapshot]] = {}  # snapshots each node got from a leader
        self.sent: list[Message] = []
        self.inbox: list[Message] = []
        self.held: list[Message] = []
        self.blocked: set[str] = set()
        self.drop: MessageFilter = lambda _msg: False
        self.hold: MessageFilter = lambda _msg: False
        self._rng = random.Random(seed)
        for node_id in ids:
            self.stores[node_id] = MemoryStore()
            self.start(node_id, self.stores[node_id].load(), bootstrap=self.membership)

    def start(self, node_id: str, stored: StoredState, *, bootstrap: Membership | None = None) -> RaftCore:
        core = RaftCore(node_id, stored, self.config, random.Random(self._rng.getrandbits(64)), bootstrap)
        self.cores[node_id] = core
        self.applied[node_id] = core.applied_index
        self.installed.setdefault(node_id, [])
        return core

    def add_empty(self, node_id: str) -> RaftCore:
        """A new node with an empty store, waiting to be added (or bootstrapped)."""
        self.stores[node_id] = MemoryStore()
        return self.start(node_id, self.stores[node_id].load())

    def core(self, node_id: str) -> RaftCore:
        return self.cores[node_id]

    def _process(self, node_id: str) -> None:
        core = self.cores[node_id]
        store = self.stores[node_id]
        rd = core.ready()
        if rd.snapshot is not None:
            store.save_snapshot(rd.snapshot)
            self.installed[node_id].append(rd.snapshot)
            self.applied[node_id] = rd.snapshot.meta.index
        if rd.entries or rd.hard_state is not None:
            store.save(rd.hard_state, rd.entries)
        self.sent.extend(rd.messages)
        self.inbox.extend(rd.messages)
        for entry in rd.committed:
            assert entry.index == self.applied[node_id] + 1, f"{node_id} applied out of order"
            self.applied[node_id] = entry.index
        core.advance(rd)

    def pump(self, max_rounds: int = 10_000) -> None:
        """Handle Readies and deliver messages until nothing is left to do."""
        for _ in range(max_rounds):
            busy = False
            for node_id, core in self.cores.items():
                if core.has_ready():
                    self._process(node_id)
                    busy = True
            batch, self.inbox = self.inbox, []
            for msg in batch:
                busy = True
                if msg.src in self.blocked or msg.dst in self.blocked or self.drop(msg):
                    continue
                if self.hold(msg):
                    self.held.append(msg)
                    continue
                target = self.cores.get(msg.dst)
                if target is not None:
                    target.step(msg)
            if not busy:
                return
        raise AssertionError("the cores did not settle")

    def release(self) -> None:
        """Deliver what was held aside (the hold predicate still applies to new messages)."""
        held, self.held = self.held, []
        for msg in held:
            target = self.cores.get(msg.dst)
            if target is not None:
                target.step(msg)
        self.pump()

    def tick(self, ticks: int = 1, only: str | None = None) -> None:
        for _ in range(ticks):
            for node_id, core in self.cores.items():
                if only is None or node_id == only:
                    core.tick()
            self.pump()

    def elect(self, node_id: str) -> RaftCore:
        """Make ``node_id`` the leader by letting only its election clock run."""
        core = self.cores[node_id]
        for _ in range(10 * self.config.election_ticks):
            self.tick(only=node_id)
            if core.role == LEADER:
                self.pump()
                return core
        raise AssertionError(f"{node_id} did not become leader")

    def appends_to(self, node_id: str) -> list[AppendEntries]:
        return [m for m in self.sent if isinstance(m, AppendEntries) and m.dst == node_id]

    def snapshots_to(self, node_id: str) -> list[InstallSnapshot]:
        return [m for m in self.sent if isinstance(m, InstallSnapshot) and m.dst == node_id]

    def logs_match(self, a: str, b: str) -> bool:
        ca, cb = self.cores[a], self.cores[b]
        lo = max(ca.log_first_index, cb.log_first_index)
        return ca.last_index == cb.last_index and ca.entries(lo, ca.last_index) == cb.entries(
            lo, cb.last_index
        )
