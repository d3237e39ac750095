"""The scheduler actor's pure helpers: when free capacity grew, the least free per resource."""

from orion.actors.scheduler_actor import capacity_grew, free_capacity, lowest
from orion.model import NodeMeta
from orion.scheduler.types import NodeView


def view(node_id: str, memory_used: int = 0, status: str = "alive") -> NodeView:
    meta = NodeMeta(id=node_id, memory_total=100, cpu_total=1.0, disk_total=100)
    return NodeView(node_id, status, meta, allocated_memory=memory_used)


def test_capacity_grows_only_when_something_was_freed_or_a_node_came():
    before = free_capacity([view("a", 50), view("b", 10)])
    assert not capacity_grew(before, free_capacity([view("a", 60), view("b", 10)]))  # placements
    assert capacity_grew(before, free_capacity([view("a", 40), view("b", 10)]))  # a task ended
    assert capacity_grew(before, free_capacity([view("a", 50), view("b", 10), view("c")]))  # new node
    assert not capacity_grew(before, free_capacity([view("a", 50), view("b", 10, "dead")]))


def test_lowest_keeps_the_least_free_per_resource():
    a = free_capacity([view("a", 50), view("b", 10)])
    b = free_capacity([view("a", 70)])
    assert lowest(a, b) == {"a": (30, 1.0, 100)}
