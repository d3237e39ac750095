"""tools/bench/restart_replay.py in its short form: a real 3-node cluster filled with a few
hundred tasks, a follower killed, its store read while it is down, and its restart timed; the
figures are not checked, only that they are there and agree with each other."""

from __future__ import annotations

import pytest

from tools.bench import restart_replay


@pytest.mark.cluster
def test_a_killed_follower_is_read_while_down_and_timed_back() -> None:
    run = restart_replay.one_run(None, 300)
    assert run["fill"]["acked"] >= 300
    # 300 submits are far below a snapshot: the whole log (with the bootstrap's entries) is
    # replayed, from no snapshot.
    assert run["snapshot_index"] == 0 and run["snapshots_logged"] == 0
    assert run["entries_after_snapshot"] >= 300
    assert run["serving_s"] > 0
