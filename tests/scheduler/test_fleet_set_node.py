"""A fleet kept between placements (the leader's submit placer): ``Fleet.set_node`` replaces
one node's view, and what the Judge reads follows it."""

from __future__ import annotations

import pytest

from orion.model import NodeMeta, NodeStatus
from orion.scheduler.fleet import Fleet
from orion.scheduler.types import NodeView

GiB = 1 << 30


def _view(node_id: str, status: str = NodeStatus.ALIVE, allocated: int = 0, **tags: str) -> NodeView:
    meta = NodeMeta(id=node_id, memory_total=8 * GiB, cpu_total=4.0, tags=tags)
    return NodeView(node_id, status, meta, allocated_memory=allocated, allocated_cpu=1.0)


def _fleet() -> Fleet:
    return Fleet([_view("a", zone="x"), _view("b", zone="x"), _view("c", zone="y")], seed=3)


def test_free_resources_follow_the_new_view() -> None:
    fleet = _fleet()
    index = fleet.ids.index("b")
    fleet.set_node(index, _view("b", allocated=3 * GiB, zone="x"))
    assert (fleet.free_memory[index], fleet.free_cpu[index]) == (5 * GiB, 3.0)
    assert fleet.nodes[index].allocated_memory == 3 * GiB


def test_a_node_going_dead_leaves_the_usable_list_and_the_selector_caches() -> None:
    fleet = _fleet()
    assert len(fleet.candidates((("zone", "x"),))) == 2
    index = fleet.ids.index("a")
    fleet.set_node(index, _view("a", status=NodeStatus.DEAD, zone="x"))
    assert index not in fleet.usable and fleet.not_alive == 1
    assert [fleet.ids[i] for i in fleet.candidates((("zone", "x"),))] == ["b"]
    fleet.set_node(fleet.ids.index("c"), _view("c", zone="x"))  # a tag changed
    assert sorted(fleet.ids[i] for i in fleet.candidates((("zone", "x"),))) == ["b", "c"]


def test_a_view_of_another_node_is_refused_by_name() -> None:
    fleet = _fleet()
    with pytest.raises(ValueError, match="not 'z'"):
        fleet.set_node(0, _view("z"))
