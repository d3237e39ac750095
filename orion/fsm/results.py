"""What applying a command returns: the changed record, or why nothing changed."""

from __future__ import annotations

import msgspec

from orion.fsm.commands import CommandError
from orion.fsm.tables import NodeRecord
from orion.model import Task
from orion.services.spec import Service
from orion.volumes.spec import Volume


class AssignResult(msgspec.Struct, frozen=True):
    assigned: list[str]  # task ids now Scheduled
    skipped: list[str]  # stale placements: task no longer Pending, or node gone or not alive


class TaskIds(msgspec.Struct, frozen=True):
    """Result of a command over many tasks: the ids it changed."""

    task_ids: list[str]


class ReportResults(msgspec.Struct, frozen=True):
    """Result of a batch of task state reports: the items refused, by their position in the
    batch, with the refusal's code and message; every other item was applied."""

    refused: list[tuple[int, str, str]] = []

    def refusals(self) -> dict[int, tuple[str, str]]:
        """Position -> (code, message) of each refused item."""
        return {position: (code, message) for position, code, message in self.refused}


ApplyResult = Task | NodeRecord | AssignResult | TaskIds | ReportResults | Service | Volume | CommandError
