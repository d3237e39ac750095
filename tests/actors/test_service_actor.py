"""The service controller's shell: on the leader only, each round reads every service and its
tasks, runs the core and commits one command per service that has something to do. Runs
against tests/api/fsm_raft.py (a real ClusterState behind the Raft actor's message contract);
ticks are sent by hand."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pykka
import pytest

from orion.actors import service_actor
from orion.actors.messages import LeadershipChanged, StateChanged, Tick, TickGate
from orion.actors.service_actor import ServiceActor, command_for, describe
from orion.config import ConfigError, parse_config
from orion.fsm import commands as c
from orion.model import HealthCheck, NodeMeta, Task, TaskState
from orion.services.controller import Rollback, Step
from orion.services.spec import Service, ServiceSpec, TaskTemplate, UpdateState
from tests.api.fsm_raft import FsmRaft


@dataclass
class Rig:
    raft: pykka.ActorProxy
    raft_ref: pykka.ActorRef
    actor: pykka.ActorRef

    def settle(self) -> None:
        """A round is actor -> Read -> actor -> Propose(s) -> actor (-> another round when
        something changed meanwhile): each ask returns once all sent before it was handled."""
        for _ in range(6):
            self.actor.ask("settle")
            self.raft_ref.ask("settle")

    def tick(self) -> None:
        self.actor.tell(Tick(time.monotonic()))
        self.settle()

    def commit(self, command: c.Command) -> object:
        result = self.raft.commit(command).get()
        assert not isinstance(result, c.CommandError), result
        return result

    def tasks(self) -> list[Task]:
        return [t for t in self.raft.tasks().get() if t.service == "web"]

    def service(self) -> Service:
        return self.raft_ref.proxy().fsm.get().service("web")

    def steps(self) -> list[c.Command]:
        return [x for x in self.raft.commands().get() if isinstance(x, c.ServiceStep | c.RollbackService)]


@pytest.fixture
def rig() -> Iterator[Rig]:
    fatal: list[str] = []
    raft_ref = FsmRaft.start()
    actor = ServiceActor.start(raft_ref, 5.0, fatal.append, drain_delay=0.0)
    raft = raft_ref.proxy()
    now = time.time()
    raft.commit(c.UpsertNode(at=now, meta=NodeMeta(id="n1", memory_total=1 << 30, cpu_total=2.0))).get()
    try:
        yield Rig(raft, raft_ref, actor)
    finally:
        actor.stop()
        raft_ref.stop()
    assert fatal == []


def web(replicas: int, image: str = "web:1", health: HealthCheck | None = None) -> ServiceSpec:
    return ServiceSpec(name="web", template=TaskTemplate(image=image, health=health), replicas=replicas)


def test_only_the_leader_acts_and_it_fills_every_slot_in_one_step(rig: Rig) -> None:
    rig.commit(c.CreateService(spec=web(3), at=time.time()))
    rig.tick()
    assert rig.tasks() == []  # not told it leads yet
    rig.actor.tell(LeadershipChanged(True, "node1"))
    rig.settle()
    tasks = rig.tasks()
    assert sorted(t.name for t in tasks) == ["web.1", "web.2", "web.3"]
    assert all(t.state == TaskState.PENDING and t.version == 1 for t in tasks)
    assert len(rig.steps()) == 1
    rig.tick()
    assert len(rig.steps()) == 1  # nothing more to do: nothing proposed


def test_a_change_is_acted_on_without_waiting_for_a_tick(rig: Rig) -> None:
    rig.actor.tell(LeadershipChanged(True, "node1"))
    rig.commit(c.CreateService(spec=web(2), at=time.time()))
    rig.actor.tell(StateChanged())
    rig.settle()
    assert len(rig.tasks()) == 2
    rig.commit(c.ScaleService(name="web", replicas=1, at=time.time()))
    rig.actor.tell(StateChanged())
    rig.settle()
    live = [t for t in rig.tasks() if t.state == TaskState.PENDING]
    assert [t.name for t in live] == ["web.1"]  # web.2 was never running: stopped at once


def test_rounds_after_a_costly_one_wait_their_gap_then_act(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under churn a round follows the last one only after a gap in proportion to what its
    decisions cost (capped): the change is acted on at the tick the actor asked for."""
    monkeypatch.setattr(service_actor, "ROUND_GAP_FACTOR", 1e9)  # any round is "costly"
    monkeypatch.setattr(service_actor, "ROUND_GAP_MAX_S", 0.3)
    wishes: list[float] = []
    gate = TickGate(wishes.append)
    rig.actor.tell(LeadershipChanged(True, "node1"))
    rig.commit(c.CreateService(spec=web(2), at=time.time()))
    rig.actor.tell(Tick(time.monotonic(), gate))
    rig.settle()
    assert len(rig.tasks()) == 2
    rig.commit(c.ScaleService(name="web", replicas=3, at=time.time()))
    asked_at = time.monotonic()
    rig.actor.tell(StateChanged())
    rig.settle()
    assert len(rig.tasks()) == 2  # waits for its gap
    assert wishes and asked_at < wishes[-1] <= asked_at + 0.3  # the tick it needs is asked for
    deadline = time.monotonic() + 10.0
    while len(rig.tasks()) < 3:
        assert time.monotonic() < deadline, "the deferred round never ran"
        rig.actor.tell(Tick(time.monotonic(), gate))  # as the ticker would, at the wish
        rig.settle()


