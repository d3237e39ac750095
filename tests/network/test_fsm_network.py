"""The overlay's commands in the cluster state: subnets through Raft, task overlay addresses."""

from __future__ import annotations

import ipaddress
import random

from hypothesis import given
from hypothesis import strategies as st

from orion.cluster.mirror import MemberMirror
from orion.cluster.status import node_infos
from orion.fsm import commands as c
from orion.fsm.state import ClusterState
from orion.fsm.tables import NODE_COLUMNS, NodeRecord, nodes_from_table
from orion.model import NodeMeta, NodeStatus, Task, TaskState
from orion.raft.core import RaftConfig, RaftCore
from orion.raft.memory_store import MemoryStore
from orion.raft.tabular import decode_tabular_snapshot
from orion.raft.types import Membership, Table

CIDR = "10.42.0.0/16"


class Driver:
    def __init__(self) -> None:
        self.fsm = ClusterState()
        self.index = 0

    def __call__(self, command: c.Command) -> object:
        self.index += 1
        return self.fsm.apply(self.index, c.encode_command(command))


def joined(*node_ids: str) -> Driver:
    apply = Driver()
    for node_id in node_ids:
        apply(c.UpsertNode(meta=NodeMeta(id=node_id, memory_total=1 << 30, cpu_total=2.0), at=1.0))
    return apply


def subnets(fsm: ClusterState) -> dict[str, str]:
    return {node.id: node.subnet for node in fsm.nodes()}


def test_each_node_gets_its_own_subnet_and_keeps_it() -> None:
    apply = joined("n1", "n2", "n3")
    for node_id in ("n1", "n2", "n3", "n2"):  # n2 twice: a leader repeating its proposal
        result = apply(c.AllocateSubnet(node_id=node_id, cluster_cidr=CIDR, at=2.0))
        assert isinstance(result, NodeRecord)
    assert subnets(apply.fsm) == {"n1": "10.42.0.0/24", "n2": "10.42.1.0/24", "n3": "10.42.2.0/24"}
    # Gossip's updates of the node do not take the subnet away.
    apply(c.UpsertNode(meta=NodeMeta(id="n2", version=5), at=3.0))
    assert apply.fsm.node("n2").subnet == "10.42.1.0/24"


def test_removing_a_node_releases_its_subnet_for_the_next_one() -> None:
    apply = joined("n1", "n2")
    apply(c.AllocateSubnet(node_id="n1", cluster_cidr=CIDR, at=2.0))
    apply(c.AllocateSubnet(node_id="n2", cluster_cidr=CIDR, at=2.0))
    apply(c.RemoveNode(node_id="n1", at=3.0))
    apply(c.UpsertNode(meta=NodeMeta(id="n4"), at=4.0))
    apply(c.AllocateSubnet(node_id="n4", cluster_cidr=CIDR, at=5.0))
    assert subnets(apply.fsm) == {"n2": "10.42.1.0/24", "n4": "10.42.0.0/24"}


def test_exhaustion_and_unknown_nodes_are_refused_with_a_reason() -> None:
    apply = joined("n1", "n2", "n3")
    small = "10.42.0.0/23"
    apply(c.AllocateSubnet(node_id="n1", cluster_cidr=small, at=2.0))
    apply(c.AllocateSubnet(node_id="n2", cluster_cidr=small, at=2.0))
    full = apply(c.AllocateSubnet(node_id="n3", cluster_cidr=small, at=2.0))
    assert isinstance(full, c.CommandError)
    assert full.code == c.Refusal.CONFLICT
    assert "no free /24 left in 10.42.0.0/23" in full.message
    assert apply.fsm.node("n3").subnet == ""
    missing = apply(c.AllocateSubnet(node_id="n9", cluster_cidr=CIDR, at=2.0))
    assert isinstance(missing, c.CommandError) and missing.code == c.Refusal.NOT_FOUND
    bad = apply(c.AllocateSubnet(node_id="n3", cluster_cidr="1.2.3.0/24", at=2.0))
    assert isinstance(bad, c.CommandError) and bad.code == c.Refusal.INVALID
    assert "private" in bad.message


def test_subnets_survive_a_snapshot_and_older_snapshots_restore_none() -> None:
    apply = joined("n1", "n2")
    apply(c.AllocateSubnet(node_id="n2", cluster_cidr=CIDR, at=2.0))
    restored = ClusterState()
    restored.restore(apply.fsm.snapshot())
    assert subnets(restored) == {"n1": "", "n2": "10.42.0.0/24"}
    assert restored.snapshot() == apply.fsm.snapshot()
    # The replica restored from the snapshot goes on allocating as the others do.
    restored.apply(apply.index + 1, c.encode_command(c.AllocateSubnet(node_id="n1", cluster_cidr=CIDR, at=3)))
    assert restored.node("n1").subnet == "10.42.1.0/24"

    nodes = decode_tabular_snapshot(apply.fsm.snapshot()).tables["nodes"]
    cut = len(NODE_COLUMNS) - 1  # a snapshot written before subnets existed
    old = Table(columns=nodes.columns[:cut], types=nodes.types[:cut], rows=[row[:cut] for row in nodes.rows])
    assert [n.subnet for n in nodes_from_table(old)] == ["", ""]


