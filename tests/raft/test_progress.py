"""Progress, the leader's view of one follower: its state changes, the in-flight window by
count and bytes, and what an acknowledgement moves."""

from __future__ import annotations

from orion.raft.progress import Progress, ProgressState


def _fields(pr: Progress) -> dict[str, object]:
    return {
        name: getattr(pr, name) for name in Progress.__slots__ if name not in ("inflight", "inflight_sizes")
    }


def test_a_new_progress_probes_from_the_given_index_knowing_nothing() -> None:
    pr = Progress(7)
    assert _fields(pr) == {
        "inflight_bytes": 0,
        "last_heard": 0,
        "match": 0,
        "next": 7,
        "paused": False,
        "read_ack": 0,
        "recent_active": False,
        "snapshot_index": 0,
        "snapshot_wait": 0,
        "state": ProgressState.PROBE,
    }
    assert list(pr.inflight) == [] and list(pr.inflight_sizes) == []


def _replicating(match: int) -> Progress:
    pr = Progress(1)
    if match:
        assert pr.update(match)
    pr.become_replicate()
    return pr


def test_replicate_sends_from_just_after_the_match_with_an_empty_window() -> None:
    pr = _replicating(5)
    pr.sent(8, 300)
    pr.paused = True
    pr.become_replicate()
    assert (pr.state, pr.next, pr.paused, pr.inflight_bytes, list(pr.inflight)) == (
        ProgressState.REPLICATE,
        6,
        False,
        0,
        [],
    )


def test_probe_restarts_after_the_match_or_after_a_snapshot_sent() -> None:
    pr = _replicating(5)
    pr.next = 9
    pr.sent(8, 100)
    pr.paused = True
    pr.become_probe()
    assert (pr.state, pr.next, pr.paused, pr.inflight_bytes, list(pr.inflight)) == (
        ProgressState.PROBE,
        6,
        False,
        0,
        [],
    )
    pr.become_snapshot(20)
    pr.snapshot_wait = 3
    assert (pr.state, pr.snapshot_index) == (ProgressState.SNAPSHOT, 20)
    pr.become_probe()  # the snapshot's answer was lost: maybe it was installed
    assert (pr.state, pr.next) == (ProgressState.PROBE, 21)
    pr.become_snapshot(3)  # a snapshot older than the match: probe after the match
    pr.become_probe()
    assert pr.next == 6


def test_snapshot_state_starts_its_wait_and_empties_the_window() -> None:
    pr = _replicating(2)
    pr.sent(4, 50)
    pr.snapshot_wait = 9
    pr.become_snapshot(30)
    assert (pr.snapshot_wait, pr.inflight_bytes, list(pr.inflight)) == (0, 0, [])


def test_the_window_is_full_by_count_or_by_bytes() -> None:
    pr = _replicating(0)
    assert not pr.inflight_full(2, 100)
    pr.sent(1, 60)
    assert not pr.inflight_full(2, 100) and pr.inflight_full(1, 0)
    pr.sent(2, 40)
    assert pr.inflight_full(2, 0) and pr.inflight_full(3, 100) and not pr.inflight_full(3, 101)
    assert not pr.inflight_full(3, 0)  # 0: no byte limit
    pr.free_first()
    assert (list(pr.inflight), list(pr.inflight_sizes), pr.inflight_bytes) == ([2], [40], 40)
    pr.free_first()
    pr.free_first()  # nothing left: harmless
    assert (list(pr.inflight), pr.inflight_bytes) == ([], 0)


def test_an_acknowledgement_moves_the_match_and_frees_what_it_covers() -> None:
    pr = _replicating(0)
    pr.next = 10
    for last, size in ((3, 30), (6, 60), (9, 90)):
        pr.sent(last, size)
    pr.paused = True
    assert pr.update(6)
    assert (pr.match, pr.next, pr.paused) == (6, 10, False)
    assert (list(pr.inflight), list(pr.inflight_sizes), pr.inflight_bytes) == ([9], [90], 90)
    assert not pr.update(6) and not pr.update(4)  # old news changes nothing
    assert pr.match == 6
    assert pr.update(12)  # beyond what was sent (e.g. after a leader change): next follows
    assert (pr.match, pr.next, pr.inflight_bytes, list(pr.inflight)) == (12, 13, 0, [])


def test_an_acknowledgement_at_next_moves_next_past_it() -> None:
    pr = Progress(5)
    assert pr.update(5)
    assert pr.next == 6
    pr2 = Progress(5)
    assert pr2.update(4)
    assert pr2.next == 5
