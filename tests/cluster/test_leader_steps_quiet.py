"""The leader's steps over gossip's view (orion/cluster/membership_driver.py, node_records.py)
skip their walk while nothing they look at moved since a step that found nothing to do, and
still act when a time-based rule comes due with nothing else new: a dead member leaves the
configuration ``remove_after`` after gossip's report (or after this node began to lead), a dead
node's tasks move ``reschedule_after`` after it, and a capacity change rewrites the record.
Around a real RaftCore (tests/raft/core_harness.py), ClusterState and MemberMirror."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from orion.cluster import membership_driver, node_records
from orion.cluster.leadership import Leadership
from orion.cluster.membership_driver import MembershipDriver
from orion.cluster.mirror import MemberMirror
from orion.cluster.node_records import NodeRecordSync
from orion.fsm.commands import Command, SubmitTask, decode_command, encode_command
from orion.fsm.state import ClusterState
from orion.gossip.events import MemberEvent
from orion.model import NodeMeta, Task
from orion.raft.core import RaftConfig, RaftCore
from orion.raft.types import Membership
from tests.raft.core_harness import CoreHarness

GiB = 1 << 30
IDS = ["n1", "n2", "n3", "n4", "n5"]


def _meta(node_id: str, memory_total: int = 4 * GiB, version: int = 1) -> NodeMeta:
    return NodeMeta(
        id=node_id,
        address="127.0.0.1",
        raft_port=7000 + IDS.index(node_id) if node_id in IDS else 7100,
        memory_total=memory_total,
        cpu_total=2.0,
        version=version,
    )


def _gossip(mirror: MemberMirror, kind: str, meta: NodeMeta, now: float) -> None:
    mirror.apply_events([MemberEvent(kind, meta.id, f"127.0.0.1:{meta.raft_port}", meta, 1)], now)


def _counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    """Count the calls of ``module.name`` (the real function still runs)."""
    calls: list[int] = []
    real: Callable[..., Any] = getattr(module, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


class Led:
    """n1 leads five voters (leading since ``led_at``); gossip sees n2-n5 alive since 0."""

    def __init__(self, *, remove_after: float, led_at: float = 0.0) -> None:
        membership = Membership(voters={i: f"127.0.0.1:{7000 + k}" for k, i in enumerate(IDS)}, cluster_id="")
        self.h = CoreHarness(IDS, RaftConfig(election_ticks=10, heartbeat_ticks=2), membership=membership)
        self.core: RaftCore = self.h.elect("n1")
        self.h.pump()
        self.leadership = Leadership(now=0.0)
        assert self.leadership.observe(self.core, now=led_at)
        self.mirror = MemberMirror()
        self.mirror.set_local(_meta("n1"), 0.0)
        for node_id in IDS[1:]:
            _gossip(self.mirror, "joined", _meta(node_id), 0.0)
        self.driver = MembershipDriver(
            self.core, self.mirror, self.leadership, node_id="n1", max_voters=5, remove_after=remove_after
        )


def test_a_dead_member_leaves_once_its_grace_ends_with_nothing_else_new(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looked = _counting(monkeypatch, membership_driver, "next_change")
    led = Led(remove_after=30.0)
    led.driver.step(1.0)
    assert len(looked) == 1
    _gossip(led.mirror, "dead", _meta("n5"), 10.0)
    for now in (10.0, 10.2, 10.4, 25.0, 39.9):
        led.driver.step(now)
    assert len(looked) == 2  # the report was looked at once; the steps after it skipped
    assert "n5" in led.core.membership.voters
    led.driver.step(40.0)  # 30 s after gossip's report: nothing else moved
    assert len(looked) == 3
    assert "n5" not in led.core.membership.all_ids() and led.driver.pending_index


def test_the_grace_counts_from_this_leaders_reign_when_the_report_is_older(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looked = _counting(monkeypatch, membership_driver, "next_change")
    led = Led(remove_after=30.0, led_at=5.0)
    _gossip(led.mirror, "dead", _meta("n5"), 2.0)  # reported before this node led
    led.driver.step(5.0)
    led.driver.step(34.9)  # 32.9 s after the report, 29.9 s into the reign
    assert len(looked) == 1 and "n5" in led.core.membership.voters
    led.driver.step(35.0)
    assert "n5" not in led.core.membership.all_ids()


def test_a_quiet_driver_looks_again_when_gossip_or_the_log_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    looked = _counting(monkeypatch, membership_driver, "next_change")
    led = Led(remove_after=30.0)
    led.driver.step(1.0)
    led.driver.step(1.2)
    assert len(looked) == 1
    # A write commits: the commit index (which says who is caught up) moved.
    led.core.propose(b"x")
    led.h.pump()
    led.driver.step(1.4)
    assert len(looked) == 2
    # A node gossip sees alive that the configuration does not hold (the cap is off): added.
    _gossip(led.mirror, "joined", _meta("n6"), 1.5)
    led.driver.step(1.6)
    assert len(looked) == 3 and "n6" in led.core.membership.non_voters


def _fsm_sync(
    reschedule_after: float, proposed: list[Command]
) -> tuple[ClusterState, MemberMirror, NodeRecordSync]:
    fsm = ClusterState()
    mirror = MemberMirror()
    leadership = Leadership(now=0.0)

    def propose(data: bytes, _deadline: float) -> None:  # committed and applied at once
        proposed.append(decode_command(data))
        fsm.apply(fsm.applied_index + 1, data)

    return fsm, mirror, NodeRecordSync(fsm, mirror, leadership, propose, reschedule_after=reschedule_after)


def _names(proposed: list[Command], since: int) -> list[str]:
    return [type(c).__name__ for c in proposed[since:]]


def test_a_capacity_change_alone_rewrites_the_record(monkeypatch: pytest.MonkeyPatch) -> None:
    walked = _counting(monkeypatch, node_records, "capacity_changed")
    proposed: list[Command] = []
    fsm, mirror, sync = _fsm_sync(5.0, proposed)
    _gossip(mirror, "joined", _meta("n2"), 0.0)
    sync.step(0.0, 1000.0)
    assert _names(proposed, 0) == ["UpsertNode"]
    sync.step(0.2, 1000.2)  # the record is in: a full look, nothing wanted
    checks = len(walked)
    for now in (0.4, 0.6, 5.0, 60.0):
        sync.step(now, 1000.0 + now)
    assert len(walked) == checks and len(proposed) == 1  # skipped: nothing moved
    _gossip(mirror, "updated", _meta("n2", memory_total=8 * GiB, version=2), 61.0)
    sync.step(61.0, 1061.0)
    assert _names(proposed, 1) == ["UpsertNode"]
    assert fsm.node("n2").meta.memory_total == 8 * GiB


def test_a_dead_nodes_tasks_move_once_reschedule_after_ends_with_nothing_else_new(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    walked = _counting(monkeypatch, node_records, "capacity_changed")
    proposed: list[Command] = []
    fsm, mirror, sync = _fsm_sync(5.0, proposed)
    _gossip(mirror, "joined", _meta("n2"), 0.0)
    sync.step(0.0, 1000.0)
    fsm.apply(
        fsm.applied_index + 1,
        encode_command(SubmitTask(at=1.0, task=Task(id="t1", name="t1", image="busybox"), node_id="n2")),
    )
    assert fsm.task("t1").node_id == "n2"
    _gossip(mirror, "dead", _meta("n2"), 10.0)
    sync.step(10.0, 1010.0)
    assert _names(proposed, 1) == ["UpsertNode"]  # the record now; the tasks after the grace
    sync.step(10.2, 1010.2)  # a full look: the record is in, the grace runs
    checks = len(walked)
    sync.step(12.0, 1012.0)
    sync.step(14.9, 1014.9)
    assert len(walked) == checks and len(proposed) == 2
    sync.step(15.0, 1015.0)  # reschedule_after after gossip's report: nothing else moved
    assert _names(proposed, 2) == ["RescheduleNodeTasks"]
    assert fsm.task("t1").state == "Pending"


def test_a_command_not_yet_in_the_fsm_is_proposed_again() -> None:
    """A proposal lost (a leader change, a timeout) leaves the FSM as it was: the step that
    wanted it does not count as quiet, so it goes out again once its two seconds pass."""
    fsm = ClusterState()
    mirror = MemberMirror()
    proposed: list[bytes] = []
    sync = NodeRecordSync(
        fsm, mirror, Leadership(now=0.0), lambda data, _d: proposed.append(data), reschedule_after=5.0
    )
    _gossip(mirror, "joined", _meta("n2"), 0.0)
    sync.step(0.0, 1000.0)
    sync.step(1.0, 1001.0)
    assert len(proposed) == 1  # in flight
    sync.step(2.0, 1002.0)
    assert len(proposed) == 2
