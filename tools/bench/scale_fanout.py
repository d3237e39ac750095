"""What the leader pays per member under today's design, with the machine taken out: the
Raft cores of 3 voters and N non-voters in one process, on virtual time, through the
production Ready loop (``RaftShell``, in-memory stores), every frame encoded and decoded.

    python -m tools.bench.scale_fanout --nodes 10,100,300,1000

For each N: the leader's CPU (its thread time only: the followers' work is not counted) and
the bytes and frames it sends, per virtual second while idle (heartbeats) and per committed
entry under 50 proposals per second of ``--entry-bytes`` each; and the join: the bytes the
leader sends while members are added one at a time, as the membership policy does (simulated
up to ``--join-max`` members, computed from the configuration entry sizes beyond).

Then the same with the fix of issue 20 item 3 (orion/cluster/worker_feed.py): 3 voters, and N
workers outside the configuration watching the leader's feed (``feed_*`` figures).

The live curve (tools/bench/scale_curve.py) measures the same on real processes; this one
shows the trend where a shared 2-core machine cannot keep N hollow nodes alive.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from collections import deque
from typing import Any

import msgspec

from orion.cluster.worker_feed import Due, WorkerFeed
from orion.fsm.events import Event
from orion.raft.core import LEADER, RaftConfig, RaftCore
from orion.raft.memory_store import MemoryStore
from orion.raft.shell import RaftShell
from orion.raft.types import Entry, EntryKind, Membership, Snapshot, SnapshotMeta, encode_membership
from tools.bench.common import save_result

TICK_S = 0.05
RATE = 50


class _Member:
    """One Raft node's host: applies nothing (the FSM cost does not depend on N)."""

    def __init__(self, net: _Net, node_id: str, incarnation: str, bootstrap: Membership | None) -> None:
        self.net = net
        self.id = node_id
        store = MemoryStore()
        store.save_identity(incarnation)
        stored = store.load()
        self.core = RaftCore(node_id, stored, RaftConfig(), random.Random(hash(node_id) & 0xFFFF))
        if bootstrap is not None:
            self.core.bootstrap(bootstrap)
        self.shell = RaftShell(self.core, store, self, incarnation=incarnation, snapshot_threshold=1 << 30)
        self.sent_bytes = 0
        self.sent_frames = 0

    def send_frame(self, dst: str, frame: bytes) -> None:
        self.sent_bytes += len(frame)
        self.sent_frames += 1
        self.net.queue.append((dst, frame))

    def apply(self, entry: Entry) -> bool:
        return True

    def restore(self, snapshot: Snapshot) -> None:
        pass

    def snapshot_source(self) -> Any:
        return b""

    def start_snapshot(self, meta: SnapshotMeta, source: Any) -> None:
        pass

    def on_read_state(self, context: bytes, index: int) -> None:
        pass

    def on_failed_read(self, context: bytes) -> None:
        pass

    def on_dropped(self, peer: str, reason: str, detail: str) -> None:
        pass


class _Net:
    def __init__(self) -> None:
        self.queue: deque[tuple[str, bytes]] = deque()
        self.members: dict[str, _Member] = {}
        self.leader_cpu = 0.0

    def add(self, member: _Member) -> None:
        self.members[member.id] = member

    def leader(self) -> _Member | None:
        return next((m for m in self.members.values() if m.core.role == LEADER), None)

    def _timed(self, member: _Member, work: Any) -> None:
        if member.core.role == LEADER:
            began = time.thread_time()
            work()
            self.leader_cpu += time.thread_time() - began
        else:
            work()

    def settle(self) -> None:
        """Deliver every frame and drain every Ready until nothing moves."""
        while True:
            for member in self.members.values():
                if member.core.has_ready():
                    self._timed(member, member.shell.drain)
            if not self.queue:
                return
            while self.queue:
                dst, frame = self.queue.popleft()
                member = self.members.get(dst)
                if member is not None:
                    self._timed(member, lambda m=member, f=frame: m.shell.receive(f))

    def tick(self) -> None:
        for member in self.members.values():
            self._timed(member, member.shell.tick)
        self.settle()


def _cluster(n: int) -> tuple[_Net, Membership]:
    voters = {f"v{i}": f"127.0.0.{i}:7100" for i in range(1, 4)}
    others = {f"h{i}": f"127.1.{i // 250}.{i % 250}:7600" for i in range(1, n + 1)}
    incarnations = {node: uuid.uuid4().hex for node in [*voters, *others]}
    membership = Membership(
        voters=voters, non_voters=others, cluster_id=uuid.uuid4().hex, incarnations=incarnations
    )
    net = _Net()
    for node in voters:
        net.add(_Member(net, node, incarnations[node], membership))
    for node in others:
        net.add(_Member(net, node, incarnations[node], None))
    for _ in range(200):
        net.tick()
        if net.leader() is not None:
            break
    return net, membership


