"""What the clients did and what the nemesis did, with wall-clock start and end times.

An operation's outcome is one of three: ``ok`` (the cluster acknowledged it), ``error``
(the cluster definitely refused it: nothing was or will be applied) and ``unknown`` (a
timeout or silence: it may or may not have been applied). The checker relies on this
distinction, so the mapping from client errors to outcomes lives here, in one place.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

from orion.client import InvalidRequest, NoQuorum, NotFound, OrionError


class Outcome(StrEnum):
    OK = "ok"
    ERROR = "error"
    UNKNOWN = "unknown"


class OpKind(StrEnum):
    SUBMIT = "submit"
    SUBMIT_INVALID = "submit_invalid"  # a request the server must refuse on validation
    STOP = "stop"
    READ = "read"
    # Service operations (orion/nemesis/service_load.py): ``service`` names the service, ``rev``
    # the template revision a create or update asked for, ``replicas`` the count asked for.
    SERVICE_CREATE = "service_create"
    SERVICE_UPDATE = "service_update"
    SERVICE_SCALE = "service_scale"
    SERVICE_ROLLBACK = "service_rollback"


SERVICE_KINDS = frozenset(
    {OpKind.SERVICE_CREATE, OpKind.SERVICE_UPDATE, OpKind.SERVICE_SCALE, OpKind.SERVICE_ROLLBACK}
)


@dataclass
class Op:
    client: int
    kind: OpKind
    task_id: str = ""
    start: float = 0.0
    end: float = 0.0
    outcome: Outcome = Outcome.UNKNOWN
    code: str = ""  # the error code (no_quorum, invalid, not_found, timeout, unavailable, ...)
    detail: str = ""
    seen: tuple[str, ...] = ()  # reads: the task ids in the answer
    service: str = ""
    rev: str = ""
    replicas: int = -1  # -1: the operation does not set the count

    def describe(self) -> str:
        seen = f" saw {len(self.seen)} tasks" if self.kind is OpKind.READ else ""
        code = f" [{self.code}]" if self.code else ""
        target = self.task_id or "-"
        if self.service:
            target = self.service + (f" rev {self.rev}" if self.rev else "")
            target += f" replicas {self.replicas}" if self.replicas >= 0 else ""
        return (
            f"{self.start:.3f}..{self.end:.3f} client {self.client} {self.kind.value} "
            f"{target} -> {self.outcome.value}{code}{seen}"
            + (f": {self.detail[:200]}" if self.detail else "")
        )


@dataclass
class Fault:
    kind: str  # kill, pause, partition, restart_all
    detail: str
    start: float
    end: float = 0.0

    def describe(self) -> str:
        return f"{self.start:.3f}..{self.end:.3f} fault {self.kind}: {self.detail}"


def outcome_of(error: BaseException) -> tuple[Outcome, str]:
    """Refusals that guarantee nothing was applied are errors; everything else is unknown."""
    if isinstance(error, NoQuorum | InvalidRequest | NotFound):
        return Outcome.ERROR, error.code
    if isinstance(error, OrionError):
        return Outcome.UNKNOWN, error.code  # timeout, unavailable, internal: it may have happened
    return Outcome.UNKNOWN, type(error).__name__


@dataclass
class History:
    ops: list[Op] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, op: Op) -> None:
        with self._lock:
            self.ops.append(op)

    def begin_fault(self, kind: str, detail: str) -> Fault:
        fault = Fault(kind=kind, detail=detail, start=time.time())
        with self._lock:
            self.faults.append(fault)
        return fault

    def around(self, at: float, window: float = 5.0, task_id: str = "", limit: int = 40) -> list[str]:
        """Lines of history near ``at`` (and every op on ``task_id``, a task id or a service
        name), in time order."""
        with self._lock:
            ops = [
                o
                for o in self.ops
                if (task_id and task_id in (o.task_id, o.service)) or abs(o.start - at) <= window
            ]
            faults = [f for f in self.faults if f.start - window <= at <= (f.end or f.start) + window]
        lines = sorted(
            [(o.start, o.describe()) for o in ops] + [(f.start, f.describe()) for f in faults],
        )
        return [line for _, line in lines[-limit:]]

    def dump(self, path: Path) -> None:
        """JSON lines, one per op and fault, for reading after a failed run."""
        with self._lock, path.open("w") as out:
            for fault in self.faults:
                out.write(json.dumps({"type": "fault", **asdict(fault)}) + "\n")
            for op in self.ops:
                out.write(json.dumps({"type": "op", **asdict(op)}) + "\n")
