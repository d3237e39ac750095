"""The FSM's records as snapshot tables: one row per task, node or service, scalar fields as DuckDB
columns, nested fields (dicts, lists, history) as JSON in VARCHAR columns, so an operator can
query a stopped node with SQL (``select id, state, node_id from snap_tasks``)."""

from __future__ import annotations

from typing import Any

import msgspec

from orion.model import NodeMeta, Task
from orion.raft.types import Table
from orion.services.spec import Service
from orion.volumes.spec import Volume

RowValue = int | float | str | bytes | bool | None


class NodeDrain(msgspec.Struct, frozen=True):
    """``orion node drain``: since when, and when whatever is left on the node is stopped
    (None: no deadline; services move at their update policy's pace until done)."""

    started_at: float
    deadline: float | None = None


class NodeRecord(msgspec.Struct, frozen=True):
    """A cluster member as the replicated state knows it."""

    id: str
    status: str  # a NodeStatus
    meta: NodeMeta
    updated_at: float = 0.0
    eligible: bool = True  # False: no new placements (``orion node eligibility --disable``, a drain)
    drain: NodeDrain | None = None
    subnet: str = ""  # its /24 of the cluster CIDR for the overlay (orion/network/ipam.py); "" none

    @property
    def schedulable(self) -> bool:
        """Takes new placements: eligible and not draining (liveness is the scheduler's own check)."""
        return self.eligible and self.drain is None


_json_encode = msgspec.json.encode

# (column, DuckDB type, is JSON-encoded)
TASK_COLUMNS: list[tuple[str, str, bool]] = [
    ("id", "VARCHAR", False),
    ("name", "VARCHAR", False),
    ("image", "VARCHAR", False),
    ("state", "VARCHAR", False),
    ("memory", "BIGINT", False),
    ("cpu", "DOUBLE", False),
    ("disk", "BIGINT", False),
    ("node_selectors", "VARCHAR", True),
    ("port_bindings", "VARCHAR", True),
    ("command", "VARCHAR", True),
    ("env", "VARCHAR", True),
    ("node_id", "VARCHAR", False),
    ("reason", "VARCHAR", False),
    ("created_at", "DOUBLE", False),
    ("updated_at", "DOUBLE", False),
    ("desired", "VARCHAR", False),
    ("restarts", "BIGINT", False),
    ("exit_code", "BIGINT", False),
    ("history", "VARCHAR", True),
    ("host_ports", "VARCHAR", True),
    ("host_ip", "VARCHAR", False),
    ("port_holds", "VARCHAR", True),
    ("restart", "VARCHAR", True),
    ("restart_times", "VARCHAR", True),
    ("service", "VARCHAR", False),
    ("slot", "BIGINT", False),
    ("version", "BIGINT", False),
    ("health_check", "VARCHAR", True),
    ("health", "VARCHAR", False),
    ("drain_at", "DOUBLE", False),
    ("stop_grace", "DOUBLE", False),
    ("volumes", "VARCHAR", True),
    ("overlay_ip", "VARCHAR", False),
]

# The spec and update status stay whole JSON documents: ``select name, version,
# json_extract(spec, '$.replicas') from snap_services`` still works.
SERVICE_COLUMNS: list[tuple[str, str, bool]] = [
    ("name", "VARCHAR", False),
    ("version", "BIGINT", False),
    ("template_version", "BIGINT", False),
    ("spec", "VARCHAR", True),
    ("previous", "VARCHAR", True),
    ("update", "VARCHAR", True),
    ("created_at", "DOUBLE", False),
    ("updated_at", "DOUBLE", False),
]

VOLUME_COLUMNS: list[tuple[str, str, bool]] = [
    ("name", "VARCHAR", False),
    ("uid", "VARCHAR", False),
    ("spec", "VARCHAR", True),
    ("node_id", "VARCHAR", False),
    ("state", "VARCHAR", False),
    ("reason", "VARCHAR", False),
    ("created_at", "DOUBLE", False),
    ("updated_at", "DOUBLE", False),
]

