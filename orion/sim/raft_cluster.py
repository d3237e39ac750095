"""A deterministic simulation of a Raft cluster: N RaftCores, each with a MemoryStore and a
tiny KV FSM, over a SimNetwork, on a virtual clock counted in ticks. One seed drives every
random choice (network, election timeouts, faults), so a seed replays a run exactly.

The shell loop for a node is the production contract: save the snapshot (if any), save hard
state and entries, send messages, apply committed entries, advance. Safety invariants are
checked after every Ready; a violation raises InvariantViolation naming the seed.

CLI for long runs: ``python -m orion.sim.raft_cluster --seeds 1000 [--start 0]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import zlib
from collections.abc import Callable

from orion.raft.core import LEADER, ConfigChangeInProgress, NotLeaderError, RaftConfig, RaftCore, Ready
from orion.raft.memory_store import MemoryStore
from orion.raft.types import EntryKind, Membership
from orion.sim.invariants import InvariantChecker, InvariantViolation
from orion.sim.kv import KVFsm, parse_command
from orion.sim.linearizability import LinearizabilityChecker, LinearizabilityViolation
from orion.sim.network import SimNetwork

__all__ = ["InvariantViolation", "LinearizabilityViolation", "SimCluster", "SimNode", "random_run"]


class SimNode:
    def __init__(self, node_id: str, bootstrap: Membership | None) -> None:
        self.id = node_id
        self.store = MemoryStore()
        self.bootstrap = bootstrap
        self.core: RaftCore | None = None
        self.fsm = KVFsm()
        self.reads: dict[bytes, int] = {}  # read context -> index it may be served at
        self.failed_reads: list[bytes] = []
        self.open_reads: set[bytes] = set()  # reads invoked here through SimCluster.read, unanswered

    @property
    def alive(self) -> bool:
        return self.core is not None


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
        wire: bool = False,
        snapshots: bool = False,
        snapshot_threshold: int | None = None,
        max_frame: int = 0,
        send_before_persist: bool = True,
        crash_after_send: float = 0.0,
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
            wire=wire,
            max_frame=max_frame,
        )
        self.send_before_persist = send_before_persist
        self.crash_after_send = crash_after_send  # probability, per leader Ready with entries
        self.snapshots = snapshots
        self.snapshot_threshold = snapshot_threshold or self.config.snapshot_threshold
        self.checker = InvariantChecker(seed)
        self.history = LinearizabilityChecker(seed)
        self._read_keys: dict[bytes, bytes] = {}  # read context -> key, for reads the history checks
        self._read_seq = 0
        self.now = 0
        self.digest = 0  # CRC of every observable event: equal digests, equal histories
        self.events = 0
        self.nodes: dict[str, SimNode] = {}
        self.disconnected: set[str] = set()
        ids = [f"n{i}" for i in range(1, n + 1)]
        membership = Membership(voters={i: f"sim:{i}" for i in ids})
        for node_id in ids:
            self.nodes[node_id] = SimNode(node_id, membership)
            self.start(node_id)

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
        node = SimNode(node_id, None)
        self.nodes[node_id] = node
        self.start(node_id)
        return node

    def start(self, node_id: str) -> None:
        """(Re)start a node from whatever its store holds."""
        node = self.nodes[node_id]
        stored = node.store.load()
        rng = random.Random(self.rng.getrandbits(64))
        node.core = RaftCore(node_id, stored, self.config, rng, bootstrap=node.bootstrap)
        node.fsm = KVFsm()
        node.reads = {}
        if stored.snapshot is not None:
            node.fsm.restore(stored.snapshot.data)
            self.checker.on_restore(node_id, stored.snapshot.meta.index, node.fsm.chain)
        self._record(("start", node_id))

    def crash(self, node_id: str) -> None:
        """Lose everything not persisted: the core, the FSM, pending reads."""
        node = self.nodes[node_id]
        node.core = None
        for context in sorted(node.open_reads):
            self.history.on_read_lost(context)
            del self._read_keys[context]
        node.open_reads.clear()
        self._record(("crash", node_id))

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

    def _process(self, node: SimNode) -> None:
        core = node.core
        assert core is not None
        rd: Ready = core.ready()
        store = node.store
        if rd.snapshot is not None:
            store.save_snapshot(rd.snapshot)
            node.fsm.restore(rd.snapshot.data)
            self.checker.on_restore(node.id, rd.snapshot.meta.index, node.fsm.chain)
        now = self.now
        send = self.net.send
        hs = rd.hard_state
        # Production ordering: a leader whose term and vote are already durable sends first and
        # writes while its followers do (its own entries count only once advance() sees them).
        early = (
            self.send_before_persist
            and core.role == LEADER
            and (hs is None or (hs.term == store.hard_state.term and hs.vote == store.hard_state.vote))
        )
        if early:
            for msg in rd.messages:
                send(msg, now)
            if self.crash_after_send and rd.entries and self.rng.random() < self.crash_after_send:
                self.crash(node.id)  # sent, never written: followers may hold what the leader lost
                return
        if rd.entries:
            self.checker.on_persist(node.id, core, rd.entries)
        if rd.entries or hs is not None:
            store.save(hs, rd.entries)
        if not early:
            for msg in rd.messages:
                send(msg, now)
        fsm = node.fsm
        checker = self.checker
        history = self.history
        for entry in rd.committed:
            expected = fsm.applied_index + 1
            fsm.apply(entry)
            checker.on_apply(node.id, entry, expected, fsm.chain)
            command = parse_command(entry.data) if entry.kind == EntryKind.NORMAL else None
            if command is None:
                history.on_commit(entry.index, None, b"", now)
            else:
                history.on_commit(entry.index, command[0], command[1], now)
        for rs in rd.read_states:
            node.reads[rs.context] = rs.index
        if node.open_reads:
            self._serve_reads(node)
        for context in rd.failed_reads:
            node.failed_reads.append(context)
            if context in node.open_reads:
                node.open_reads.discard(context)
                del self._read_keys[context]
                history.on_read_failed(context)
        core.advance(rd)
        checker.on_state(node.id, core)
        if self.snapshots and core.applied_index - core.snapshot_index > self.snapshot_threshold:
            snap = core.compact(core.applied_index, fsm.snapshot())
            store.write_snapshot(snap)
            store.compact_log(core.log_first_index - 1)  # the core keeps trailing entries
        self._record((node.id, core.role, core.term, core.commit_index, core.last_index, len(rd.messages)))

    def _serve_reads(self, node: SimNode) -> None:
        """Serve every read whose index the FSM has reached, from the FSM as it is now."""
        fsm = node.fsm
        for context in sorted(node.open_reads):
            index = node.reads.get(context)
            if index is not None and fsm.applied_index >= index:
                node.open_reads.discard(context)
                key = self._read_keys.pop(context)
                self.history.on_read_completed(context, fsm.read(key), fsm.applied_index, self.now)

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
        """Process every node's Ready and deliver due messages until nothing is left to do."""
        nodes = self.nodes
        for _ in range(max_rounds):
            busy = False
            for node in nodes.values():
                core = node.core
                if core is not None and core.has_ready():
                    self._process(node)
                    busy = True
            for msg in self.net.due(self.now):
                target = nodes.get(msg.dst)
                if target is not None and target.core is not None:
                    target.core.step(msg)
                    busy = True
            if not busy:
                return
        raise RuntimeError(f"seed={self.seed}: cluster did not settle")

    def tick(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            self.now += 1
            for node in self.nodes.values():
                if node.core is not None:
                    node.core.tick()
            self.settle()

    def tick_node(self, node_id: str) -> None:
        """One tick of ``node_id``'s clock alone (the others are paused), for targeted schedules."""
        self.core(node_id).tick()
        self.settle()

    def run_until(self, cond: Callable[[], bool], max_ticks: int) -> bool:
        self.settle()
        for _ in range(max_ticks):
            if cond():
                return True
            self.tick()
        return cond()

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


def random_run(
    seed: int,
    fault_ticks: int = 150,
    heal_ticks: int = 300,
    membership_changes: bool = True,
    value_bytes: int = 0,
    max_frame: int = 0,
    keys: int = 5,
) -> SimCluster:
    """One randomized run: a random cluster size and fault mix from ``seed``; crashes (some
    between a leader's send and its write), restarts, partitions, drops, duplicates,
    reordering, proposals, snapshots, reads, transfers and membership changes for
    ``fault_ticks``; then heal and require progress (liveness). Invariants and every read are
    checked on every step throughout. ``value_bytes`` pads each written value (big entries, big
    snapshots: about ``keys * value_bytes``); ``max_frame`` drops frames over that size as the
    transport does. Few keys, so reads see values overwritten."""
    rng = random.Random(seed ^ 0x5EED)
    n = rng.choice((3, 3, 5))
    cluster = SimCluster(
        n,
        seed,
        RaftConfig(
            election_ticks=10,
            heartbeat_ticks=2,
            max_append_entries=rng.choice((4, 64)),
            max_inflight=rng.choice((2, 64)),
            pre_vote=rng.random() < 0.8,
            check_quorum=rng.random() < 0.8,
            max_size_per_msg=rng.choice((1 << 20, 64 + value_bytes)),
            max_inflight_bytes=rng.choice((0, 4 * (64 + value_bytes), 32 << 20)),
            trailing_entries=rng.choice((0, 8, 5000)),
        ),
        drop=rng.choice((0.0, 0.05, 0.2)),
        duplicate=rng.choice((0.0, 0.05)),
        max_delay=rng.choice((0, 1, 3)),
        long_delay=rng.choice((0.0, 0.02)),
        snapshots=True,
        snapshot_threshold=rng.choice((8, 32)),
        max_frame=max_frame,
        send_before_persist=rng.random() < 0.8,
        crash_after_send=rng.choice((0.0, 0.0, 0.02)),
    )
    padding = b"." * value_bytes
    key_names = [b"k%d" % i for i in range(keys)]
    ids = cluster.ids
    counter = 0
    for _ in range(fault_ticks):
        r = rng.random()
        if r < 0.03:
            victim = rng.choice(ids)
            if cluster.nodes[victim].alive and sum(n.alive for n in cluster.nodes.values()) > 1:
                cluster.crash(victim)
        elif r < 0.08:
            for node_id in ids:
                if not cluster.nodes[node_id].alive:
                    cluster.start(node_id)
                    break
        elif r < 0.11:
            shuffled = ids[:]
            rng.shuffle(shuffled)
            cut = rng.randint(1, len(ids) - 1)
            cluster.net.partition(shuffled[:cut], shuffled[cut:])
        elif r < 0.15:
            cluster.net.heal()
        elif r < 0.17:
            leader = cluster.leader()
            if leader is not None:
                try:
                    cluster.core(leader).transfer_leadership()
                except (NotLeaderError, ValueError):
                    pass
        elif r < 0.20:
            # A burst: every key read at every node that believes it leads.
            for node in cluster.nodes.values():
                if node.core is not None and node.core.role == LEADER:
                    for key in key_names:
                        cluster.read(node.id, key)
        elif r < 0.23 and membership_changes:
            _change_membership(cluster, rng)
        for node in cluster.nodes.values():
            core = node.core
            if core is None or core.role != LEADER:
                continue
            if rng.random() < 0.5:
                size = rng.randint(1, 4)
                batch = [b"%s=v%d%s" % (rng.choice(key_names), counter + i, padding) for i in range(size)]
                counter += len(batch)
                try:
                    core.propose_batch(batch)
                except NotLeaderError:
                    pass
            if rng.random() < 0.3:
                # Any node that believes it leads, even a deposed one cut off in a minority.
                try:
                    cluster.read(node.id, rng.choice(key_names))
                except NotLeaderError:
                    pass
        cluster.tick()
    # Heal everything and require the cluster to converge: a leader, and a new entry applied
    # by every node.
    cluster.net.heal()
    cluster.net.drop = cluster.net.duplicate = cluster.net.long_delay = 0.0
    cluster.crash_after_send = 0.0
    for node_id in ids:
        if not cluster.nodes[node_id].alive:
            cluster.start(node_id)
    try:
        _converge(cluster, seed, heal_ticks)
    except AssertionError as exc:
        if cluster.net.oversize:
            oversize = cluster.net.oversize
            raise AssertionError(f"{exc}; frames dropped for exceeding max_frame: {oversize}") from exc
        raise
    if cluster.net.oversize:
        # The senders' limits (bytes per append, chunked snapshots) must make these impossible.
        raise AssertionError(f"seed={seed}: frames dropped for exceeding max_frame: {cluster.net.oversize}")
    return cluster


def _converge(cluster: SimCluster, seed: int, heal_ticks: int) -> None:
    """A leader appears, a new entry commits, and every member of the final configuration
    applies it."""
    leader = cluster.wait_leader(heal_ticks)
    quorum = len(cluster.core(leader).membership.voters) // 2 + 1
    index = cluster.one(f"final={seed}".encode(), quorum, retry=True, max_ticks=heal_ticks)
    # Any configuration entry before the final one is committed now: its members must apply.
    members = next(
        n.core.membership
        for n in cluster.nodes.values()
        if n.core is not None and n.fsm.applied_index >= index
    ).all_ids()
    if not cluster.run_until(
        lambda: all(cluster.nodes[m].fsm.applied_index >= index for m in members if m in cluster.nodes),
        heal_ticks,
    ):
        raise AssertionError(f"seed={seed}: members {members} did not all apply index {index}")


def _change_membership(cluster: SimCluster, rng: random.Random) -> None:
    """One single-server change at the leader: remove a member (keeping two voters), add a
    removed node back as a non-voter, or promote a non-voter."""
    leader = cluster.leader()
    if leader is None:
        return
    core = cluster.core(leader)
    membership = core.membership
    outsiders = [i for i in cluster.ids if i not in membership.all_ids()]
    try:
        if membership.non_voters and rng.random() < 0.6:
            core.promote(rng.choice(sorted(membership.non_voters)))
        elif outsiders and rng.random() < 0.6:
            node_id = rng.choice(outsiders)
            core.add_non_voter(node_id, f"sim:{node_id}")
        elif len(membership.voters) > 2:
            core.remove(rng.choice(membership.all_ids()))
    except (ConfigChangeInProgress, NotLeaderError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run randomized Raft simulations.")
    parser.add_argument("--seeds", type=int, default=1000, help="number of seeds to run")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--ticks", type=int, default=150, help="fault ticks per run")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    failures = 0
    for seed in range(args.start, args.start + args.seeds):
        try:
            random_run(seed, fault_ticks=args.ticks)
        except Exception as exc:
            failures += 1
            print(f"FAIL seed={seed}: {exc!r}", flush=True)
    elapsed = time.perf_counter() - began
    print(f"{args.seeds - failures}/{args.seeds} seeds passed in {elapsed:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
