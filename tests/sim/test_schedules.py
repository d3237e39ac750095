"""Targeted schedules: an adversary holds every message and delivers only the ones it chooses,
and only one node's clock runs at a time, to reach on purpose the interleavings that break a
Raft core missing one safety rule. Each schedule passes on the real core and fails (with an
invariant or linearizability violation) on a core with that rule removed; tools/mutation.py
checks the latter against the three named mutants in its catalogue:

- ``stale-vote``: a vote request from an older term handled instead of dropped;
- ``figure-8``: an entry of an earlier term committed by counting its replicas;
- ``early-read``: ReadIndex served before the leader committed an entry of its own term.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from orion.raft.core import CANDIDATE, LEADER, RaftConfig
from orion.raft.messages import (
    AppendEntries,
    Heartbeat,
    HeartbeatResponse,
    Message,
    RequestVote,
    VoteResponse,
)
from orion.sim.raft_cluster import SimCluster

# Direct elections and no leader lease: every vote request is judged on its own.
CONFIG = RaftConfig(election_ticks=10, heartbeat_ticks=2, pre_vote=False, check_quorum=False)


def _adversary(n: int, config: RaftConfig = CONFIG) -> SimCluster:
    c = SimCluster(n, seed=11, config=config)
    c.net.hold = lambda _msg: True
    return c


def _deliver(c: SimCluster, match: Callable[[Message], bool], max_rounds: int = 100) -> int:
    """Deliver held messages that match, and what their answers provoke, until none match."""
    total = 0
    for _ in range(max_rounds):
        released = c.net.release(c.now, match)
        if not released:
            return total
        total += released
        c.settle()
    raise AssertionError("the exchange did not quiesce")


def _between(*nodes: str) -> Callable[[Message], bool]:
    group = set(nodes)
    return lambda m: m.src in group and m.dst in group


def _votes(candidate: str, *voters: str) -> Callable[[Message], bool]:
    """The candidate's vote requests to ``voters`` and their answers."""
    group = set(voters)
    return lambda m: (
        (isinstance(m, RequestVote) and m.src == candidate and m.dst in group)
        or (isinstance(m, VoteResponse) and m.dst == candidate and m.src in group)
    )


def _campaign(c: SimCluster, node: str, term: int) -> None:
    """Run only ``node``'s clock until it is a candidate in ``term``."""
    core = c.core(node)
    for _ in range(20 * c.config.election_ticks):
        if core.role == CANDIDATE and core.term == term:
            return
        c.tick_node(node)
    raise AssertionError(f"{node} did not become a candidate in term {term} (term {core.term})")


def _heal(c: SimCluster) -> None:
    """Let everything through, stale messages first, and require progress."""
    c.net.hold = None
    c.net.release(c.now)
    c.one(b"after=heal", len(c.ids))


def test_stale_vote_request_from_an_older_term_is_dropped() -> None:
    """A vote request delayed from term 3 reaches a voter already in term 4 that has not voted
    in term 4. Handling it would grant the vote: the voter would then have voted in term 3
    twice, and the late candidate would become a second leader of term 3."""
    c = _adversary(5)
    n1, n2, n3, n4, n5 = c.ids
    # Term 2: n4 leads, with its no-op on n1, n2, n3 (n5 hears nothing).
    _campaign(c, n4, 2)
    _deliver(c, _votes(n4, n1, n2, n3))
    assert c.core(n4).role == LEADER
    _deliver(c, lambda m: m.src != n5 and m.dst != n5)
    assert c.core(n3).last_term == 2
    # Term 3: n1 and n2 both campaign; n1 wins with n3 and n4, n2 has only n5 so far. n2's
    # request to n3 stays on the wire.
    _campaign(c, n1, 3)
    _campaign(c, n2, 3)
    _deliver(c, _votes(n1, n3, n4))
    assert c.core(n1).role == LEADER and c.core(n1).term == 3
    _deliver(c, _votes(n2, n5))
    assert c.core(n2).role == CANDIDATE and c.core(n2).term == 3
    # Term 4: n5 (log behind) asks n3, which moves to term 4 and refuses: no vote in term 4.
    _campaign(c, n5, 4)
    _deliver(c, lambda m: isinstance(m, RequestVote) and m.src == n5 and m.dst == n3)
    voter = c.core(n3)
    assert (voter.term, voter.vote) == (4, "")
    # The request from term 3 finally arrives.
    _deliver(c, _votes(n2, n3))
    assert (voter.term, voter.vote) == (4, ""), "a vote request from an older term changed the vote"
    assert c.core(n2).role == CANDIDATE
    _heal(c)