NODE_COLUMNS: list[tuple[str, str, bool]] = [
    ("id", "VARCHAR", False),
    ("status", "VARCHAR", False),
    ("updated_at", "DOUBLE", False),
    ("role", "VARCHAR", False),
    ("address", "VARCHAR", False),
    ("raft_port", "BIGINT", False),
    ("gossip_port", "BIGINT", False),
    ("api_port", "BIGINT", False),
    ("http_port", "BIGINT", False),
    ("memory_total", "BIGINT", False),
    ("memory_used", "BIGINT", False),
    ("cpu_total", "DOUBLE", False),
    ("disk_total", "BIGINT", False),
    ("tags", "VARCHAR", True),
    ("version", "BIGINT", False),
    ("host_ip", "VARCHAR", False),
    ("port_space", "VARCHAR", False),
    ("cluster_id", "VARCHAR", False),
    ("raft_incarnation", "VARCHAR", False),
]
_META_FIELDS = [c for c, _, _ in NODE_COLUMNS[3:]]
# The record's own fields after the meta's (older snapshots lack them: eligible, no drain).
NODE_COLUMNS += [("eligible", "BOOLEAN", False), ("drain", "VARCHAR", True), ("subnet", "VARCHAR", False)]


def _scalar(value: Any, duck_type: str) -> RowValue:
    """The exact Python type the DuckDB column gives back, so the snapshot bytes round-trip."""
    if value is None:
        return None
    if duck_type == "DOUBLE":
        return float(value)
    if duck_type == "BIGINT":
        return int(value)
    if duck_type == "BOOLEAN":
        return bool(value)
    return str(value)


def _row(values: dict[str, Any], columns: list[tuple[str, str, bool]]) -> list[RowValue]:
    return [
        _json_encode(values[name]).decode() if is_json else _scalar(values[name], duck_type)
        for name, duck_type, is_json in columns
    ]


def task_row(task: Task) -> list[RowValue]:
    return _row(msgspec.structs.asdict(task), TASK_COLUMNS)


def service_row(service: Service) -> list[RowValue]:
    return _row(msgspec.structs.asdict(service), SERVICE_COLUMNS)


def services_from_table(table: Table) -> list[Service]:
    return [msgspec.convert(record, Service) for record in _decoded(table, SERVICE_COLUMNS)]


def volume_row(volume: Volume) -> list[RowValue]:
    return _row(msgspec.structs.asdict(volume), VOLUME_COLUMNS)


def volumes_from_table(table: Table) -> list[Volume]:
    return [msgspec.convert(record, Volume) for record in _decoded(table, VOLUME_COLUMNS)]


def node_row(node: NodeRecord) -> list[RowValue]:
    values = msgspec.structs.asdict(node.meta)
    values.update(
        id=node.id,
        status=node.status,
        updated_at=node.updated_at,
        eligible=node.eligible,
        drain=msgspec.to_builtins(node.drain),
        subnet=node.subnet,
    )
    return _row(values, NODE_COLUMNS)


def make_table(columns: list[tuple[str, str, bool]], rows: list[list[RowValue]]) -> Table:
    return Table(columns=[c for c, _, _ in columns], types=[t for _, t, _ in columns], rows=rows)


def _decoded(table: Table, columns: list[tuple[str, str, bool]]) -> list[dict[str, Any]]:
    expected = [c for c, _, _ in columns]
    # A snapshot written before later columns were added lacks them: they take their defaults.
    if not table.columns or table.columns != expected[: len(table.columns)]:
        raise ValueError(f"unexpected snapshot columns {table.columns}")
    json_columns = {name for name, _, is_json in columns if is_json and name in table.columns}
    records = []
    for row in table.rows:
        record = dict(zip(table.columns, row, strict=True))
        for name in json_columns:
            record[name] = msgspec.json.decode(record[name])
        records.append(record)
    return records


def tasks_from_table(table: Table) -> list[Task]:
    return [msgspec.convert(record, Task) for record in _decoded(table, TASK_COLUMNS)]


def nodes_from_table(table: Table) -> list[NodeRecord]:
    nodes = []
    for record in _decoded(table, NODE_COLUMNS):
        known = {k: record[k] for k in _META_FIELDS if k in record}
        meta = msgspec.convert(known | {"id": record["id"]}, NodeMeta)
        drain = record.get("drain")
        nodes.append(
            NodeRecord(
                id=record["id"],
                status=record["status"],
                meta=meta,
                updated_at=record["updated_at"],
                eligible=bool(record.get("eligible", True)),
                drain=msgspec.convert(drain, NodeDrain) if drain is not None else None,
                subnet=str(record.get("subnet") or ""),
            )
        )
    return nodes
