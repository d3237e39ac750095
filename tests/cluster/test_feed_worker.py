"""A worker node's glue around its feed client (orion/cluster/feed_worker.py): answers into the fed
state, the request path and the identity; the candidates it asks first; its leader contact."""

from __future__ import annotations

import random

from orion.cluster.feed_client import FeedClient
from orion.cluster.feed_host import FeedHost
from orion.cluster.feed_protocol import FeedAnswer
from orion.cluster.feed_worker import PROBE_AFTER_S, FeedWorker, WorkerStatusViews, feed_candidates
from orion.cluster.leader_contact import disconnect_verdict
from orion.cluster.leadership import Leadership
from orion.cluster.mirror import MemberMirror
from orion.cluster.outcome import Outcome
from orion.cluster.request_path import RequestPath
from orion.fsm import commands as c
from orion.fsm.state import ClusterState
from orion.model import NodeMeta, Task, TaskState, VolumeMount
from orion.raft.core import RaftConfig, RaftCore
from orion.raft.memory_store import MemoryStore
from orion.raft.messages import Heartbeat
from orion.raft.types import Membership
from orion.volumes.spec import Volume, VolumeSpec

ME = "w1"


class Host:
    def __init__(self, members: dict[str, str] | None = None) -> None:
        """``members``: the configuration this node's own log holds (None: none, a fresh node)."""
        self.fsm = ClusterState()
        self.changes = 0
        self.clusters: list[str] = []
        store = MemoryStore()
        store.save_identity("cd" * 16)
        bootstrap = Membership(voters=members, cluster_id="c1") if members else None
        core = self.core = RaftCore(ME, store.load(), RaftConfig(), random.Random(1), bootstrap)
        if core.has_ready():  # the configuration entry: committed and applied (index 1)
            core.advance(core.ready())
        self.host = FeedHost(ME, self.fsm, core, lambda node_id: None, lambda frames: None)
        self.client = FeedClient(ME, "127.0.0.9:7000", lambda address, payload: None)
        requests = RequestPath(
            core,
            Leadership(0.0),
            node_id=ME,
            origin="127.0.0.9:7000",
            request_timeout=5.0,
            election_ticks=10,
            send=lambda address, payload: None,
            run=lambda query: Outcome.success(None),
            feed=self.client,
        )
        self.requests = requests
        self.worker = FeedWorker(
            ME,
            self.client,
            self.fsm,
            requests,
            on_tasks=self._changed,
            on_cluster=self.clusters.append,
            host=self.host,
        )

    def _changed(self) -> None:
        self.changes += 1

    def answer(
        self,
        index: int,
        tasks: list[Task] | None,
        now: float,
        volumes: list[Volume] | None = None,
        member: bool = False,
    ) -> None:
        self.worker.on_message(
            FeedAnswer(
                ME,
                index,
                tasks is not None,
                tasks=tasks or [],
                held_ports=["old"] if tasks else [],
                cluster_id="c1",
                leader_id="v1",
                leader_address="10.0.0.1:7000",
                servers=["10.0.0.1:7000", "10.0.0.2:7000"],
                volumes=volumes or [],
                member=member,
            ),
            now,
        )


def _task(task_id: str, state: str = TaskState.SCHEDULED) -> Task:
    return Task(id=task_id, name=task_id, image="busybox", state=state, node_id=ME)


def test_answers_replace_the_node_tasks_and_tell_the_host_only_when_they_changed() -> None:
    host = Host()
    host.worker.step(0.0, [], lambda: ["10.0.0.1:7000"])
    assert host.client.active
    host.answer(5, [_task("t1")], 0.1)
    assert [t.id for t in host.fsm.tasks_on_node(ME)] == ["t1"] and host.fsm.held_port_tasks(ME) == ["old"]
    assert host.changes == 1 and host.clusters == ["c1"] and host.worker.cluster_id == "c1"
    host.answer(6, None, 10.0)  # nothing new
    host.answer(7, [_task("t1")], 11.0)  # the same list again (level-triggered)
    assert host.changes == 1
    host.answer(8, [_task("t1", TaskState.RUNNING)], 12.0)
    assert host.changes == 2 and host.fsm.task("t1").state == TaskState.RUNNING  # type: ignore[union-attr]
    # In the configuration now: it stops watching, and its cluster id is the configuration's.
    host.worker.step(13.0, [ME, "v1"])
    assert not host.client.active and host.worker.cluster_id == ""


def test_the_volume_records_an_answer_carries_are_the_fed_states_volumes_table() -> None:
    host = Host()
    host.worker.step(0.0, [])
    mounting = Task(
        id="db", name="db", image="busybox", node_id=ME, volumes=[VolumeMount(volume="data", target="/d")]
    )
    data = Volume(name="data", uid="u1", spec=VolumeSpec(name="data"), node_id=ME)
    host.answer(5, [mounting], 0.1, [data])
    assert host.fsm.volume("data") == data and host.fsm.volume_users("data") == [mounting]
    host.answer(6, [mounting], 0.2, [data])  # the same: nothing to tell
    assert host.changes == 1
    ready = Volume(name="data", uid="u1", spec=VolumeSpec(name="data"), node_id=ME, state="ready")
    host.answer(7, [mounting], 0.3, [ready])  # only a volume changed: the host hears of it
    assert host.changes == 2 and host.fsm.volumes() == [ready]
    host.answer(8, [], 0.4, [])
    assert host.fsm.volumes() == [] and host.changes == 3


