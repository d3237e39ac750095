"""The per-submit Python of a write, in one process: no threads, sockets or DuckDB.

    cd <tree> && PYTHONPATH=. /work/main/.venv/bin/python -m benchmarks.flames.submit_path
        [--count 20000] [--rounds 3] [--profile]

Builds what a node's Raft thread holds around its state machine (``ClusterState`` with the
events recorder on, the submit placer, the worker-feed host and the listeners' hooks, as
``orion.actors.raft_parts`` wires them) for a leader and for a follower, three nodes in the
state, and runs ``--count`` submits as ``tools/loadgen.py`` sends them (unique ids, a node
selector no node matches: they stay Pending) in batches of 8, as a Ready would carry them:

- api: the API thread's decode of the request and the encoded command (``submit_command``);
- leader: ``SubmitPlacer.prepare``, ``ClusterState.apply``, the listeners' ``applied`` and the
  answer up to an encoded reply (``outcome_of``, ``_reply_with``, ``encode_reply``), and per
  batch what the Raft actor takes for its listeners (touched set, events);
- follower: ``ClusterState.apply`` and the listeners' ``applied``, per batch the same takes.

Prints thread CPU time per submit for each (``time.thread_time``: a loaded machine moves it
less than the wall clock). Compare trees by running it from each worktree in turn, in the same
minutes; ``--profile`` prints cProfile's top functions (by own time) of one more round.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
import uuid
from types import SimpleNamespace
from typing import Any

from orion.actors.api_actor import _reply_with, submit_command
from orion.actors.raft_listeners import RaftListeners
from orion.actors.submit_placer import SubmitPlacer
from orion.api import protocol as api
from orion.cluster.feed_host import FeedHost
from orion.cluster.outcome import outcome_of
from orion.fsm.commands import UpsertNode, encode_command
from orion.fsm.state import ClusterState
from orion.model import NodeMeta
from orion.raft.types import Membership

BATCH = 8  # entries per Ready


class Member:
    def __init__(self, leader: bool) -> None:
        self.fsm = fsm = ClusterState()
        fsm.events.enabled = True
        self.index = 0
        self.placer = (
            SubmitPlacer(fsm, strategy="binpack", next_index=lambda: self.index + 1, term=lambda: 1)
            if leader
            else None
        )
        FeedHost("n1", fsm, SimpleNamespace(membership=Membership(), leader_id=""), lambda _: None, print)  # type: ignore[arg-type]
        self.listeners = RaftListeners(fsm, "incarnation", "n1")
        for number in range(3):
            meta = NodeMeta(id=f"n{number}", memory_total=8 << 30, cpu_total=4.0)
            self.apply(encode_command(UpsertNode(at=1.0, meta=meta)))

    def apply(self, data: bytes) -> Any:
        self.index += 1
        result = self.fsm.apply(self.index, data)
        self.listeners.applied(data)
        return result

    def ready_done(self) -> None:
        self.listeners.take_touched()
        self.fsm.take_events()


def requests(count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        task_id = uuid.uuid4().hex
        request = api.SubmitTask(
            id=task_id,
            name=f"loadgen-{task_id[:8]}",
            image="busybox",
            node_selectors={"orion.loadgen": "never-matches"},
        )
        out.append(api.encode_request(request))
    return out


def run(count: int) -> dict[str, float]:
    leader, follower = Member(True), Member(False)
    assert leader.placer is not None
    sent: list[bytes] = []

    def reply(answer: api.Reply) -> None:
        sent.append(api.encode_reply(answer))

    raw = requests(count)
    spent = {"api": 0.0, "leader": 0.0, "follower": 0.0}
    for start in range(0, count, BATCH):
        t0 = time.thread_time()
        commands = [
            (submit_command(api.decode_request(body)), _reply_with(reply))
            for body in raw[start : start + BATCH]
        ]  # type: ignore[arg-type]
        t1 = time.thread_time()
        entries = [(leader.placer.prepare(data), callback) for data, callback in commands]
        for data, callback in entries:
            callback(outcome_of(leader.apply(data)))
        leader.ready_done()
        t2 = time.thread_time()
        for data, _ in entries:
            follower.apply(data)
        follower.ready_done()
        t3 = time.thread_time()
        spent["api"] += t1 - t0
        spent["leader"] += t2 - t1
        spent["follower"] += t3 - t2
    return {name: seconds / count * 1e6 for name, seconds in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    run(2000)  # warm up
    for _ in range(args.rounds):
        figures = run(args.count)
        print(
            f"{args.count} submits: api {figures['api']:.1f} us, leader {figures['leader']:.1f} us, "
            f"follower {figures['follower']:.1f} us per submit (thread CPU)",
            flush=True,
        )
    if args.profile:
        profile = cProfile.Profile(time.thread_time)
        profile.enable()
        run(args.count)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
