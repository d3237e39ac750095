"""Whole services walked tick by tick: the controller's core (orion/services/controller.py)
against the real FSM and scheduler, with nodes played by tests/services/world.py."""

from __future__ import annotations

import itertools
from collections import Counter

from orion.fsm import commands as c
from orion.model import TaskState
from orion.services.controller import Rollback, Step
from orion.services.slots import is_available
from orion.services.spec import UpdatePolicy, UpdateState
from tests.services.world import CRASH, UNHEALTHY, World, spec


def versions(tasks: list) -> Counter[int]:
    return Counter(t.version for t in tasks)


def test_scale_1_to_5_to_2_drains_then_stops_the_highest_slots() -> None:
    world = World(spec(replicas=1))
    world.settle()
    assert [t.name for t in world.available()] == ["web.1"]
    world.scale(5)
    world.settle()
    assert sorted(t.slot for t in world.available()) == [1, 2, 3, 4, 5]
    first = {t.slot: t.id for t in world.available()}
    world.scale(2)
    step = world.tick()
    # Slots 3-5 leave the ingress at once; their containers stop only after the drain delay.
    assert isinstance(step, Step) and sorted(step.drain) == sorted(first[s] for s in (3, 4, 5))
    assert step.stop == () and step.add == ()
    drained_at = world.now
    while world.now < drained_at + world.settings.drain_delay - 0.5:
        assert world.tick() is None
        assert {t.slot for t in world.live()} == {1, 2, 3, 4, 5}
    world.settle()
    assert world.now >= drained_at + world.settings.drain_delay
    assert {t.slot: t.id for t in world.live()} == {1: first[1], 2: first[2]}  # the low slots never moved


def test_start_first_parallelism_1_keeps_every_replica_available() -> None:
    world = World(spec(replicas=3))
    world.settle()
    world.update(image="web:2")
    most_new_at_once = 0

    def check(w: World) -> None:
        nonlocal most_new_at_once
        assert len(w.available()) >= 3, w.describe()
        assert len(w.serving()) <= 4, w.describe()  # the surge is one task
        unready = [t for t in w.serving() if t.version == 2 and not is_available(t)]
        most_new_at_once = max(most_new_at_once, len(unready))
        for task in w.live():
            # An old task drains only once its slot's new task is available.
            if task.version == 1 and task.drain_at:
                assert any(n.slot == task.slot and n.version == 2 for n in w.available())

    world.settle(check=check)
    assert most_new_at_once == 1
    assert versions(world.live()) == {2: 3}
    assert world.state == UpdateState.COMPLETED
    assert world.service.update.updated_slots == [1, 2, 3]


def test_start_first_parallelism_2_updates_two_slots_at_a_time() -> None:
    world = World(spec(replicas=3, update=UpdatePolicy(parallelism=2)))
    world.settle()
    world.update(image="web:2")
    adds = []

    def check(w: World) -> None:
        assert len(w.available()) >= 3, w.describe()
        assert len(w.serving()) <= 5, w.describe()

    while world.state == UpdateState.UPDATING:
        decision = world.tick()
        check(world)
        if isinstance(decision, Step) and decision.add:
            adds.append(sorted(t.slot for t in decision.add))
    assert adds == [[1, 2], [3]]
    world.settle(check=check)
    assert versions(world.live()) == {2: 3}


def test_delay_separates_batches_and_monitor_holds_completion() -> None:
    world = World(spec(replicas=2, update=UpdatePolicy(delay=3.0, monitor=4.0)))
    world.settle()
    world.update(image="web:2")
    added_at = []
    while world.state == UpdateState.UPDATING:
        decision = world.tick()
        if isinstance(decision, Step) and decision.add:
            added_at.append(world.now)
    status = world.service.update
    assert len(added_at) == 2
    # The second batch waits ``delay`` after the first finished; completion waits ``monitor``.
    first_done = added_at[0] + 1.0  # placed and started at the next tick, healthy at the one after
    assert added_at[1] >= first_done + 3.0
    assert status.finished_at >= status.batch_done_at + 4.0


def test_stop_first_drains_the_old_task_before_its_replacement_exists() -> None:
    world = World(spec(replicas=3, update=UpdatePolicy(order="stop-first")))
    world.settle()
    world.update(image="web:2")

    def check(w: World) -> None:
        assert len(w.available()) >= 2, w.describe()  # replicas - parallelism
        assert len(w.serving()) <= 3, w.describe()
        for slot in (1, 2, 3):
            in_slot = [t for t in w.live() if t.slot == slot]
            # Never an old and a new task of one slot alive together.
            assert len({t.version for t in in_slot}) <= 1, w.describe()

    world.settle(check=check)
    assert versions(world.live()) == {2: 3}


def test_a_failing_new_template_is_rolled_back_and_the_service_keeps_serving() -> None:
    world = World(spec(replicas=3))
    world.settle()
    world.behaviour["web:bad"] = UNHEALTHY
    world.update(image="web:bad")

    def check(w: World) -> None:
        assert len(w.available()) >= 3, w.describe()

    rollbacks = []
    for _ in range(40):
        decision = world.tick()
        check(world)
        if isinstance(decision, Rollback):
            rollbacks.append(decision.reason)
        if world.state == UpdateState.ROLLED_BACK:
            break
    assert len(rollbacks) == 1 and "version 2 failed" in rollbacks[0]
    world.settle(check=check)
    service = world.service
    assert service.template_version == 1 and service.spec.template.image == "web:1"
    assert service.update.state == UpdateState.ROLLED_BACK
    assert "automatic rollback" in service.update.message
    assert versions(world.live()) == {1: 3}


