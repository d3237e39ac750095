"""StateChanged carries what the applied entries touched (orion/fsm/touched.py): each loop reads
the state only when that overlaps what it reads. The scheduler and the service controller run
against tests/api/fsm_raft.py (a real ClusterState behind the Raft actor's message contract),
told what the Raft actor's listeners would tell them; the other loops' rules are checked on
their predicates."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pykka
import pytest

from orion.actors.health_actor import HealthActor, health_concerned
from orion.actors.ingress_actor import IngressActor, ingress_concerned
from orion.actors.messages import LeadershipChanged, Read, StateChanged
from orion.actors.network_actor import NetworkActor, network_concerned
from orion.actors.raft_listeners import RaftListeners
from orion.actors.reconciler_actor import ReconcilerActor, reconciler_concerned
from orion.actors.scheduler_actor import SchedulerActor, scheduler_concerned
from orion.actors.service_actor import ServiceActor, service_controller_concerned
from orion.fsm import commands as c
from orion.fsm.state import ClusterState
from orion.fsm.touched import EVERYTHING, Touched
from orion.model import NodeMeta, Task, TaskState
from orion.services.spec import ServiceSpec, TaskTemplate
from tests.api.fsm_raft import FsmRaft


class TouchingRaft(FsmRaft):
    """FsmRaft that counts the reads it serves and collects what its entries touched, as the
    Raft actor does (``RaftListeners``)."""

    def __init__(self) -> None:
        super().__init__()
        self.listeners = RaftListeners(self.fsm, "inc")
        self.reads = 0

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Read):
            self.reads += 1
        return super().on_receive(message)

    def _apply(self, data: bytes) -> Any:
        result = super()._apply(data)
        self.listeners.applied(data)
        return result

    def take_touched(self) -> Touched:
        return self.listeners.take_touched()

    def read_count(self) -> int:
        return self.reads


@dataclass
class Rig:
    raft: pykka.ActorProxy
    raft_ref: pykka.ActorRef
    actor: pykka.ActorRef

    def settle(self) -> None:
        for _ in range(6):
            self.actor.ask("settle")
            self.raft_ref.ask("settle")

    def commit(self, command: c.Command) -> Touched:
        """Apply ``command``, tell the actor what the Raft actor would, and wait for it."""
        result = self.raft.commit(command).get()
        assert not isinstance(result, c.CommandError), result
        self.actor.tell(StateChanged(self.raft.take_touched().get()))
        self.settle()
        return self.raft.take_touched().get()  # what the actor's own proposals touched

    def reads(self) -> int:
        return self.raft.read_count().get()

    def task(self, task_id: str) -> Task:
        return next(t for t in self.raft.tasks().get() if t.id == task_id)


@pytest.fixture
def start() -> Iterator[Any]:
    made: list[pykka.ActorRef] = []
    fatal: list[str] = []

    def make(actor_type: type) -> Rig:
        raft_ref = TouchingRaft.start()
        made.append(raft_ref)
        if actor_type is SchedulerActor:
            actor = SchedulerActor.start(raft_ref, "spread", 5.0, fatal.append)
        else:
            actor = actor_type.start(raft_ref, 5.0, fatal.append)
        made.append(actor)
        rig = Rig(raft_ref.proxy(), raft_ref, actor)
        meta = NodeMeta(id="n1", memory_total=1 << 30, cpu_total=2.0)
        rig.commit(c.UpsertNode(meta=meta, at=time.time()))
        actor.tell(LeadershipChanged(True, "node1"))
        rig.settle()
        return rig

    yield make
    for ref in reversed(made):
        ref.stop()
    assert fatal == []


def judged_unplaceable(rig: Rig, task_id: str) -> c.SubmitTask:
    """A submit the leader found no node for, on the state as it is (no second entry needed)."""
    judged_at = rig.raft_ref.proxy().fsm.get().applied_index
    huge = Task(id=task_id, name=task_id, image="busybox", memory=1 << 40)
    return c.SubmitTask(task=huge, reason="no node has 1 TiB", judged_at=judged_at, at=time.time())


def test_the_scheduler_reads_for_new_tasks_and_not_for_submits_already_judged(start) -> None:
    rig = start(SchedulerActor)
    before = rig.reads()
    for n in range(3):
        rig.commit(judged_unplaceable(rig, f"big{n}"))
    assert rig.reads() == before  # nothing to judge, no capacity freed: no round
    assert rig.task("big0").state == TaskState.PENDING
    rig.commit(c.SubmitTask(task=Task(id="small", name="small", image="busybox"), at=time.time()))
    assert rig.reads() > before
    assert rig.task("small").state == TaskState.SCHEDULED and rig.task("small").node_id == "n1"


def test_the_service_controller_reads_for_services_and_not_for_one_off_pending_tasks(start) -> None:
    rig = start(ServiceActor)
    before = rig.reads()
    rig.commit(judged_unplaceable(rig, "big"))
    assert rig.reads() == before
    spec = ServiceSpec(name="web", template=TaskTemplate(image="web:1"), replicas=2)
    rig.commit(c.CreateService(spec=spec, at=time.time()))
    assert rig.reads() > before
    assert sorted(t.name for t in rig.raft.tasks().get() if t.service == "web") == ["web.1", "web.2"]


def test_everything_wakes_every_loop() -> None:
    assert reconciler_concerned(EVERYTHING, "n1")
    assert EVERYTHING.concerns_node("n1")  # the health actor's rule
    assert scheduler_concerned(EVERYTHING)
    assert service_controller_concerned(EVERYTHING)
    assert ingress_concerned(EVERYTHING)
    assert network_concerned(EVERYTHING, "n1")
    assert StateChanged().touched == EVERYTHING


def test_a_one_off_pending_task_wakes_no_loop() -> None:
    pending = Touched(tasks=True)
    assert not reconciler_concerned(pending, "n1")
    assert not pending.concerns_node("n1")
    assert not scheduler_concerned(pending)
    assert not service_controller_concerned(pending)
    assert not ingress_concerned(pending)
    assert not network_concerned(pending, "n1")


def test_the_node_loops_wake_for_their_own_node_and_for_holds_of_gone_ones() -> None:
    on_n2 = Touched(tasks=True, task_nodes=frozenset({"n2"}))
    assert reconciler_concerned(on_n2, "n2") and on_n2.concerns_node("n2")
    assert network_concerned(on_n2, "n2")
    assert not reconciler_concerned(on_n2, "n1") and not on_n2.concerns_node("n1")
    assert not network_concerned(on_n2, "n1") and not ingress_concerned(on_n2)
    gone_n2 = Touched(tasks=True, task_nodes=frozenset({"n2"}), gone_nodes=frozenset({"n2"}))
    assert reconciler_concerned(gone_n2, "n1")  # n1 may release the ports n2's containers held
    assert scheduler_concerned(on_n2) and service_controller_concerned(on_n2)
    assert reconciler_concerned(Touched(nodes=True), "n1")
    assert ingress_concerned(Touched(tasks=True, service_tasks=True))
    assert ingress_concerned(Touched(services=True)) and ingress_concerned(Touched(nodes=True))
    assert network_concerned(Touched(network=True), "n1")
    assert network_concerned(Touched(tasks=True, service_tasks=True), "n1")
    assert scheduler_concerned(Touched(tasks=True, fresh_pending=True))
    assert scheduler_concerned(Touched(volumes=True))


class Recorder(pykka.ThreadingActor):
    """A state listener that keeps what it is told."""

    def __init__(self) -> None:
        super().__init__()
        self.told: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "told":
            return list(self.told)
        self.told.append(message)
        return None


class NodeLoop(Recorder):
    wants_state = staticmethod(reconciler_concerned)


class LeaderLoop(Recorder):
    wants_state = staticmethod(scheduler_concerned)
    leader_only = True


def test_the_raft_thread_tells_each_loop_only_what_concerns_it() -> None:
    fsm = ClusterState()
    listeners = RaftListeners(fsm, "inc", "n1")
    node_loop, leader_loop, plain = NodeLoop.start(), LeaderLoop.start(), Recorder.start()
    try:
        for ref in (node_loop, leader_loop, plain):
            listeners.add(ref)

        def apply(command: c.Command) -> None:
            data = c.encode_command(command)
            fsm.apply(fsm.applied_index + 1, data)
            listeners.applied(data)
            listeners.state_changed(listeners.take_touched())

        now = time.time()
        apply(c.UpsertNode(meta=NodeMeta(id="n1", memory_total=1 << 30, cpu_total=2.0), at=now))
        huge = Task(id="big", name="big", image="busybox", memory=1 << 40)
        apply(c.SubmitTask(task=huge, reason="no node fits", judged_at=fsm.applied_index, at=now))
        apply(c.SubmitTask(task=Task(id="t", name="t", image="busybox"), at=now))
        apply(c.AssignTasks(assignments=[("t", "n1")], at=now))
        listeners.leadership_changed(True, "n1")
        apply(c.StopTask(task_id="t", at=now))
        listeners.state_changed()  # the worker feed: no summary, everyone looks

        def kinds(ref: pykka.ActorRef) -> list[str]:
            told = ref.ask("told")
            return [
                "leader" if isinstance(m, LeadershipChanged) else "all" if m.touched.everything else "some"
                for m in told
            ]

        # plain: every change; the node loop: the node record, the assignment, the stop, and all;
        # the leader loop: nothing before it leads, then the leadership, the stop (capacity), all.
        assert kinds(plain) == ["some"] * 4 + ["leader", "some", "all"]
        assert kinds(node_loop) == ["some", "some", "leader", "some", "all"]
        assert kinds(leader_loop) == ["leader", "some", "all"]
    finally:
        for ref in (node_loop, leader_loop, plain):
            ref.stop()


def test_each_loop_class_declares_what_concerns_it() -> None:
    assert ReconcilerActor.wants_state is reconciler_concerned
    assert HealthActor.wants_state is health_concerned
    assert SchedulerActor.wants_state is scheduler_concerned and SchedulerActor.leader_only
    assert ServiceActor.wants_state is service_controller_concerned and ServiceActor.leader_only
    assert IngressActor.wants_state is ingress_concerned
    assert NetworkActor.wants_state is network_concerned
