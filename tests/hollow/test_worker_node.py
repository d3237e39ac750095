"""A hollow node outside the Raft configuration is a worker (issue 20): it watches a member
through the feed, runs the tasks the answers give it on its fake runtime, and sends its reports
to the leader the feed names. One HollowNode, frames in and out by hand, time as numbers."""

from __future__ import annotations

from pathlib import Path

import msgspec

from orion.actors.gossip_actor import gossip_config_from
from orion.cluster.feed_protocol import FeedAnswer, FeedRedirect, FeedWatch, decode_feed, encode_feed
from orion.cluster.forwarding import (
    ForwardAnswer,
    ForwardPropose,
    decode_forward,
    encode_forward,
    encode_result,
)
from orion.config import parse_config
from orion.fsm.commands import ReportTaskStates, decode_command
from orion.fsm.results import ReportResults
from orion.hollow.node import IDLE_WAKE_S, HollowNode, HollowStats
from orion.hollow.pool import hollow_meta
from orion.model import Task, TaskState
from orion.transport.frames import Channel

MEMBER = "127.0.0.1:7000"


class Wire:
    def __init__(self) -> None:
        self.frames: list[tuple[str, Channel, bytes]] = []

    def send(self, address: str, channel: Channel, payload: bytes) -> None:
        self.frames.append((address, channel, payload))

    def take(self, channel: Channel) -> list[tuple[str, bytes]]:
        taken = [(a, p) for a, c, p in self.frames if c == channel]
        self.frames = [f for f in self.frames if f[1] != channel]
        return taken


def _worker(tmp_path: Path) -> tuple[HollowNode, Wire]:
    config = parse_config(f'[node]\nid = "hollow"\ndata_dir = "{tmp_path}"\n')
    meta = hollow_meta(config, "h1", "127.1.0.1", 7600)
    wire = Wire()
    node = HollowNode(config, meta, gossip_config_from(config), wire.send, HollowStats(), 0.0, seed=1)
    node.feed_client.set_candidates([MEMBER])
    return node, wire


def _answer(index: int, tasks: list[Task]) -> bytes:
    return encode_feed(
        FeedAnswer(
            node_id="h1",
            index=index,
            changed=True,
            tasks=tasks,
            cluster_id="c1",
            leader_id="v1",
            leader_address=MEMBER,
            servers=[MEMBER],
        )
    )


def test_a_worker_runs_the_tasks_the_feed_gives_it_and_reports_to_the_feeds_leader(tmp_path: Path) -> None:
    node, wire = _worker(tmp_path)
    node.step(0.0)
    [(address, payload)] = wire.take(Channel.FEED)
    watch = decode_feed(payload)
    assert address == MEMBER and isinstance(watch, FeedWatch) and watch.since == 0
    assert not node.worker and node.cluster_id == ""

    task = Task(id="t1", name="web", image="busybox", state=TaskState.SCHEDULED, node_id="h1")
    node.on_frame(Channel.FEED, _answer(12, [task]), 0.1)
    node.step(0.3)
    assert node.worker and node.cluster_id == "c1"
    assert [(c.task_id, c.running) for c in node.runtime.list_managed()] == [("t1", True)]
    [(address, payload)] = wire.take(Channel.FORWARD)
    propose = decode_forward(payload)
    assert address == MEMBER and isinstance(propose, ForwardPropose)
    reports = decode_command(propose.data)
    assert isinstance(reports, ReportTaskStates) and reports.node_id == "h1"
    assert [(r.task_id, r.state) for r in reports.reports] == [("t1", TaskState.RUNNING)]
    kind, result = encode_result(ReportResults())
    node.on_frame(
        Channel.FORWARD,
        encode_forward(ForwardAnswer(propose.req_id, index=13, result=result, result_kind=kind)),
        0.4,
    )
    assert (node.stats.reports_ok, node.stats.entries_sent) == (1, 1)
    # The next watch resumes at the answer's index.
    assert [decode_feed(p).since for _, p in wire.take(Channel.FEED)] == [12]  # type: ignore[union-attr]

    # The task is stopped: the next answer says so, and its container goes.
    node.on_frame(Channel.FEED, _answer(15, [msgspec.structs.replace(task, desired="stop")]), 1.0)
    node.step(1.3)
    assert [c.running for c in node.runtime.list_managed()] in ([], [False])


def test_a_worker_redirects_watches_it_cannot_serve(tmp_path: Path) -> None:
    node, wire = _worker(tmp_path)
    node.on_frame(Channel.FEED, encode_feed(FeedWatch("h2", "127.1.0.2:7600", 0, 10_000)), 0.0)
    [(_, payload)] = [(a, p) for a, p in wire.take(Channel.FEED) if a == "127.1.0.2:7600"]
    assert isinstance(decode_feed(payload), FeedRedirect)


def test_an_idle_worker_steps_its_raft_side_once_a_second_and_every_tick_while_a_report_waits(
    tmp_path: Path,
) -> None:
    # The Raft actor's rule (a real worker's core has nothing due: it sleeps IDLE_WAKE_S),
    # not a 50 ms beat: a thousand hollow workers stepped 20,000 times a second for nothing.
    node, wire = _worker(tmp_path)
    node.on_frame(Channel.FEED, _answer(5, []), 0.0)
    node.step(0.0)
    now, gaps = 0.0, []
    for _ in range(10):
        gaps.append(node.next_raft_tick - now)
        now = node.next_raft_tick
        node.step(now)
    assert not node.requests.waiting and min(gaps) >= 0.9 * IDLE_WAKE_S
    task = Task(id="t1", name="web", image="busybox", state=TaskState.SCHEDULED, node_id="h1")
    node.on_frame(Channel.FEED, _answer(12, [task]), now)
    node.step(now)  # the round starts it and forwards the report to the feed's leader
    assert node.requests.waiting and wire.take(Channel.FORWARD)
    assert node.next_raft_tick - now <= node.config.tick + 1e-9
