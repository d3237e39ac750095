"""Service tasks spread over nodes or tag values, with a maximum per node
(orion/scheduler/spread.py), whatever the strategy; other tasks are placed as before."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from orion.model import Task
from orion.scheduler import schedule
from orion.scheduler.fleet import Fleet, selector_key
from orion.scheduler.ports import DEFAULT_DYNAMIC_PORTS
from orion.scheduler.rank import NONE, pick_spread
from orion.scheduler.spread import SpreadGroup
from orion.scheduler.types import ServiceLayout
from orion.services.controller import new_task
from orion.services.layout import service_layout
from orion.services.spec import Placement, Service, ServiceSpec, TaskTemplate
from tests.scheduler.test_judge import node, placed, task


def web(slot: int, version: int = 1, service: str = "web", **fields: object) -> Task:
    return task(f"{service}-{version}-{slot}", service=service, slot=slot, version=version, **fields)


@pytest.mark.parametrize("strategy", ["binpack", "spread"])
@pytest.mark.parametrize("limit", [None, 2])
def test_a_services_tasks_go_one_per_node_before_any_node_gets_two(strategy: str, limit: int | None) -> None:
    nodes = [node("n1", used_memory="8GiB"), node("n2"), node("n3")]
    plan = schedule(nodes, [web(s) for s in range(1, 7)], strategy, seed=3, limit=limit)
    assert Counter(placed(plan).values()) == {"n1": 2, "n2": 2, "n3": 2}
    # Plain tasks still follow the strategy: binpack fills the fullest node.
    plain = schedule(nodes, [task(f"t{i}") for i in range(3)], "binpack", seed=3)
    assert set(placed(plain).values()) == {"n1"}


def test_tasks_already_placed_count() -> None:
    nodes = [node("n1"), node("n2"), node("n3")]
    layouts = {"web": ServiceLayout(placed={1: {"n1": 2, "n2": 1}})}
    plan = schedule(nodes, [web(4), web(5)], "binpack", seed=1, services=layouts)
    assert placed(plan)["web-1-4"] == "n3"  # the only node without one
    assert placed(plan)["web-1-5"] in ("n2", "n3")  # one each there: the strategy breaks the tie


def test_spread_over_a_tag_balances_its_values_not_the_nodes() -> None:
    nodes = [
        node("a1", tags={"zone": "a"}),
        node("a2", tags={"zone": "a"}),
        node("a3", tags={"zone": "a"}),
        node("b1", tags={"zone": "b"}),
    ]
    layouts = {"web": ServiceLayout(spread="zone")}
    plan = schedule(nodes, [web(s) for s in range(1, 5)], "binpack", seed=5, services=layouts)
    by_node = Counter(placed(plan).values())
    assert by_node["b1"] == 2  # zone b holds half, on its only node
    assert sum(by_node[n] for n in ("a1", "a2", "a3")) == 2
    assert max(by_node[n] for n in ("a1", "a2", "a3")) == 1  # and within zone a, one per node


def test_nodes_without_the_tag_are_a_group_of_their_own() -> None:
    nodes = [node("a1", tags={"zone": "a"}), node("x1"), node("x2")]
    layouts = {"web": ServiceLayout(spread="zone")}
    plan = schedule(nodes, [web(1), web(2)], "spread", seed=2, services=layouts)
    values = sorted("a" if n == "a1" else "none" for n in placed(plan).values())
    assert values == ["a", "none"]


def test_max_per_node_leaves_the_rest_pending_with_a_reason() -> None:
    nodes = [node("n1"), node("n2"), node("n3", status="dead")]
    layouts = {"web": ServiceLayout(max_per_node=1, placed={1: {"n1": 1}})}
    plan = schedule(nodes, [web(2), web(3)], "binpack", seed=1, services=layouts)
    assert list(placed(plan).values()) == ["n2"]
    (reason,) = plan.pending_reasons.values()
    assert reason == "0/3 nodes fit: 2 already running 1 task(s) of service web (max_per_node), 1 not alive"


def test_a_new_version_is_counted_apart_so_a_start_first_surge_can_be_placed() -> None:
    nodes = [node("n1"), node("n2")]
    layouts = {"web": ServiceLayout(max_per_node=1, placed={1: {"n1": 1, "n2": 1}})}
    plan = schedule(nodes, [web(1, version=2), web(3, version=1)], "binpack", seed=1, services=layouts)
    assert "web-2-1" in placed(plan) and "web-1-3" not in placed(plan)


def test_two_services_do_not_count_each_others_tasks() -> None:
    nodes = [node("n1"), node("n2")]
    layouts = {
        "web": ServiceLayout(max_per_node=1, placed={1: {"n1": 1}}),
        "db": ServiceLayout(max_per_node=1),
    }
    plan = schedule(nodes, [web(2), web(2, service="db")], "binpack", seed=4, services=layouts)
    assert placed(plan)["web-1-2"] == "n2"
    assert "db-1-2" in placed(plan)


def test_constraints_copied_by_the_controller_select_nodes() -> None:
    spec = ServiceSpec(
        name="web",
        template=TaskTemplate(image="web:1", memory=1 << 20),
        replicas=2,
        placement=Placement(constraints={"disk": "ssd"}),
    )
    service = Service(name="web", spec=spec)
    tasks = [new_task(service, s, f"t{s}", 0.0) for s in (1, 2)]
    nodes = [node("n1", tags={"disk": "ssd"}), node("n2"), node("n3", tags={"disk": "ssd"})]
    plan = schedule(nodes, tasks, "binpack", seed=1, services={"web": service_layout(service, [])})
    assert sorted(placed(plan).values()) == ["n1", "n3"]


def test_the_layout_counts_active_serving_tasks_by_version() -> None:
    service = Service(name="web", spec=ServiceSpec(name="web", template=TaskTemplate(image="web:1")))
    tasks = [
        web(1, node_id="n1", state="Running"),
        web(2, node_id="n1", state="Scheduled"),
        web(3, node_id="n2", state="Running", drain_at=5.0),  # leaving: not counted
        web(4, node_id="n2", state="Failed"),
        web(5, version=2, node_id="n2", state="Running"),
        web(6),  # Pending: nowhere yet
    ]
    layout = service_layout(service, tasks)
    assert layout.placed == {1: {"n1": 2}, 2: {"n2": 1}}


@pytest.mark.parametrize("seed", range(40))
def test_the_spread_pick_is_the_smallest_whole_key(seed: int) -> None:
    """pick_spread passes over candidates whose spread key cannot win; what it picks is still
    the first candidate with the smallest (tag value's count, node's count, strategy score)."""
    rng = random.Random(seed)
    zones = ["a", "b", "c"]
    nodes = [
        node(
            f"n{i}",
            memory=rng.choice(["2GiB", "4GiB", "8GiB"]),
            used_memory=rng.choice([0, "1GiB", "2GiB"]),
            tags={"zone": rng.choice(zones)} if rng.random() < 0.8 else {},
        )
        for i in range(rng.randrange(1, 30))
    ]
    counts = {n.id: rng.randrange(4) for n in nodes if rng.random() < 0.6}
    layout = ServiceLayout(spread=rng.choice(["", "zone"]), placed={1: counts})
    fleet = Fleet(nodes, seed, 0.0, DEFAULT_DYNAMIC_PORTS)
    group = SpreadGroup("web", layout, 1, fleet.ids, [n.meta.tags for n in fleet.nodes])
    one = web(1, memory=rng.choice(["512MiB", "2GiB", "7GiB"]))
    candidates = fleet.candidates(selector_key(one))
    for strategy in ("binpack", "spread"):

        def whole_key(i: int, strategy: str = strategy) -> tuple[int, int, float]:
            if strategy == "binpack":
                score = (fleet.free_memory[i] - one.memory) * fleet.inverse_memory[i] + (
                    fleet.free_cpu[i] - one.cpu
                ) * fleet.inverse_cpu[i]
            else:
                score = -fleet.free_memory[i]
            by_value = group.per_value[group.values[i]] if layout.spread else 0
            return by_value, group.per_node[i], score

        fits = [
            i
            for i in candidates
            if fleet.free_memory[i] >= one.memory and fleet.free_cpu[i] >= one.cpu and fleet.free_disk[i] >= 0
        ]
        expected = min(fits, key=lambda i: (whole_key(i), candidates.index(i))) if fits else NONE
        assert pick_spread(fleet, candidates, one, strategy, group) == expected
