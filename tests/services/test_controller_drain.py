"""The service controller moves a service off a draining node like a start-first update: the
replacement starts elsewhere first, the old task drains only once it is available, at most
``parallelism`` slots at a time; the real FSM and scheduler play the rest (tests/services/world.py)."""

from __future__ import annotations

from orion.fsm import commands as c
from orion.model import TaskState
from orion.scheduler.judge import schedule
from orion.scheduler.types import NodeView
from orion.services.controller import Decision, Rollback, Step, decide
from orion.services.slots import SlotKind, SlotTasks, resolve
from orion.services.spec import UpdatePolicy
from tests.services.world import World, spec


class DrainWorld(World):
    """World whose controller and scheduler see node drains, as the real actors do."""

    def draining(self) -> frozenset[str]:
        return frozenset(n.id for n in self.fsm.nodes() if n.drain is not None)

    def control(self) -> Decision:
        service = self.service
        decision = decide(
            service,
            self.tasks(),
            self.now,
            self.new_id,
            down_nodes=self.down_nodes(),
            draining_nodes=self.draining(),
            settings=self.settings,
        )
        self.decisions.append(decision)
        assert not isinstance(decision, Rollback)
        if isinstance(decision, Step):
            self.must(
                c.ServiceStep(
                    name=self.name,
                    expected_version=service.version,
                    add=list(decision.add),
                    drain=list(decision.drain),
                    stop=list(decision.stop),
                    status=decision.status,
                    at=self.now,
                )
            )
        return decision

    def place(self) -> None:
        pending = self.fsm.pending_tasks()
        if not pending:
            return
        views = []
        for record in self.fsm.nodes():
            memory, cpu, disk = self.fsm.allocated(record.id)
            views.append(
                NodeView(
                    record.id,
                    record.status,
                    record.meta,
                    memory,
                    cpu,
                    disk,
                    ports=tuple(self.fsm.port_claims(record.id)),
                    eligible=record.schedulable,
                    draining=record.drain is not None,
                )
            )
        plan = schedule(views, pending, "binpack", self.index, now=self.now, **self.placement_inputs())
        if plan.assignments:
            self.must(
                c.AssignTasks(
                    assignments=list(plan.assignments), host_ports=dict(plan.host_ports), at=self.now
                )
            )

    def available_on(self, node_id: str) -> int:
        return sum(1 for t in self.available() if t.node_id == node_id)


def test_drain_starts_replacements_elsewhere_first_and_keeps_every_replica_available() -> None:
    world = DrainWorld(spec(replicas=4, update=UpdatePolicy(parallelism=1)), nodes=3)
    world.settle()
    victim = max({t.node_id for t in world.live()}, key=world.available_on)
    on_victim = world.available_on(victim)
    assert on_victim >= 1
    world.must(c.DrainNode(node_id=victim, at=world.now))

    def check(w: World) -> None:
        # Never fewer available than asked for: the old task serves until its replacement does.
        assert len(w.available()) >= 4, w.describe()
        # parallelism 1: at most one slot has a replacement in flight beside its old task
        starting = [t for t in w.live() if t.node_id != victim and t.health != "healthy"]
        assert len(starting) <= 1, w.describe()

    world.settle(check=check)
    assert all(t.node_id != victim for t in world.live()), world.describe()
    assert world.fsm.live_tasks_on_node(victim) == 0
    drained = [t for t in world.tasks() if t.node_id == victim and t.state == TaskState.STOPPED]
    assert len(drained) == on_victim and all(t.drain_at > 0 for t in drained)  # drained, then stopped


def test_parallelism_zero_moves_every_slot_at_once() -> None:
    world = DrainWorld(spec(replicas=3, update=UpdatePolicy(parallelism=0)), nodes=2)
    world.settle()
    victim = max({t.node_id for t in world.live()}, key=world.available_on)
    moving = world.available_on(victim)
    world.must(c.DrainNode(node_id=victim, at=world.now))
    decision = world.tick()
    assert isinstance(decision, Step) and len(decision.add) == moving and not decision.drain


def test_no_room_elsewhere_keeps_the_old_task_serving() -> None:
    world = DrainWorld(spec(replicas=2), nodes=1)
    world.settle()
    world.must(c.DrainNode(node_id="n1", at=world.now))
    for _ in range(6):
        world.tick()
    assert len(world.available()) == 2  # replacements wait Pending: nothing was drained
    pending = [t for t in world.live() if t.state == TaskState.PENDING]
    assert len(pending) == 1  # the default parallelism of 1: one replacement waits for room


def test_a_slot_with_only_a_task_on_a_draining_node_is_evacuating() -> None:
    world = DrainWorld(spec(replicas=1), nodes=2)
    world.settle()
    (task,) = world.live()
    slot = SlotTasks(1, occupants=(task,))
    version = world.service.template_version
    assert resolve(slot, version, frozenset()).kind == SlotKind.DONE
    assert resolve(slot, version, frozenset(), frozenset({task.node_id})).kind == SlotKind.EVACUATING
