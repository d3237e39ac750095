"""The Judge: filter, score and pick nodes for pending tasks (pure and deterministic)."""

from orion.scheduler.judge import nomad_limit, schedule
from orion.scheduler.types import NodeView, Plan

__all__ = ["NodeView", "Plan", "nomad_limit", "schedule"]
