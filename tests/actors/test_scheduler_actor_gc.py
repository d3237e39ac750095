"""The leader's scheduler actor proposes CollectGarbage on its tick; the retention comes from
``[scheduler] task_retention``. The actor runs against tests/api/fsm_raft.py (a real
ClusterState behind the Raft actor's message contract); ticks are sent by hand."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pykka
import pytest

from orion.actors.messages import LeadershipChanged, Tick
from orion.actors.scheduler_actor import SchedulerActor
from orion.config import ConfigError, parse_config
from orion.fsm.commands import CollectGarbage, StopTask, SubmitTask, UpsertNode
from orion.model import NodeMeta, Task
from tests.api.fsm_raft import FsmRaft

RETENTION = 600.0
INTERVAL = 60.0


@dataclass
class Rig:
    raft: pykka.ActorProxy
    raft_ref: pykka.ActorRef
    scheduler: pykka.ActorRef

    def tick(self, now: float) -> None:
        self.scheduler.tell(Tick(now))
        self.settle()

    def settle(self) -> None:
        """Let every message the last one caused be handled. A look for garbage is a chain
        scheduler -> Read -> scheduler -> Propose -> scheduler: each ask below returns only
        after everything sent to that actor before it was handled."""
        for _ in range(4):
            self.scheduler.ask("settle")
            self.raft_ref.ask("settle")

    def task(self, task_id: str, stopped_ago: float | None) -> None:
        """A task submitted an hour ago; stopped ``stopped_ago`` seconds ago (None: never)."""
        now = time.time()
        task = Task(id=task_id, name=task_id, image="busybox", memory=1 << 40)  # never placed
        self.raft.commit(SubmitTask(task=task, at=now - 3600)).get()
        if stopped_ago is not None:
            self.raft.commit(StopTask(task_id=task_id, at=now - stopped_ago)).get()

    def ids(self) -> list[str]:
        return [t.id for t in self.raft.tasks().get()]

    def collections(self) -> list[CollectGarbage]:
        return [c for c in self.raft.commands().get() if isinstance(c, CollectGarbage)]


@pytest.fixture
def rig() -> Iterator[Rig]:
    fatal: list[str] = []
    raft_ref = FsmRaft.start()
    scheduler = SchedulerActor.start(
        raft_ref, "binpack", 5.0, fatal.append, task_retention=RETENTION, gc_interval=INTERVAL, gc_batch=2
    )
    raft = raft_ref.proxy()
    raft.commit(UpsertNode(at=0.0, meta=NodeMeta(id="n1", memory_total=1 << 30, cpu_total=1.0))).get()
    try:
        yield Rig(raft, raft_ref, scheduler)
    finally:
        scheduler.stop()
        raft_ref.stop()
    assert fatal == []


def test_only_the_leader_collects_and_only_past_the_retention(rig: Rig) -> None:
    rig.task("old-1", stopped_ago=3000)
    rig.task("recent", stopped_ago=10)
    rig.task("pending", stopped_ago=None)

    rig.tick(1000.0)  # not the leader yet
    assert rig.collections() == []

    rig.scheduler.tell(LeadershipChanged(True, "node1"))
    started = time.time()
    rig.tick(1000.0)
    (command,) = rig.collections()
    assert started - RETENTION <= command.before <= time.time() - RETENTION
    assert command.max_tasks == 2
    assert rig.ids() == ["recent", "pending"]


def test_the_leader_looks_once_per_interval_and_proposes_only_when_something_is_due(rig: Rig) -> None:
    rig.scheduler.tell(LeadershipChanged(True, "node1"))
    rig.tick(1000.0)
    assert rig.collections() == []  # nothing due: nothing written to the log

    rig.task("old-1", stopped_ago=3000)
    rig.tick(1030.0)  # within the interval: not looked at
    assert rig.ids() == ["old-1"]
    rig.tick(1060.0)
    assert rig.ids() == [] and len(rig.collections()) == 1


def test_a_full_batch_goes_on_at_the_next_tick(rig: Rig) -> None:
    for i in range(5):
        rig.task(f"old-{i}", stopped_ago=3000 - i)
    rig.scheduler.tell(LeadershipChanged(True, "node1"))
    remaining = []
    for _ in range(4):
        rig.tick(1000.0)  # the same instant: only a full batch makes the next tick look again
        remaining.append(len(rig.ids()))
    assert remaining == [3, 1, 0, 0]
    assert len(rig.collections()) == 3


def test_a_former_leader_stops_collecting(rig: Rig) -> None:
    rig.scheduler.tell(LeadershipChanged(True, "node1"))
    rig.tick(1000.0)
    rig.scheduler.tell(LeadershipChanged(False, "node2"))
    rig.task("old-1", stopped_ago=3000)
    rig.tick(2000.0)
    assert rig.ids() == ["old-1"] and rig.collections() == []


def test_task_retention_config() -> None:
    base = '[node]\nid = "n1"\n'
    assert parse_config(base).task_retention == 3600.0
    assert parse_config(base + '[scheduler]\ntask_retention = "90m"\n').task_retention == 5400.0
    for bad, message in (('"0s"', "must be more than 0"), ('"soon"', "cannot parse duration")):
        with pytest.raises(ConfigError, match=f"scheduler.task_retention: {message}"):
            parse_config(base + f"[scheduler]\ntask_retention = {bad}\n")
