"""The FSM's task table: tasks that share all but their id, name, times and history share one
record (orion/fsm/task_table.py), and every read gives back an equal Task."""

from __future__ import annotations

import msgspec

from orion.fsm.commands import SubmitTask, UpsertNode, decode_command, encode_command
from orion.fsm.snapshot import SnapshotSource, encode_snapshot
from orion.fsm.state import ClusterState
from orion.fsm.task_table import PackedTask, TaskTable, unpack
from orion.model import NodeMeta, Task, TaskEvent


def _task(number: int, **fields: object) -> Task:
    at = 100.0 + number
    values: dict[str, object] = {
        "id": f"t{number}",
        "name": f"web-{number}",
        "image": "busybox",
        "node_selectors": {"zone": "a"},
        "command": ["sleep", "60"],
        "reason": "no node matches the node selectors",
        "created_at": at,
        "updated_at": at,
        "history": [TaskEvent(at=at, state="Pending", reason="submitted")],
    }
    values.update(fields)
    return Task(**values)  # type: ignore[arg-type]


def test_tasks_alike_share_one_shape_and_read_back_equal() -> None:
    table = TaskTable()
    tasks = [_task(i) for i in range(50)]
    for task in tasks:
        table.put(task)
    assert table.shapes() == 1
    rows = table.rows()
    assert type(rows[0]) is Task  # the first of its shape is stored whole
    assert all(type(row) is PackedTask for row in rows[1:])
    assert {id(row.shape) for row in rows[1:] if isinstance(row, PackedTask)} == {id(rows[1].shape)}  # type: ignore[union-attr]
    assert table.all() == tasks
    assert [table[task.id] for task in tasks] == tasks
    assert table.get("t7") == tasks[7] and table.get("absent") is None
    assert list(table) == [task.id for task in tasks] and len(table) == 50 and "t3" in table
    assert table.pop("t3") == tasks[3] and "t3" not in table


def test_a_packed_task_keeps_its_opening_history_line_as_its_reason() -> None:
    table = TaskTable()
    table.put(_task(0))
    table.put(_task(1))
    row = table.rows()[1]
    assert isinstance(row, PackedTask) and row.history == "submitted"
    assert unpack(row).history == [TaskEvent(at=101.0, state="Pending", reason="submitted")]


def test_other_histories_are_kept_as_they_are() -> None:
    table = TaskTable()
    table.put(_task(0))
    odd = [
        [TaskEvent(at=5.0, state="Pending", reason="submitted")],  # not at created_at
        [TaskEvent(at=102.0, state="Pending", node_id="n1", reason="submitted")],  # on a node
        [TaskEvent(at=103.0, state="Scheduled", reason="")],
        [TaskEvent(at=104.0, state="Pending", reason="submitted"), TaskEvent(at=104.0, state="Pending")],
        [TaskEvent(at=-0.0, state="Pending", reason="submitted")],  # -0.0 against created_at 0.0
    ]
    tasks = [_task(2 + n, history=history) for n, history in enumerate(odd)]
    tasks[-1] = msgspec.structs.replace(tasks[-1], created_at=0.0, updated_at=0.0)
    for task in tasks:
        table.put(task)
    for task in tasks:
        row = table.rows()[list(table).index(task.id)]
        assert isinstance(row, PackedTask) and row.history == task.history
        assert table[task.id] == task


def test_values_that_encode_differently_do_not_share_a_shape() -> None:
    table = TaskTable()
    variants = [
        _task(0, cpu=0.0),
        _task(1, cpu=-0.0),
        _task(2, memory=0),
        _task(3, node_selectors={"zone": "a", "disk": "ssd"}),
        _task(4, node_selectors={"disk": "ssd", "zone": "a"}),  # another order encodes otherwise
    ]
    for task in variants:
        table.put(task)
    assert table.shapes() == 4  # only cpu 0.0 (the default) and memory 0 (the default) are alike
    for task in variants:
        stored = table[task.id]
        assert stored == task
        assert msgspec.msgpack.encode(stored) == msgspec.msgpack.encode(task)


def test_a_full_shape_cache_starts_over_and_tasks_still_read_back() -> None:
    table = TaskTable(capacity=3)
    tasks = [_task(i, image=f"image-{i % 5}") for i in range(40)]
    for task in tasks:
        table.put(task)
    assert table.shapes() <= 3
    assert table.all() == tasks


def _applied_state(count: int) -> ClusterState:
    state = ClusterState()
    state.apply(1, encode_command(UpsertNode(at=0.0, meta=NodeMeta(id="n1"))))
    for i in range(count):
        task = Task(id=f"{i:032x}", name=f"job-{i}", image="busybox", node_selectors={"zone": "none"})
        state.apply(i + 2, encode_command(SubmitTask(at=10.0 + i, task=task, reason="no node matches")))
    return state