def steady(n: int, seconds: float, entry_bytes: int) -> dict[str, Any]:
    net, _ = _cluster(n)
    for _ in range(40):  # everyone caught up (entry 1 and the leader's empty entry)
        net.tick()
    leader = net.leader()
    assert leader is not None
    ticks = int(seconds / TICK_S)

    def window(propose: bool) -> dict[str, float]:
        net.leader_cpu = 0.0
        bytes0, frames0, commit0 = leader.sent_bytes, leader.sent_frames, leader.core.commit_index
        payload = b"x" * entry_bytes
        owed = 0.0
        for _ in range(ticks):
            if propose:
                owed += RATE * TICK_S
                while owed >= 1:
                    owed -= 1
                    began = time.thread_time()
                    leader.core.propose(payload)
                    net.leader_cpu += time.thread_time() - began
            net.tick()
        committed = leader.core.commit_index - commit0
        return {
            "leader_cpu_ms_per_s": 1000 * net.leader_cpu / seconds,
            "leader_bytes_per_s": (leader.sent_bytes - bytes0) / seconds,
            "leader_frames_per_s": (leader.sent_frames - frames0) / seconds,
            "committed": committed,
        }

    idle = window(False)
    busy = window(True)
    committed = max(1, busy["committed"])
    return {
        "nodes": n,
        "idle_leader_cpu_ms_per_s": round(idle["leader_cpu_ms_per_s"], 1),
        "idle_leader_frames_per_s": round(idle["leader_frames_per_s"]),
        "idle_leader_kib_per_s": round(idle["leader_bytes_per_s"] / 1024, 1),
        "busy_leader_cpu_ms_per_s": round(busy["leader_cpu_ms_per_s"], 1),
        "busy_leader_cores": round(busy["leader_cpu_ms_per_s"] / 1000, 3),
        "leader_cpu_ms_per_entry": round(busy["leader_cpu_ms_per_s"] * seconds / committed, 3),
        "leader_bytes_per_entry": round(busy["leader_bytes_per_s"] * seconds / committed),
        "leader_frames_per_entry": round(busy["leader_frames_per_s"] * seconds / committed, 1),
        "committed": busy["committed"],
    }


def join(n: int) -> dict[str, Any]:
    """Add n non-voters one at a time (each change committed before the next, as the
    membership driver does); the leader's bytes, frames and CPU for the whole join."""
    net, _ = _cluster(0)
    leader = net.leader()
    assert leader is not None
    net.leader_cpu = 0.0
    bytes0, frames0 = leader.sent_bytes, leader.sent_frames
    for i in range(1, n + 1):
        node, incarnation = f"h{i}", uuid.uuid4().hex
        net.add(_Member(net, node, incarnation, None))
        began = time.thread_time()
        index = leader.core.add_non_voter(node, f"127.1.0.{i}:7600", incarnation)
        net.leader_cpu += time.thread_time() - began
        for _ in range(200):
            net.tick()
            if leader.core.commit_index >= index and net.members[node].core.commit_index >= index:
                break
    return {
        "nodes": n,
        "join_leader_mib": round((leader.sent_bytes - bytes0) / 2**20, 1),
        "join_leader_frames": leader.sent_frames - frames0,
        "join_leader_cpu_s": round(net.leader_cpu, 2),
        "last_config_entry_bytes": len(encode_membership(leader.core.membership)),
    }