def test_a_failing_update_is_rolled_back_through_the_fsm(rig: Rig) -> None:
    check = HealthCheck(kind="tcp", port=80)
    rig.actor.tell(LeadershipChanged(True, "node1"))
    rig.commit(c.CreateService(spec=web(1, health=check), at=time.time()))
    rig.tick()

    def run(task: Task, health: str, port: int) -> None:
        now = time.time()
        rig.commit(
            c.AssignTasks(assignments=[(task.id, "n1")], host_ports={task.id: {"80/tcp": port}}, at=now)
        )
        rig.commit(c.ReportTaskState(task_id=task.id, node_id="n1", state=TaskState.RUNNING, at=now))
        rig.commit(c.ReportHealth(task_id=task.id, node_id="n1", health=health, at=now))

    (first,) = rig.tasks()
    run(first, "healthy", 20000)
    rig.commit(c.UpdateService(spec=web(1, image="web:bad", health=check), at=time.time()))
    rig.tick()
    new = next(t for t in rig.tasks() if t.version == 2)
    run(new, "unhealthy", 20001)
    rig.tick()
    rollbacks = [x for x in rig.steps() if isinstance(x, c.RollbackService)]
    assert len(rollbacks) == 1 and rollbacks[0].automatic
    service = rig.service()
    assert service.template_version == 1
    assert service.update.state == UpdateState.ROLLING_BACK
    rig.tick()  # the next round stops the unhealthy task of the rolled-back version
    assert rig.raft_ref.proxy().fsm.get().task(new.id).state == TaskState.STOPPED


def test_commands_carry_the_version_decided_on() -> None:
    service = Service(name="web", spec=web(1), version=7)
    task = Task(id="a", name="web.1", image="web:1", service="web", slot=1, version=1)
    step = command_for(service, Step(add=(task,), stop=("b",)), 10.0)
    assert isinstance(step, c.ServiceStep) and step.expected_version == 7 and step.stop == ["b"]
    rollback = command_for(service, Rollback("2 of 3 failed"), 10.0)
    assert isinstance(rollback, c.RollbackService) and rollback.automatic and rollback.expected_version == 7
    assert command_for(service, None, 10.0) is None
    assert describe(Step(add=(task,), stop=("b",))) == "adding web.1; stopping 1"


def test_services_config_defaults_and_refusals() -> None:
    base = '[node]\nid = "n1"\n'
    config = parse_config(base)
    assert (config.drain_delay, config.controller_interval) == (2.0, 0.5)
    config = parse_config(base + '[services]\ndrain_delay = "0s"\ncontroller_interval = "2s"\n')
    assert (config.drain_delay, config.controller_interval) == (0.0, 2.0)
    for text, message in [
        ('drain_delay = "1h"', "services.drain_delay: must be between 0 and 10m"),
        ('controller_interval = "10ms"', "services.controller_interval: must be between 50ms and 60s"),
        ('controller_interval = "soon"', "services.controller_interval: cannot parse duration"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_config(base + "[services]\n" + text + "\n")
