"""orion/fsm/pending_queue.py: the Pending ids as a list with stale entries counted, read back
exactly as the insertion-ordered dict it replaces."""

from __future__ import annotations

import itertools
import random

from orion.fsm.pending_queue import REWRITE_MIN, PendingQueue


def test_reads_back_as_an_insertion_ordered_dict_through_any_changes() -> None:
    rng = random.Random(16)
    queue, reference = PendingQueue(), dict[str, None]()
    ids = [f"t{n}" for n in range(300)]
    versions = [queue.version]
    for step in range(20_000):
        task_id = rng.choice(ids)
        if task_id in reference:
            queue.discard(task_id)
            del reference[task_id]
        else:
            queue.add(task_id)
            reference[task_id] = None
        versions.append(queue.version)
        if step % 97 == 0:
            assert list(queue) == list(reference) and len(queue) == len(reference)
    assert list(queue) == list(reference) and len(queue) == len(reference)
    assert all(a < b for a, b in itertools.pairwise(versions))  # every change is seen


def test_stale_entries_are_dropped_once_as_many_as_the_live_ones() -> None:
    queue = PendingQueue()
    for n in range(2 * REWRITE_MIN):
        queue.add(f"t{n}")
    for n in range(REWRITE_MIN - 1):
        queue.discard(f"t{n}")
    assert len(queue._order) == 2 * REWRITE_MIN  # 63 stale of 128: kept
    queue.add("t0")  # back: at the end, its stale occurrence skipped
    assert list(queue)[-1] == "t0" and list(queue).count("t0") == 1
    for n in range(REWRITE_MIN - 1, 2 * REWRITE_MIN):
        queue.discard(f"t{n}")
    # Rewritten when 65 were stale beside 64 live (t65..t127 and t0); 63 stale since.
    assert len(queue._order) == 64 and queue._order[-1] == "t0"
    assert list(queue) == ["t0"] and len(queue) == 1


def test_an_iterator_taken_before_a_rewrite_keeps_its_list() -> None:
    queue = PendingQueue()
    for n in range(REWRITE_MIN * 2):
        queue.add(f"t{n}")
    before = iter(queue)
    version = queue.version
    for n in range(REWRITE_MIN * 2):
        queue.discard(f"t{n}")
    assert queue.version != version and list(queue) == []
    assert next(before) == "t0"  # the reader sees the version changed and starts again
    queue.add("t5")
    queue.clear()
    assert list(queue) == [] and len(queue) == 0