def test_overlay_address_is_kept_for_the_node_running_the_task_and_goes_when_it_moves() -> None:
    apply = joined("n1", "n2")
    apply(c.SubmitTask(task=Task(id="t1", name="t1", image="x"), at=2.0))
    apply(c.AssignTasks(assignments=[("t1", "n1")], at=3.0))
    stale = apply(c.ReportOverlayAddress(task_id="t1", node_id="n2", overlay_ip="10.42.1.2", at=4.0))
    assert isinstance(stale, c.CommandError)
    bad = apply(c.ReportOverlayAddress(task_id="t1", node_id="n1", overlay_ip="10.42.0.999", at=4.0))
    assert isinstance(bad, c.CommandError) and "overlay_ip" in bad.message
    history = len(apply.fsm.task("t1").history)
    apply(c.ReportOverlayAddress(task_id="t1", node_id="n1", overlay_ip="10.42.0.2", at=4.0))
    task = apply.fsm.task("t1")
    assert task.overlay_ip == "10.42.0.2"
    assert len(task.history) == history  # bookkeeping, not an event of the task
    restored = ClusterState()
    restored.restore(apply.fsm.snapshot())
    assert restored.task("t1").overlay_ip == "10.42.0.2"
    # n1 dies: the task goes back to Pending and its old address with it.
    apply(c.RescheduleNodeTasks(node_id="n1", reason="node n1 is dead", at=5.0))
    assert apply.fsm.task("t1").overlay_ip == ""


def test_a_task_that_ends_loses_its_overlay_address() -> None:
    apply = joined("n1")
    apply(c.SubmitTask(task=Task(id="t1", name="t1", image="x"), at=2.0))
    apply(c.AssignTasks(assignments=[("t1", "n1")], at=3.0))
    apply(c.ReportOverlayAddress(task_id="t1", node_id="n1", overlay_ip="10.42.0.2", at=4.0))
    apply(c.ReportTaskState(task_id="t1", node_id="n1", state=TaskState.RUNNING, at=5.0))
    assert apply.fsm.task("t1").overlay_ip == "10.42.0.2"  # still on its node and running
    apply(c.ReportTaskState(task_id="t1", node_id="n1", state=TaskState.FAILED, reason="exit 1", at=6.0))
    assert apply.fsm.task("t1").overlay_ip == ""


def test_a_released_subnet_goes_to_the_next_node_and_its_owner_gets_a_new_one() -> None:
    apply = joined("n1", "n2")
    apply(c.AllocateSubnet(node_id="n1", cluster_cidr=CIDR, at=2.0))
    apply(c.AllocateSubnet(node_id="n2", cluster_cidr=CIDR, at=2.0))
    apply(c.SetNodeStatus(node_id="n1", status=NodeStatus.DEAD, at=3.0))
    released = apply(c.ReleaseSubnet(node_id="n1", reason="gone for 600 s", at=700.0))
    assert isinstance(released, NodeRecord) and released.subnet == ""
    apply(c.UpsertNode(meta=NodeMeta(id="n3"), at=701.0))
    apply(c.AllocateSubnet(node_id="n3", cluster_cidr=CIDR, at=702.0))
    apply(c.AllocateSubnet(node_id="n1", cluster_cidr=CIDR, at=703.0))  # n1 came back
    assert subnets(apply.fsm) == {"n1": "10.42.2.0/24", "n2": "10.42.1.0/24", "n3": "10.42.0.0/24"}
    missing = apply(c.ReleaseSubnet(node_id="n9", at=704.0))
    assert isinstance(missing, c.CommandError) and missing.code == c.Refusal.NOT_FOUND


def test_orion_nodes_shows_each_nodes_subnet() -> None:
    membership = Membership(voters={"n1": "a:1", "n2": "a:2"}, cluster_id="c")
    core = RaftCore("n1", MemoryStore().load(), RaftConfig(), random.Random(1), bootstrap=membership)
    apply = joined("n1", "n2")
    apply(c.AllocateSubnet(node_id="n2", cluster_cidr=CIDR, at=2.0))
    shown = {info.id: info.subnet for info in node_infos(core, apply.fsm, MemberMirror())}
    assert shown == {"n1": "", "n2": "10.42.0.0/24"}


operations = st.lists(
    st.tuples(st.sampled_from(["join", "allocate", "remove", "release"]), st.integers(0, 6)), max_size=40
)


@given(operations, st.integers(0, 40))
def test_no_two_nodes_ever_share_a_subnet_and_a_restored_replica_agrees(
    steps: list[tuple[str, int]], cut: int
) -> None:
    """Random joins, allocations (in a /21: 8 subnets, so some runs fill it), removals and
    releases: subnets stay unique and inside the CIDR, and a replica restored from a snapshot
    taken at any point ends the same when fed the rest."""
    small = "10.42.0.0/21"
    apply = Driver()
    restored: ClusterState | None = None
    for number, (op, node) in enumerate(steps):
        node_id = f"n{node}"
        if op == "join":
            command: c.Command = c.UpsertNode(meta=NodeMeta(id=node_id), at=float(number))
        elif op == "allocate":
            command = c.AllocateSubnet(node_id=node_id, cluster_cidr=small, at=float(number))
        elif op == "remove":
            command = c.RemoveNode(node_id=node_id, at=float(number))
        else:
            command = c.ReleaseSubnet(node_id=node_id, at=float(number))
        apply(command)
        if restored is not None:
            restored.apply(apply.index, c.encode_command(command))
        if number == cut:
            restored = ClusterState()
            restored.restore(apply.fsm.snapshot())
        held = [subnet for subnet in subnets(apply.fsm).values() if subnet]
        assert len(held) == len(set(held))
        assert all(ipaddress.IPv4Network(s).subnet_of(ipaddress.IPv4Network(small)) for s in held)
    if restored is not None:
        assert subnets(restored) == subnets(apply.fsm)
        assert restored.snapshot() == apply.fsm.snapshot()
