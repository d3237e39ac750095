"""A snapshot is captured on the applying thread and encoded in another, while entries go on
being applied: the bytes must be those of the state at the captured index."""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Iterator

import pytest
from test_state import Driver, feed, random_commands, task

from orion.fsm.commands import (
    AssignTasks,
    CollectGarbage,
    Command,
    RemoveTask,
    ReportTaskState,
    StopTask,
    SubmitTask,
)
from orion.fsm.snapshot import decode_snapshot, encode_snapshot
from orion.fsm.state import ClusterState
from orion.model import TaskState

ENCODINGS_WHILE_APPLYING = 5
MAX_ENCODINGS = 2000  # bounds the loop should the threads never interleave


def churn(start_at: float) -> Iterator[Command]:
    """An endless stream that changes, stops, removes and collects tasks, old and new."""
    for step in itertools.count():
        at = start_at + step
        old = f"t{step % 150}"  # ids random_commands used: many are in the captured state
        new = f"new{step}"
        yield SubmitTask(at=at, task=task(new, env={"STEP": str(step)}))
        yield AssignTasks(at=at, assignments=[(old, "n1"), (new, "n2")])
        yield ReportTaskState(at=at, task_id=old, node_id="n1", state=TaskState.RUNNING)
        yield StopTask(at=at, task_id=old if step % 2 else new)
        yield RemoveTask(at=at, task_id=old, force=step % 3 == 0)
        yield CollectGarbage(at=at, before=at - 2, max_tasks=5)


@pytest.fixture
def fast_thread_switches() -> Iterator[None]:
    """Hand the interpreter lock over often, so both threads run within one encoding."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


@pytest.mark.usefixtures("fast_thread_switches")
def test_encoding_in_another_thread_gives_the_state_at_the_captured_index() -> None:
    commands = random_commands(7, 300)
    driver = feed(commands)
    source = driver.fsm.snapshot_source()
    expected = feed(commands).fsm  # a replica that stopped at the captured index
    expected_bytes = expected.snapshot()

    encodings: list[bytes] = []
    applied_during: list[int] = []  # entries applied while each encoding ran
    encoder_done = threading.Event()
    errors: list[BaseException] = []

    def encode_repeatedly() -> None:
        try:
            while len(encodings) < MAX_ENCODINGS and (
                len(encodings) < ENCODINGS_WHILE_APPLYING or not any(applied_during)
            ):
                index_before = driver.index
                encodings.append(encode_snapshot(source))
                applied_during.append(driver.index - index_before)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            encoder_done.set()

    encoder = threading.Thread(target=encode_repeatedly)
    # The applying thread runs until the encoder is done, so every encoding overlaps it.
    stream = churn(start_at=1000.0)
    encoder.start()
    while not encoder_done.is_set():
        driver(next(stream))
    encoder.join()

    assert not errors, errors
    assert sum(applied_during) > 0  # the state did change under the encoder
    assert driver.fsm.snapshot() != expected_bytes
    assert all(data == expected_bytes for data in encodings)
    restored = ClusterState()
    restored.restore(encodings[-1])
    assert restored.applied_index == source.applied_index == expected.applied_index
    assert restored.tasks() == expected.tasks() and restored.nodes() == expected.nodes()


@pytest.mark.parametrize("seed", range(3))
def test_snapshot_is_the_encoding_of_its_source(seed: int) -> None:
    fsm = feed(random_commands(seed, 300)).fsm
    data = fsm.snapshot()
    assert encode_snapshot(fsm.snapshot_source()) == data
    decoded = decode_snapshot(data)
    assert (decoded.applied_index, decoded.tasks, decoded.nodes) == (
        fsm.applied_index,
        fsm.tasks(),
        fsm.nodes(),
    )


def test_source_is_unchanged_by_later_entries() -> None:
    driver = Driver()
    driver(SubmitTask(at=1.0, task=task("t1")))
    source = driver.fsm.snapshot_source()
    driver(StopTask(at=2.0, task_id="t1"))
    driver(RemoveTask(at=3.0, task_id="t1"))
    driver(SubmitTask(at=4.0, task=task("t2")))
    assert [(t.id, t.state) for t in source.tasks] == [("t1", "Pending")]
    assert source.applied_index == 1


def test_decode_refuses_duplicate_ids() -> None:
    fsm = feed(random_commands(1, 100)).fsm
    source = fsm.snapshot_source()
    twice = type(source)(source.applied_index, source.tasks + source.tasks[:1], source.nodes)
    with pytest.raises(ValueError, match="a task id appears twice"):
        ClusterState().restore(encode_snapshot(twice))