def test_a_worker_holding_a_replica_keeps_it_untouched_and_reads_a_fed_state_of_its_own() -> None:
    """A member removed (its own log has the configuration without it): the replica stays as it
    is for its Raft core (a leader adding it again replicates on from it); reads see the feed."""
    host = Host()
    host.fsm.apply(1, c.encode_command(c.SubmitTask(task=Task(id="r1", name="r1", image="x"), at=1.0)))
    views = WorkerStatusViews(ME, host.core, host.fsm, MemberMirror(), Leadership(0.0), lambda: 0.0)
    views.worker = host.worker
    host.worker.step(0.0, [])
    host.answer(5, [_task("t1")], 0.1)
    assert [t.id for t in host.fsm.tasks()] == ["r1"] and host.fsm.applied_index == 1
    assert [t.id for t in views.fsm.tasks()] == ["t1"] and host.changes == 1
    host.worker.step(1.0, [ME, "v1"])  # in the configuration again: its replica serves it
    assert views.fsm is host.fsm and not host.client.active


def test_a_member_removed_while_away_learns_it_from_the_feed_and_runs_as_a_worker() -> None:
    """Raft never tells a removed server it was removed: its own log still names it. Having
    heard no leader for PROBE_AFTER_S, it asks the feed; a member further on says it is out."""
    host = Host(members={ME: "127.0.0.9:7000", "v1": "10.0.0.1:7000"})
    host.fsm.apply(1, c.encode_command(c.SubmitTask(task=Task(id="r1", name="r1", image="x"), at=1.0)))
    views = WorkerStatusViews(ME, host.core, host.fsm, MemberMirror(), Leadership(0.0), lambda: 0.0)
    views.worker = host.worker
    host.worker.step(0.0, [ME, "v1"])
    host.worker.step(PROBE_AFTER_S - 0.1, [ME, "v1"])
    assert not host.client.active  # an election may still end it
    host.worker.step(PROBE_AFTER_S, [ME, "v1"])
    assert host.client.active and host.requests.probing and not host.requests.is_worker
    # A member behind this one, or one saying it is still a member, proves nothing.
    host.answer(1, [], PROBE_AFTER_S + 0.1)
    host.answer(6, [], PROBE_AFTER_S + 0.2, member=True)
    assert host.core.applied_index == 1 and not host.worker.removed
    assert views.fsm is host.fsm and host.host.serving and views.status().role != "worker"
    host.answer(9, [_task("t1")], PROBE_AFTER_S + 0.3)
    assert host.worker.removed and host.requests.is_worker and host.host.stood_down
    assert [t.id for t in views.fsm.tasks()] == ["t1"] and host.changes == 1
    assert [t.id for t in host.fsm.tasks()] == ["r1"]  # the replica is kept as it was
    assert views.status().role == "worker"
    # A seat freed and the leader adds it again: it hears the leader, and is a member again.
    host.core.step(Heartbeat(src="v1", dst=ME, term=1, commit=0))
    host.worker.step(PROBE_AFTER_S + 1.0, [ME, "v1"])
    assert not host.worker.removed and not host.client.active and not host.host.stood_down
    assert views.fsm is host.fsm


def test_seeds_come_first_among_the_candidates_and_the_node_itself_never() -> None:
    def meta(node_id: str, address: str) -> NodeMeta:
        return NodeMeta(id=node_id, address=address, raft_port=7000, gossip_port=7001)

    members = [meta("w1", "10.0.0.9"), meta("a", "10.0.0.5"), meta("seed", "10.0.0.1"), meta("b", "10.0.0.6")]
    assert feed_candidates("w1", members, ["10.0.0.1:7001"]) == [
        "10.0.0.1:7000",
        "10.0.0.5:7000",
        "10.0.0.6:7000",
    ]


def test_a_worker_cut_off_from_every_server_stops_its_tasks_one_that_sees_them_does_not() -> None:
    host = Host()
    host.worker.step(0.0, [])
    assert host.worker.leader_contact(set(), started=0.0) is None  # not fed yet: Raft's contact
    host.answer(5, [_task("t1")], 1.0)
    cut_off = host.worker.leader_contact(set(), started=0.0)
    assert cut_off is not None and (cut_off.last_heard, cut_off.leader_id) == (1.0, "v1")
    assert disconnect_verdict(cut_off, now=40.0, stop_after=30.0).stop
    in_sight = host.worker.leader_contact({"10.0.0.1:7000", "10.0.0.2:7000"}, started=0.0)
    assert in_sight is not None and not disconnect_verdict(in_sight, now=40.0, stop_after=30.0).stop
    assert not disconnect_verdict(cut_off, now=20.0, stop_after=30.0).stop  # heard recently enough


def test_a_fed_workers_status_says_worker_and_names_the_feeds_leader() -> None:
    """``orion raft`` and ``/health`` (ok while a leader is known) read it on the node itself."""
    host = Host()
    views = WorkerStatusViews(ME, host.core, host.fsm, MemberMirror(), Leadership(0.0), lambda: 0.0)
    views.worker = host.worker
    assert not views.status().leader_id and views.status().role != "worker"  # not fed yet
    host.worker.step(0.0, [])
    host.answer(5, [], 0.1)
    status = views.status()
    assert (status.role, status.leader_id, status.node_id) == ("worker", "v1", ME)
