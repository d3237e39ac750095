"""orion/actors/raft_actor.py on SIGTERM: a leader hands leadership over before it exits.

``test_graceful_leader_shutdown_hands_over_and_leaves`` (tests/integration/test_cluster.py)
only waits for some other leader, which an election timeout after the leader vanished also
produces, so it passes with the hand-over removed. Here the evidence is the transfer itself,
read from the stopping leader's own log: before exiting it became a follower in the very next
term, the one its chosen successor won. A leader that just exits never learns of a successor
(it stays leader until its process ends; the others elect only after it is gone).
"""

from __future__ import annotations

import re

import pytest

from orion.testing.localcluster import wait_for

pytestmark = pytest.mark.cluster


def test_a_stopping_leader_steps_down_to_the_successor_it_chose(make_cluster):
    cluster = make_cluster(3)
    leader = wait_for(cluster.leader_index, 30, what="one agreed leader")
    old = cluster.node(leader)
    term = cluster.raft_status(leader).term
    log_start = old.log_path.stat().st_size
    assert cluster.stop_node(leader) == 0
    others = [n.index for n in cluster.nodes if n.index != leader]
    with cluster.client(*others, timeout=3.0, retries=5) as client:
        successor = wait_for(
            lambda: (r := client.raft()).leader_id not in ("", None, old.node_id) and r,
            30,
            what="a new leader",
        )
    shutdown_log = old.log_path.read_bytes()[log_start:].decode(errors="replace")
    handing = shutdown_log.find("handing leadership over")
    assert handing >= 0, shutdown_log
    # The successor's vote request (sent at once on TimeoutNow) makes the stopping leader a
    # follower of the next term before it exits; it may or may not hear the first heartbeat.
    stepped_down = re.findall(r"raft: role follower term (\d+) leader (\S+)", shutdown_log[handing:])
    assert stepped_down, f"the leader exited without seeing a successor:\n{shutdown_log}"
    assert {int(t) for t, _ in stepped_down} == {term + 1}, stepped_down
    assert {leader for _, leader in stepped_down} <= {"-", successor.leader_id}, stepped_down
    assert successor.term == term + 1  # no election round was lost on the way