def test_figure_8_entry_of_an_earlier_term_is_not_committed_by_counting_replicas() -> None:
    """The Raft paper's Figure 8 with the no-op a new leader appends. n1 (term 4) holds x=fig8
    from its term 2 on a majority; committing it then would let n5 (term 5, whose log ends in
    term 3) win an election and overwrite a committed entry."""
    c = _adversary(5, msgspec.structs.replace(CONFIG, max_append_entries=2))
    n1, n2, n3, n4, n5 = c.ids
    # (a) Term 2: n1 leads and replicates its no-op and x=fig8 (indexes 2, 3) to n2 only.
    _campaign(c, n1, 2)
    _deliver(c, _votes(n1, n2, n3))
    index = c.core(n1).propose(b"x=fig8")
    c.settle()
    assert index == 3
    _deliver(c, _between(n1, n2))
    assert c.core(n2).last_index == 3 and c.core(n1).commit_index == 1
    c.crash(n1)
    # (b) Term 3: n5 leads with n3 and n4; its no-op (index 2, term 3) goes nowhere.
    _campaign(c, n5, 3)
    _deliver(c, _votes(n5, n3, n4))
    assert c.core(n5).role == LEADER and c.core(n5).last_term == 3
    c.crash(n5)
    # (c) Term 4: n1 is back and leads with n2 and n3; it brings n3 up to index 3 (term 2)
    # but no further, so its own no-op (index 4) is on n1 and n2 only.
    c.start(n1)
    _campaign(c, n1, 4)
    _deliver(c, _votes(n1, n2, n3))
    assert c.core(n1).role == LEADER
    _deliver(c, _between(n1, n2))

    def up_to_index_3(m: Message) -> bool:
        if m.src == n3 and m.dst == n1:
            return True
        if m.src != n1 or m.dst != n3 or m.term != 4:
            return False
        if isinstance(m, AppendEntries) and any(e.index >= 4 for e in m.entries):
            return c.core(n3).entry_term(m.prev_index) != m.prev_term  # n3 refuses it: let it learn
        return True

    _deliver(c, up_to_index_3)
    assert c.core(n3).entry_term(3) == 2 and c.core(n3).last_index == 3
    assert c.core(n1).commit_index < 3, "an entry of term 2 was committed by counting replicas in term 4"
    c.crash(n1)
    # (d) Term 5: n5 is back and wins with n3 and n4 (its last term, 3, beats their 2 and 1),
    # then overwrites index 3 everywhere it can: legal, because x=fig8 was never committed.
    c.start(n5)
    _campaign(c, n5, 5)
    _deliver(c, _votes(n5, n3, n4))
    assert c.core(n5).role == LEADER
    _deliver(c, _between(n5, n2, n3, n4))
    c.start(n1)
    _heal(c)
    assert c.n_committed(3)[1] != b"x=fig8"


def test_read_index_waits_for_an_entry_of_the_leaders_term() -> None:
    """x=1 is committed and acknowledged by n1 (term 2), but n2 has not heard the new commit
    index when it becomes leader of term 3. A ReadIndex served at n2's commit index before its
    own no-op commits would miss x=1."""
    c = _adversary(3)
    n1, n2, n3 = c.ids
    _campaign(c, n1, 2)
    _deliver(c, _votes(n1, n2, n3))
    _deliver(c, lambda _m: True)
    assert all(c.core(i).commit_index == 2 for i in c.ids)
    index = c.core(n1).propose(b"x=1")
    c.settle()
    _deliver(c, lambda m: isinstance(m, AppendEntries) and m.dst == n2 and m.entries)
    _deliver(c, lambda m: m.src == n2 and m.dst == n1)
    assert c.core(n1).commit_index == index and c.nodes[n1].fsm.read(b"x") == b"1"  # acknowledged
    assert c.core(n2).commit_index < index
    c.crash(n1)
    _campaign(c, n2, 3)
    _deliver(c, _votes(n2, n3))
    assert c.core(n2).role == LEADER
    read = c.read(n2, b"x")
    # Only heartbeats get through: enough to confirm leadership, not to commit the no-op.
    _deliver(c, lambda m: isinstance(m, Heartbeat | HeartbeatResponse))
    assert c.history.pending == 1, "the read was served before the leader committed in its term"
    _deliver(c, _between(n2, n3))
    assert [(r.read_id, r.value) for r in c.history.completed] == [(read, b"1")]
    c.start(n1)
    _heal(c)