def test_failure_action_pause_stops_the_update_and_resume_goes_on() -> None:
    world = World(spec(replicas=3, update=UpdatePolicy(failure_action="pause", max_failure_ratio=0.5)))
    world.settle()
    world.behaviour["web:2"] = CRASH
    world.update(image="web:2")
    for _ in range(40):
        world.tick()
        if world.state == UpdateState.PAUSED:
            break
    status = world.service.update
    # The first failure is 1/3 (under 0.5); the second one pauses.
    assert status.state == UpdateState.PAUSED and len(status.failed_tasks) == 2
    assert "failed" in status.message
    before = {t.id for t in world.tasks()}
    for _ in range(10):
        world.tick()
    # Paused: nothing started beyond the one slot the failed attempts were for.
    assert {t.slot for t in world.tasks() if t.id not in before and t.version == 2} <= {1}
    world.behaviour["web:2"] = "good"  # say, a registry glitch that went away
    result = world.resume()
    assert not isinstance(result, c.CommandError), result
    world.settle()
    assert versions(world.live()) == {2: 3}


def test_pause_by_hand_and_resume() -> None:
    world = World(spec(replicas=3, update=UpdatePolicy(delay=5.0)))
    world.settle()
    world.update(image="web:2")
    while not world.service.update.updated_slots:
        world.tick()
    assert not isinstance(world.pause(), c.CommandError)
    for _ in range(30):
        world.tick()
        assert world.state == UpdateState.PAUSED
    assert versions(world.live()) == {1: 2, 2: 1}
    assert not isinstance(world.resume(), c.CommandError)
    world.settle()
    assert versions(world.live()) == {2: 3}


def test_a_new_update_supersedes_one_in_flight() -> None:
    world = World(spec(replicas=4, update=UpdatePolicy(delay=2.0)))
    world.settle()
    world.update(image="web:2")
    while len(world.service.update.updated_slots) < 1:
        world.tick()
    world.tick()
    world.update(image="web:3")
    assert world.service.update.to_version == 3

    def check(w: World) -> None:
        assert len(w.available()) >= 4, w.describe()
        # No task of the superseded template is started any more.
        assert all(t.created_at < w.service.update.started_at for t in w.tasks() if t.version == 2)

    world.settle(check=check)
    assert versions(world.live()) == {3: 4}
    assert world.service.update.state == UpdateState.COMPLETED


def test_rollback_by_hand_uses_the_rollback_policy() -> None:
    world = World(spec(replicas=3, rollback=UpdatePolicy(parallelism=0, failure_action="pause")))
    world.settle()
    world.update(image="web:2")
    world.settle()
    assert not isinstance(world.rollback(), c.CommandError)
    assert world.state == UpdateState.ROLLING_BACK
    decision = world.tick()
    assert isinstance(decision, Step) and len(decision.add) == 3  # parallelism 0: every slot at once
    world.settle()
    assert versions(world.live()) == {1: 3}
    assert world.state == UpdateState.ROLLED_BACK


def test_a_node_dying_mid_update_has_its_tasks_replaced_elsewhere() -> None:
    world = World(spec(replicas=3))
    world.settle()
    world.update(image="web:2")
    while len(world.service.update.updated_slots) < 1:
        world.tick()
    victim = next(t.node_id for t in world.live() if t.version == 2)
    lost = {t.id for t in world.live() if t.node_id == victim}
    world.kill_node(victim)
    step = world.tick()
    assert isinstance(step, Step) and lost <= set(step.stop)
    world.settle()
    assert versions(world.live()) == {2: 3}
    assert all(t.node_id != victim for t in world.live())
    assert len({t.node_id for t in world.live()}) == 2  # spread over the two nodes left
    # The node returns: nothing of it runs any more, and nothing extra is started.
    world.revive_node(victim)
    world.settle()
    assert len(world.live()) == 3


def test_a_crashing_slot_backs_off_doubling() -> None:
    world = World(spec(replicas=1, image="web:crash"))
    world.behaviour["web:crash"] = CRASH
    created = []
    for _ in range(600):
        decision = world.tick()
        if isinstance(decision, Step) and decision.add:
            created.append(world.now)
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(created)]
    # Failed half a second (a tick) after it was added; then 1, 2, 4, 8, 16 s of backoff.
    assert gaps[:5] == [1.5, 2.5, 4.5, 8.5, 16.5], gaps
    assert max(gaps) == 60.5  # capped


def test_an_unhealthy_task_is_stopped_and_replaced_in_its_slot() -> None:
    world = World(spec(replicas=2))
    world.settle()
    victim = next(t for t in world.available() if t.slot == 2)
    world.must(c.ReportHealth(task_id=victim.id, node_id=victim.node_id, health="unhealthy", at=world.now))
    step = world.tick()
    assert isinstance(step, Step) and step.stop == (victim.id,) and step.drain == ()
    world.settle()
    replacement = next(t for t in world.live() if t.slot == 2)
    assert replacement.id != victim.id and replacement.name == "web.2"
    assert world.fsm.task(victim.id).state == TaskState.STOPPED


def test_a_task_that_exits_is_replaced_and_the_scale_down_of_a_pending_task_is_immediate() -> None:
    world = World(spec(replicas=2))
    world.settle()
    world.fail(next(t for t in world.live() if t.slot == 1))
    world.settle()
    assert len(world.available()) == 2
    world.scale(3)
    world.tick()  # slot 3 is added, still Pending
    pending = next(t for t in world.live() if t.slot == 3)
    world.scale(2)
    step = world.control()
    assert isinstance(step, Step) and pending.id in step.stop and pending.id not in step.drain