def feed(n: int, seconds: float, entry_bytes: int, deadline_s: float = 10.0) -> dict[str, Any]:
    """The same load with the fix of issue 20 item 3: 3 voters only; the N workers watch the
    leader's ``WorkerFeed`` (each entry places one task on one worker, round robin); an answer
    is the worker's whole task list, encoded; a worker re-watches as soon as it is answered."""
    net, _ = _cluster(0)
    for _ in range(40):
        net.tick()
    leader = net.leader()
    assert leader is not None
    feed = WorkerFeed(start_index=leader.core.commit_index)
    node_of: dict[str, str] = {}
    tasks_of: dict[str, list[bytes]] = {f"h{i}": [] for i in range(1, n + 1)}
    counters = {"answers": 0, "bytes": 0, "frames_in": 0}
    clock = {"now": 0.0}
    placed = {"next": 0}

    def answer(due: list[Due]) -> None:
        for item in due:
            node = item.watch.node_id
            reply = msgspec.msgpack.encode([feed.applied_index, tasks_of[node]])
            counters["answers"] += 1
            counters["bytes"] += len(reply)
            counters["frames_in"] += 1  # the worker's next watch
            again = feed.watch(node, feed.applied_index, clock["now"] + deadline_s, node)
            if again is not None:
                answer([again])

    original_apply = leader.apply

    def apply(entry: Entry) -> bool:
        if entry.kind == EntryKind.NORMAL and entry.data:
            node = f"h{placed['next'] % n + 1}"
            placed["next"] += 1
            task_id = f"t{entry.index}"
            node_of[task_id] = node
            tasks_of[node].append(entry.data)
            event = Event(index=entry.index, at=0.0, type="task", action="created", id=task_id)
            answer(feed.on_applied(entry.index, [event], node_of.get))
        return original_apply(entry)

    leader.apply = apply  # type: ignore[method-assign]
    for i in range(1, n + 1):
        feed.watch(f"h{i}", feed.applied_index, deadline_s * i / n, f"h{i}")  # spread deadlines
    ticks = int(seconds / TICK_S)

    def window(propose: bool) -> dict[str, float]:
        net.leader_cpu = 0.0
        counters.update(answers=0, bytes=0, frames_in=0)
        bytes0, frames0, commit0 = leader.sent_bytes, leader.sent_frames, leader.core.commit_index
        payload = b"x" * entry_bytes
        owed = 0.0
        for _ in range(ticks):
            clock["now"] += TICK_S
            if propose:
                owed += RATE * TICK_S
                while owed >= 1:
                    owed -= 1
                    began = time.thread_time()
                    leader.core.propose(payload)
                    net.leader_cpu += time.thread_time() - began
            began = time.thread_time()
            answer(feed.expire(clock["now"]))
            net.leader_cpu += time.thread_time() - began
            net.tick()
        return {
            "cpu_ms_per_s": 1000 * net.leader_cpu / seconds,
            "bytes_per_s": (leader.sent_bytes - bytes0 + counters["bytes"]) / seconds,
            "frames_per_s": (leader.sent_frames - frames0 + counters["answers"]) / seconds,
            "committed": leader.core.commit_index - commit0,
        }

    # Long enough for every worker's deadline to pass once: idle costs the long polls.
    idle = window(False)
    busy = window(True)
    committed = max(1, busy["committed"])
    return {
        "feed_idle_leader_cpu_ms_per_s": round(idle["cpu_ms_per_s"], 1),
        "feed_idle_leader_frames_per_s": round(idle["frames_per_s"]),
        "feed_busy_leader_cores": round(busy["cpu_ms_per_s"] / 1000, 3),
        "feed_leader_cpu_ms_per_entry": round(busy["cpu_ms_per_s"] * seconds / committed, 3),
        "feed_leader_bytes_per_entry": round(busy["bytes_per_s"] * seconds / committed),
        "feed_leader_frames_per_entry": round(busy["frames_per_s"] * seconds / committed, 1),
    }


def join_bytes_computed(n: int) -> int:
    """Sum over the n additions of (configuration entry size x members it goes to)."""
    total = 0
    voters = {f"v{i}": f"127.0.0.{i}:7100" for i in range(1, 4)}
    incarnations = {node: uuid.uuid4().hex for node in voters}
    others: dict[str, str] = {}
    for i in range(1, n + 1):
        others[f"h{i}"] = f"127.1.{i // 250}.{i % 250}:7600"
        incarnations[f"h{i}"] = uuid.uuid4().hex
        entry = encode_membership(
            Membership(voters=voters, non_voters=others, cluster_id="c" * 32, incarnations=incarnations)
        )
        total += len(entry) * (2 + i)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="10,100,300,1000")
    parser.add_argument("--seconds", type=float, default=5.0, help="virtual seconds per window")
    parser.add_argument("--entry-bytes", type=int, default=400, help="bytes of each proposed entry")
    parser.add_argument("--join-max", type=int, default=100, help="simulate joins up to this many")
    args = parser.parse_args(argv)
    results = []
    for n in [int(x) for x in args.nodes.split(",") if x]:
        began = time.monotonic()
        point = steady(n, args.seconds, args.entry_bytes)
        point.update(feed(n, max(args.seconds, 10.0), args.entry_bytes))
        if n <= args.join_max:
            point.update(join(n))
        point["join_leader_mib_computed"] = round(join_bytes_computed(n) / 2**20, 1)
        point["wall_s"] = round(time.monotonic() - began, 1)
        print(json.dumps(point), flush=True)
        results.append(point)
    save_result("scale_fanout", {"args": vars(args), "points": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