def test_read_index_is_not_confirmed_by_acknowledgements_from_before_it() -> None:
    """Heartbeat acknowledgements generated before a read was invoked prove nothing about the
    leadership after it: the read needs a round of its own."""
    c = _adversary(3)
    n1, n2, n3 = c.ids
    _campaign(c, n1, 2)
    _deliver(c, _votes(n1, n2, n3))
    _deliver(c, lambda _m: True)
    # Heartbeats until some ask for an answer (a leader that heard from its followers just now
    # asks for none); the acknowledgements stay on the wire.
    while not any(isinstance(env.body, HeartbeatResponse) for env in c.net.held):
        c.tick_node(n1)
        _deliver(c, lambda m: isinstance(m, Heartbeat))
    older = {id(env.body) for env in c.net.held if isinstance(env.body, HeartbeatResponse)}
    assert older
    read = c.read(n1, b"x")
    c.net.release(c.now, lambda m: id(m) in older)
    c.settle()
    assert read not in c.nodes[n1].reads, "served on acknowledgements older than the read"
    _deliver(c, lambda _m: True)  # the read's own round
    assert read in c.nodes[n1].reads and c.history.completed[-1].read_id == read


def test_a_heartbeat_round_confirms_every_read_pending_before_it() -> None:
    """Two reads whose own rounds were lost: the next periodic heartbeat carries the newest
    read's sequence, so one round serves both."""
    c = _adversary(3)
    n1, n2, n3 = c.ids
    _campaign(c, n1, 2)
    _deliver(c, _votes(n1, n2, n3))
    _deliver(c, lambda _m: True)
    first = c.read(n1, b"x")
    c.settle()
    second = c.read(n1, b"y")
    c.settle()
    assert sum(isinstance(env.body, Heartbeat) for env in c.net.held) == 4
    c.net.held = []  # both reads' own heartbeat rounds are lost
    while not c.net.held:
        c.tick_node(n1)
    _deliver(c, lambda _m: True)
    assert first in c.nodes[n1].reads and second in c.nodes[n1].reads


def test_reads_of_a_deposed_leader_fail_once_and_are_never_served_later() -> None:
    """A read waiting for its heartbeat round and one waiting for the leader's first commit both
    fail when their leader is deposed; when that node leads again, neither comes back (the
    simulator fails any read answered twice)."""
    c = _adversary(3)
    n1, n2, n3 = c.ids
    _campaign(c, n1, 2)
    _deliver(c, _votes(n1, n2, n3))
    _deliver(c, lambda _m: True)
    waiting_round = c.read(n1, b"x")
    c.settle()
    c.net.held = []  # its round is lost
    _campaign(c, n2, 3)
    _deliver(c, _votes(n2, n1, n3))
    assert c.core(n2).role == LEADER and c.core(n1).role != LEADER
    assert waiting_round in c.nodes[n1].failed_reads
    c.net.held = []  # n2's no-op goes nowhere: n2 has not committed in its term
    waiting_commit = c.read(n2, b"x")
    _campaign(c, n1, 4)
    _deliver(c, _votes(n1, n2, n3))
    assert c.core(n1).role == LEADER
    assert waiting_commit in c.nodes[n2].failed_reads
    _deliver(c, lambda _m: True)
    for _ in range(3 * c.config.heartbeat_ticks):
        c.tick_node(n1)
        _deliver(c, lambda _m: True)
    _campaign(c, n2, 5)
    _deliver(c, lambda _m: True)
    assert c.core(n2).role == LEADER
    for _ in range(3 * c.config.heartbeat_ticks):
        c.tick_node(n2)
        _deliver(c, lambda _m: True)
    assert waiting_round not in c.nodes[n1].reads and waiting_commit not in c.nodes[n2].reads