def test_snapshot_bytes_are_those_of_the_whole_records() -> None:
    state = _applied_state(30)
    source = state.snapshot_source()
    assert any(isinstance(row, PackedTask) for row in source.tasks)
    whole = SnapshotSource(applied_index=source.applied_index, tasks=state.tasks(), nodes=source.nodes)
    assert encode_snapshot(source) == encode_snapshot(whole)
    restored = ClusterState()
    restored.restore(encode_snapshot(source))
    assert restored.tasks() == state.tasks()
    assert restored.snapshot() == state.snapshot()


def test_a_submit_entry_leaves_default_fields_out_and_decodes_as_the_full_form() -> None:
    task = Task(id="a" * 32, name="job", image="busybox", command=["sleep", "1"], cpu=-0.0, exit_code=0)
    command = SubmitTask(at=1.5, task=task, reason="no node matches")
    entry = encode_command(command)
    full = msgspec.msgpack.encode(command)  # an entry written before defaults were left out
    assert len(entry) < len(full) / 2
    assert b"restart_times" not in entry and b"exit_code" in entry and b"cpu" in entry
    assert decode_command(entry) == decode_command(full) == command
    decoded = decode_command(entry)
    assert isinstance(decoded, SubmitTask) and type(decoded.task) is Task
    assert str(decoded.task.cpu) == "-0.0"


def test_task_states_are_read_without_building_records() -> None:
    state = _applied_state(5)
    assert list(state.task_states()) == [task.state for task in state.tasks()] == ["Pending"] * 5


def test_a_name_made_of_a_prefix_and_the_ids_head_is_not_stored() -> None:
    table = TaskTable()
    tasks = [_task(i, id=f"{i:08x}{'ab' * 12}", name=f"task-{i:08x}") for i in range(4)]
    tasks += [_task(i, id=f"{i:08x}{'cd' * 12}", name=f"loadgen-{i:08x}") for i in range(4, 8)]
    tasks.append(_task(8, id=f"{8:08x}{'ef' * 12}", name="task-ffffffff"))  # not its own id's head
    tasks.append(_task(9, id=f"{9:08x}{'ef' * 12}", name=f"task{9:08x}"))  # no "-" before the head
    for task in tasks:
        table.put(task)
    assert table.shapes() == 3  # no prefix, "task-", "loadgen-"
    rows = table.rows()
    names = [row.name if type(row) is PackedTask else "whole" for row in rows]
    assert names == ["whole", None, None, None, "whole", None, None, None, "whole", "task00000009"]
    assert table.all() == tasks
    state = _applied_state(0)
    whole = SnapshotSource(applied_index=0, tasks=tasks, nodes=state.snapshot_source().nodes)
    packed = SnapshotSource(applied_index=0, tasks=rows, nodes=whole.nodes)
    assert encode_snapshot(packed) == encode_snapshot(whole)


def test_derived_names_are_found_by_name_without_the_name_index() -> None:
    state = ClusterState()
    state.apply(1, encode_command(UpsertNode(at=0.0, meta=NodeMeta(id="n1"))))
    first = Task(id="1234abcd" + "0" * 24, name="task-1234abcd", image="busybox", node_selectors={"z": "x"})
    same_head = Task(
        id="1234abcd" + "1" * 24, name="task-1234abcd", image="busybox", node_selectors={"z": "x"}
    )
    explicit = Task(id="9" * 32, name="task-1234abcd", image="busybox", node_selectors={"z": "x"})
    other = Task(id="5678abcd" + "0" * 24, name="web-5678abcd", image="busybox", node_selectors={"z": "x"})
    for index, task in enumerate([first, explicit, same_head, other], start=2):
        state.apply(index, encode_command(SubmitTask(at=float(index), task=task, reason="no node matches")))
    assert state._by_name == {"task-1234abcd": explicit.id}  # only the name not made of its own id
    found = state.task_by_name("task-1234abcd")
    assert found is not None and found.id == same_head.id  # the latest of the three, all Pending
    found = state.task_by_name("web-5678abcd")
    assert found is not None and found.id == other.id
    assert state.task_by_name("web-5678abce") is None and state.task_by_name("nothing") is None
    state.delete_task(same_head.id)
    state.delete_task(first.id)
    found = state.task_by_name("task-1234abcd")
    assert found is not None and found.id == explicit.id
    state.delete_task(explicit.id)
    assert state._by_name == {} and state.task_by_name("task-1234abcd") is None
