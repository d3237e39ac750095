"""A deterministic simulation of a Raft cluster: N nodes, each a ``RaftShell`` (the production
Ready loop, identity checks and snapshot streams) around a ``RaftCore``, with a ``MemoryStore``
and a tiny KV FSM, over a SimNetwork that carries real encoded frames, on a virtual clock
counted in ticks. One seed drives every random choice (network, election timeouts, faults),
so a seed replays a run exactly.

Faults: crashes (optionally between a leader's send and its write, or while a leader writing
behind its sends still has writes in flight: ``write_delay``), partitions, loss,
duplication, reordering, the transport's frame limit, disk loss (a node restarts with an empty
store and a new incarnation; with ``membership_policy`` the leader replaces it as production
does), and an adversary that holds messages (``net.hold``) for targeted schedules.

Checks, on every step: the safety invariants (``InvariantChecker``, one per cluster id), every
ReadIndex read against the write history (``LinearizabilityChecker``), no fork (nodes never
follow leaders of two different clusters), and no promise ahead of the store: every
acknowledgement and granted vote is checked against its sender's store as it leaves
(``SimNode``). A violation raises naming the seed.

Randomized runs: ``orion.sim.raft_random`` (``python -m orion.sim.raft_random --seeds 1000``).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable

from orion.cluster.membership import AddNonVoter, MemberStatus, Promote, Remove, UpdateAddress, next_change
from orion.raft.core import FOLLOWER, LEADER, ConfigChangeInProgress, NotLeaderError, RaftConfig, RaftCore
from orion.raft.envelope import Envelope
from orion.raft.messages import Message
from orion.raft.shell import RaftShell
from orion.raft.types import Membership
from orion.sim.invariants import InvariantChecker, InvariantViolation
from orion.sim.kv import KVFsm
from orion.sim.linearizability import LinearizabilityChecker, LinearizabilityViolation
from orion.sim.network import SimNetwork
from orion.sim.raft_node import ObservedStore, SimCrash, SimNode

__all__ = ["InvariantViolation", "LinearizabilityViolation", "SimCluster", "SimNode"]

NO_SNAPSHOTS = 1 << 62


def address(node_id: str) -> str:
    return f"sim:{node_id}"


class SimCluster:
    def __init__(
        self,
        n: int = 3,
        seed: int = 0,
        config: RaftConfig | None = None,
        *,
        drop: float = 0.0,
        duplicate: float = 0.0,
        max_delay: int = 0,
        long_delay: float = 0.0,
        snapshots: bool = False,
        snapshot_threshold: int | None = None,
        snapshot_delay: int = 0,
        chunk_bytes: int = 1 << 20,
        window_bytes: int = 4 << 20,
        max_frame: int = 0,
        crash_after_send: float = 0.0,
        write_delay: int | None = None,
        identity: bool = True,
        membership_policy: bool = False,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.config = config or RaftConfig()
        self.net = SimNetwork(
            random.Random(self.rng.getrandbits(64)),
            drop=drop,
            duplicate=duplicate,
            max_delay=max_delay,
            long_delay=long_delay,
            max_frame=max_frame,
        )
        self.net.stamp = self._stamp
        self.snapshots = snapshots
        self.snapshot_threshold = snapshot_threshold or self.config.snapshot_threshold
        self.snapshot_delay = snapshot_delay  # ticks a local snapshot job takes (0: at once)
        self.chunk_bytes = chunk_bytes
        self.window_bytes = window_bytes
        # Probability, per Ready of a leader whose vote is settled, of crashing after its
        # messages left and before its entries were written (production's send-first order).
        self.crash_after_send = crash_after_send
        # Leaders write behind their sends through a writer (production's writer thread) whose
        # writes take 0..write_delay ticks each, in order; None: they write in the Ready pass.
        # Its own generator, so the other draws of a seed stay as they were.
        self.max_write_delay = write_delay
        self._write_rng = random.Random(seed ^ 0x57A1E)
        self.identity = identity  # False: a legacy cluster (no cluster id, no incarnations)
        self.membership_policy = membership_policy  # leaders run orion.cluster.membership
        self.max_voters = n
        self.max_members: int | None = None  # the policy's cap; nodes beyond it stay workers
        self.remove_after = float(1 << 30)  # ticks a dead member is kept (never, by default)
        self.cluster_id = self._hex() if identity else ""
        self._checkers: dict[str, tuple[InvariantChecker, LinearizabilityChecker]] = {}
        self.checker, self.history = self.checkers_for(self.cluster_id)
        self._read_keys: dict[bytes, bytes] = {}  # read context -> key, for reads the history checks
        self._read_seq = 0
        self.followed: dict[str, tuple[str, str]] = {}  # cluster id -> a (follower, leader) seen
        self.now = 0
        self.digest = 0  # CRC of every observable event: equal digests, equal histories
        self.events = 0
        self.nodes: dict[str, SimNode] = {}
        self.status_since: dict[str, int] = {}  # node -> tick its liveness last changed
        self.addresses: dict[str, str] = {}  # node -> the Raft address it advertises now
        self.disconnected: set[str] = set()
        ids = [f"n{i}" for i in range(1, n + 1)]
        incarnations = {node_id: self._hex() for node_id in ids}
        membership = Membership(
            voters={i: address(i) for i in ids},
            cluster_id=self.cluster_id,
            incarnations=incarnations if identity else {},
        )
        for node_id in ids:
            self.nodes[node_id] = SimNode(self, node_id, membership, incarnations[node_id])
            self.start(node_id)

    def _hex(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"  # like uuid4().hex, from the seed

    def checkers_for(self, cluster_id: str) -> tuple[InvariantChecker, LinearizabilityChecker]:
        """The checkers of one cluster ("" is the main one: a legacy or not yet configured node).
        A node that founded another cluster is a separate system with its own history."""
        key = cluster_id or self.cluster_id
        found = self._checkers.get(key)
        if found is None:
            found = self._checkers[key] = (InvariantChecker(self.seed), LinearizabilityChecker(self.seed))
        return found

    # -------------------------------------------------------------- node lifecycle
    @property
    def ids(self) -> list[str]:
        return list(self.nodes)

    def core(self, node_id: str) -> RaftCore:
        core = self.nodes[node_id].core
        assert core is not None, f"{node_id} is crashed"
        return core

    def add_node(self, node_id: str) -> SimNode:
        """A new, empty node that waits to be added to the configuration by the leader."""
        node = SimNode(self, node_id, None, self._hex())
        self.nodes[node_id] = node
        self.start(node_id)
        return node

    def start(self, node_id: str) -> None:
        """(Re)start a node from whatever its store holds."""
        node = self.nodes[node_id]
        stored = node.store.load()
        rng = random.Random(self.rng.getrandbits(64))
        core = RaftCore(node_id, stored, self.config, rng, bootstrap=node.bootstrap)
        shell = RaftShell(
            core,
            node.store,
            node,
            incarnation=node.incarnation,
            snapshot_threshold=self.snapshot_threshold if self.snapshots else NO_SNAPSHOTS,
            chunk_bytes=self.chunk_bytes,
            window_bytes=self.window_bytes,
            saved_hard_state=stored.hard_state,
            writer=node if self.max_write_delay is not None else None,
        )
        shell.fault_hook = self._fault_hook
        node.shell = shell
        node.fsm = KVFsm()
        node.reads = {}
        node.snapshot_jobs = []
        if stored.snapshot is not None:
            node.fsm.restore(stored.snapshot.data)
            checker = self.checkers_for(stored.snapshot.meta.membership.cluster_id)[0]
            checker.on_restore(node_id, stored.snapshot.meta.index, node.fsm.chain)
        self.status_since[node_id] = self.now
        self._record(("start", node_id))

    def crash(self, node_id: str) -> None:
        """Lose everything not persisted: the shell and core, the FSM, pending reads, snapshot
        jobs in progress."""
        node = self.nodes[node_id]
        node.shell = None
        node.snapshot_jobs = []
        node.writes = []  # handed to the writer, never written
        node.bootstrap_at = None
        for context in sorted(node.open_reads):
            self.history.on_read_lost(context)
            del self._read_keys[context]
        node.open_reads.clear()
        self.status_since[node_id] = self.now
        self._record(("crash", node_id))

    def wipe(self, node_id: str, bootstrap_grace: int | None = None) -> None:
        """Disk loss: the node dies, its store is replaced by an empty one (a new data dir, so a
        new incarnation) and it starts again. It waits to be added back by the leader; with
        ``bootstrap_grace`` it is a ``bootstrap = true`` node and founds a new cluster if it
        hears none within that many ticks (0: at once, as nodes did before the identity checks)."""
        node = self.nodes[node_id]
        if node.alive:
            self.crash(node_id)
        node.store = ObservedStore()
        node.store.save_identity(self._hex())
        node.store.on_save = node.on_save
        node.bootstrap = None
        node.failed_reads = []
        self.start(node_id)
        self._record(("wipe", node_id, node.incarnation))
        if bootstrap_grace is not None:
            node.bootstrap_at = self.now + bootstrap_grace
            self._maybe_bootstrap(node)

    def readdress(self, node_id: str) -> str:
        """The node comes back at another Raft address (its data kept): gossip advertises the
        new one and the leader's policy re-addresses it (frames are routed by node id here, so
        only the configuration changes)."""
        self.addresses[node_id] = f"{address(node_id)}#{self.now}"
        self._record(("readdress", node_id, self.addresses[node_id]))
        return self.addresses[node_id]

    def disconnect(self, node_id: str) -> None:
        """Cut a node off from everyone (MIT's disconnect)."""
        self.disconnected.add(node_id)
        self.net.disconnect(node_id, self.ids)

    def connect(self, node_id: str) -> None:
        """Reconnect a node to every node that is itself connected."""
        self.disconnected.discard(node_id)
        self.net.connect(node_id, [i for i in self.ids if i not in self.disconnected])

    def connected(self, node_id: str) -> bool:
        return node_id not in self.disconnected

    # -------------------------------------------------------------- driving
    def _record(self, event: tuple[object, ...]) -> None:
        self.events += 1
        self.digest = zlib.crc32(repr((self.now, event)).encode(), self.digest)

    def write_delay(self) -> int:
        assert self.max_write_delay is not None
        return self._write_rng.randint(0, self.max_write_delay)

    def _fault_hook(self, phase: str) -> None:
        if phase != "sent_before_persist" or not self.crash_after_send:
            return
        if self.rng.random() < self.crash_after_send:
            raise SimCrash(phase)

    def _stamp(self, msg: Message) -> Envelope:
        """The envelope the sender's shell would put around ``msg``."""
        node = self.nodes[msg.src]
        membership = self.core(msg.src).membership
        dst_incarnation = membership.incarnations.get(msg.dst, "")
        return Envelope(membership.cluster_id, node.incarnation, dst_incarnation, msg)

    def _drain(self, node: SimNode) -> None:
        shell = node.shell
        assert shell is not None
        try:
            shell.drain()
        except SimCrash:
            self.crash(node.id)  # sent, never written: followers may hold what the leader lost
            return
        if node.open_reads:
            self._serve_reads(node)
        core = shell.core
        self.checkers_for(core.membership.cluster_id)[0].on_state(node.id, core)
        self._check_no_fork(node.id, core)
        self._record((node.id, core.role, core.term, core.commit_index, core.last_index, node.frames_sent))

    def _check_no_fork(self, node_id: str, core: RaftCore) -> None:
        """Nodes following leaders of two different clusters: a fork others follow."""
        if core.role != FOLLOWER or not core.leader_id:
            return
        leader = self.nodes.get(core.leader_id)
        lcore = leader.core if leader is not None else None
        if lcore is None or lcore.role != LEADER or lcore.term != core.term:
            return
        cluster = lcore.membership.cluster_id
        mine = core.membership.cluster_id
        if cluster and mine and cluster != mine:
            raise InvariantViolation(
                f"seed={self.seed}: fork: {node_id} of cluster {mine} follows {lcore.id} of cluster {cluster}"
            )
        if cluster and cluster not in self.followed:
            self.followed[cluster] = (node_id, lcore.id)
            if len(self.followed) > 1:
                seen = self.followed
                raise InvariantViolation(f"seed={self.seed}: fork: leaders of two clusters followed: {seen}")

    def _serve_reads(self, node: SimNode) -> None:
        """Serve every read whose index the FSM has reached, from the FSM as it is now."""
        fsm = node.fsm
        for context in sorted(node.open_reads):
            index = node.reads.get(context)
            if index is not None and fsm.applied_index >= index:
                node.open_reads.discard(context)
                key = self._read_keys.pop(context)
                self.history.on_read_completed(context, fsm.read(key), fsm.applied_index, self.now)

    def read_failed(self, node: SimNode, context: bytes) -> None:
        if context in node.open_reads:
            node.open_reads.discard(context)
            del self._read_keys[context]
            self.history.on_read_failed(context)

    def read(self, node_id: str, key: bytes) -> bytes:
        """A linearizable read of ``key`` through ReadIndex at ``node_id`` (raises NotLeaderError
        there). The history checks the value when the node serves it. Returns the read's id."""
        self._read_seq += 1
        context = f"read{self._read_seq}".encode()
        self.core(node_id).read_index(context)
        self._read_keys[context] = key
        self.nodes[node_id].open_reads.add(context)
        self.history.on_read_invoked(context, key, self.now)
        return context

    def settle(self, max_rounds: int = 10_000) -> None:
        """Drain every node's shell and deliver due frames until nothing is left to do."""
        nodes = self.nodes
        for _ in range(max_rounds):
            busy = False
            for node in nodes.values():
                if node.writes and node.complete_due_writes():
                    self._record(("written", node.id, len(node.store.entries)))
                    busy = True
            for node in nodes.values():
                core = node.core
                if core is not None and core.has_ready():
                    self._drain(node)
                    busy = True
            for envelope in self.net.due(self.now):
                target = nodes.get(envelope.body.dst)
                if target is not None and target.shell is not None:
                    target.shell.receive_envelope(envelope)
                    busy = True
            if not busy:
                return
        raise RuntimeError(f"seed={self.seed}: cluster did not settle")

    def tick(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            self.now += 1
            for node in self.nodes.values():
                if node.shell is not None:
                    self._tick_node(node)
            self.settle()

    def _tick_node(self, node: SimNode) -> None:
        shell = node.shell
        assert shell is not None
        shell.tick()
        if node.snapshot_jobs:
            due = [job for job in node.snapshot_jobs if job[0] <= self.now]
            node.snapshot_jobs = [job for job in node.snapshot_jobs if job[0] > self.now]
            for _, snapshot in due:
                node.finish_snapshot(snapshot)
        if node.bootstrap_at is not None:
            self._maybe_bootstrap(node)
        if self.membership_policy and shell.core.role == LEADER:
            self._run_policy(node)

    def tick_node(self, node_id: str) -> None:
        """One tick of ``node_id``'s clock alone (the others are paused), for targeted schedules."""
        self._tick_node(self.nodes[node_id])
        self.settle()

    def run_until(self, cond: Callable[[], bool], max_ticks: int) -> bool:
        self.settle()
        for _ in range(max_ticks):
            if cond():
                return True
            self.tick()
        return cond()

    # -------------------------------------------------------------- production policies
    def _maybe_bootstrap(self, node: SimNode) -> None:
        """The Raft actor's rule: an empty ``bootstrap = true`` node founds a cluster only if
        nobody spoke for an existing one during the grace period."""
        shell = node.shell
        assert shell is not None and node.bootstrap_at is not None
        core = shell.core
        if shell.heard_clusters or core.term > 0 or core.last_index > 0:
            node.bootstrap_at = None
            return
        if self.now < node.bootstrap_at:
            return
        node.bootstrap_at = None
        core.bootstrap(
            Membership(
                voters={node.id: address(node.id)},
                cluster_id=self._hex() if self.identity else "",
                incarnations={node.id: node.incarnation} if self.identity else {},
            )
        )
        self._record(("bootstrap", node.id, core.membership.cluster_id))

    def member_view(self, viewer: str) -> dict[str, MemberStatus]:
        """What ``viewer``'s gossip would report: crashed nodes dead, nodes it cannot reach
        suspect, the others alive, each with the identity it advertises."""
        view = {}
        for node in self.nodes.values():
            core = node.core
            if core is None:
                status = "dead"
            elif self.net.connected(viewer, node.id) and self.net.connected(node.id, viewer):
                status = "alive"
            else:
                status = "suspect"
            view[node.id] = MemberStatus(
                status,
                float(self.status_since.get(node.id, 0)),
                self.addresses.get(node.id, address(node.id)),
                node.incarnation if self.identity else "",
                core.membership.cluster_id if core is not None else "",
            )
        return view

    def _run_policy(self, node: SimNode) -> None:
        """The leader makes the membership change the production policy asks for, if any."""
        core = node.core
        assert core is not None
        if core.transferee:
            return
        change = next_change(
            leader_id=node.id,
            membership=core.membership,
            members=self.member_view(node.id),
            match_index=core.match_index,
            commit_index=core.commit_index,
            now=float(self.now),
            max_voters=self.max_voters,
            remove_after=self.remove_after,
            max_members=self.max_members,
        )
        try:
            if isinstance(change, AddNonVoter):
                core.add_non_voter(change.node_id, change.address, change.incarnation)
            elif isinstance(change, Promote):
                core.promote(change.node_id)
            elif isinstance(change, Remove):
                core.remove(change.node_id)
            elif isinstance(change, UpdateAddress):
                core.update_address(change.node_id, change.address)
            else:
                return
        except (ConfigChangeInProgress, NotLeaderError):
            return
        self._record(("policy", node.id, repr(change)))

    # -------------------------------------------------------------- observations
    def leaders(self) -> list[str]:
        return [
            n.id
            for n in self.nodes.values()
            if n.core is not None and n.core.role == LEADER and self.connected(n.id)
        ]

    def leader(self) -> str | None:
        """The leader of the highest term among live, connected nodes, if any."""
        best: tuple[int, str] | None = None
        for node_id in self.leaders():
            term = self.core(node_id).term
            if best is None or term > best[0]:
                best = (term, node_id)
        return best[1] if best else None

    def wait_leader(self, max_ticks: int = 200) -> str:
        if not self.run_until(lambda: self.leader() is not None, max_ticks):
            raise AssertionError(f"seed={self.seed}: no leader elected within {max_ticks} ticks")
        leader = self.leader()
        assert leader is not None
        return leader

    def check_one_leader(self, max_ticks: int = 200) -> str:
        """MIT's checkOneLeader: a connected leader appears; the checker already guarantees
        at most one per term."""
        return self.wait_leader(max_ticks)

    def check_no_leader(self) -> None:
        leaders = self.leaders()
        if leaders:
            raise AssertionError(f"seed={self.seed}: expected no leader among connected, got {leaders}")

    def check_terms(self) -> int:
        terms = {n.core.term for n in self.nodes.values() if n.core is not None and self.connected(n.id)}
        if len(terms) != 1:
            raise AssertionError(f"seed={self.seed}: servers disagree on term: {terms}")
        return terms.pop()

    def n_committed(self, index: int) -> tuple[int, bytes | None]:
        """How many nodes applied ``index`` (the checker guarantees they agree), and its data."""
        entry = self.checker.committed.get(index)
        count = sum(1 for n in self.nodes.values() if n.core is not None and n.fsm.applied_index >= index)
        return count, (entry.data if entry is not None else None)

    def propose(self, data: bytes) -> tuple[int, int, bool]:
        """MIT's Start(): propose at any live node that thinks it leads. (index, term, ok)."""
        for node in self.nodes.values():
            core = node.core
            if core is not None and core.role == LEADER:
                try:
                    index = core.propose(data)
                except NotLeaderError:
                    continue
                term = core.term
                self.settle()
                return index, term, True
        return 0, 0, False

    def one(self, data: bytes, expected: int, retry: bool = True, max_ticks: int = 400) -> int:
        """Agree on ``data``: keep proposing at the leader until ``expected`` nodes applied it
        (MIT's one()). Returns its index."""
        deadline = self.now + max_ticks
        while self.now < deadline:
            index = 0
            leader = self.leader()
            if leader is not None:
                try:
                    index = self.core(leader).propose(data)
                except NotLeaderError:
                    pass
            if index:
                self.settle()
                wait_until = self.now + 40
                while self.now < wait_until:
                    count, got = self.n_committed(index)
                    if count >= expected and got == data:
                        return index
                    self.tick()
                if not retry:
                    raise AssertionError(f"seed={self.seed}: one({data!r}) failed to reach agreement")
            else:
                self.tick()
        raise AssertionError(f"seed={self.seed}: one({data!r}) failed to reach agreement")

    def max_term(self) -> int:
        return max((n.core.term for n in self.nodes.values() if n.core is not None), default=0)
