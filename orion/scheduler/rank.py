"""Pick the best feasible node for one task: the filter and score steps fused in one loop.

Both strategies reduce to "smallest key wins", the first such node in shuffled order taking
ties:
- binpack (Nomad's idea): prefer the node that is fullest after placement, scored as the mean
  of memory and CPU utilisation after placement. Maximising that mean is minimising
  ``(free_memory - need) / memory_total + (free_cpu - need) / cpu_total``, which is the key.
- spread (the PRD's phase 2): prefer the node with the most free memory; key ``-free_memory``.

Tasks of a service (``pick_spread``) put the service's spread key first (orion/scheduler/spread.py)
and the strategy's key only breaks its ties.

With ``limit`` (Nomad's ``LimitIterator``), the walk stops after ``limit`` feasible nodes and
resumes where it stopped for the next task, so successive tasks sample different nodes. A task
that fits somewhere is still always placed: the walk only gives up after every candidate.
"""

from __future__ import annotations

from collections.abc import Callable

from orion.model import Task
from orion.scheduler.fleet import Fleet

NONE = -1


def pick_exact(fleet: Fleet, candidates: list[int], task: Task, strategy: str, start: int = 0) -> int:
    """Score every feasible candidate; return the best position or NONE. Ties go to the first
    in the walk from ``start`` (wrapping around): a caller that keeps one shuffled fleet for many
    tasks moves ``start`` on so that equal nodes take turns, as a fresh shuffle would give them
    (kube-scheduler picks at random among equal scores for the same reason)."""
    free_memory, free_cpu, free_disk = fleet.free_memory, fleet.free_cpu, fleet.free_disk
    memory, cpu, disk = task.memory, task.cpu, task.disk
    best, best_key = NONE, float("inf")
    if start:
        candidates = candidates[start:] + candidates[:start]
    if strategy == "binpack":
        inverse_memory, inverse_cpu = fleet.inverse_memory, fleet.inverse_cpu
        for i in candidates:
            if free_memory[i] >= memory and free_cpu[i] >= cpu and free_disk[i] >= disk:
                key = (free_memory[i] - memory) * inverse_memory[i] + (free_cpu[i] - cpu) * inverse_cpu[i]
                if key < best_key:
                    best, best_key = i, key
    else:
        for i in candidates:
            if free_memory[i] >= memory and free_cpu[i] >= cpu and free_disk[i] >= disk:
                key = -free_memory[i]
                if key < best_key:
                    best, best_key = i, key
    return best


def pick_limited(
    fleet: Fleet, candidates: list[int], task: Task, strategy: str, limit: int, start: int
) -> tuple[int, int]:
    """Score the first ``limit`` feasible candidates from ``start`` on (wrapping around).

    Returns the best position (or NONE) and where the next task's walk should begin.
    """
    count = len(candidates)
    if count == 0:
        return NONE, 0
    free_memory, free_cpu, free_disk = fleet.free_memory, fleet.free_cpu, fleet.free_disk
    inverse_memory, inverse_cpu = fleet.inverse_memory, fleet.inverse_cpu
    memory, cpu, disk = task.memory, task.cpu, task.disk
    binpack = strategy == "binpack"
    best, best_key, found = NONE, float("inf"), 0
    step = 0
    for step in range(count):
        i = candidates[(start + step) % count]
        if free_memory[i] >= memory and free_cpu[i] >= cpu and free_disk[i] >= disk:
            if binpack:
                key = (free_memory[i] - memory) * inverse_memory[i] + (free_cpu[i] - cpu) * inverse_cpu[i]
            else:
                key = -free_memory[i]
            if key < best_key:
                best, best_key = i, key
            found += 1
            if found >= limit:
                break
    return best, (start + step + 1) % count


def pick_spread(
    fleet: Fleet,
    candidates: list[int],
    task: Task,
    strategy: str,
    spread_key: Callable[[int], tuple[int, int]],
) -> int:
    """Score every feasible candidate by (spread key, strategy key); return the best or NONE."""
    free_memory, free_cpu, free_disk = fleet.free_memory, fleet.free_cpu, fleet.free_disk
    inverse_memory, inverse_cpu = fleet.inverse_memory, fleet.inverse_cpu
    memory, cpu, disk = task.memory, task.cpu, task.disk
    binpack = strategy == "binpack"
    best, best_key = NONE, (float("inf"),)
    for i in candidates:
        if free_memory[i] >= memory and free_cpu[i] >= cpu and free_disk[i] >= disk:
            if binpack:
                score = (free_memory[i] - memory) * inverse_memory[i] + (free_cpu[i] - cpu) * inverse_cpu[i]
            else:
                score = -free_memory[i]
            key = (*spread_key(i), score)
            if key < best_key:
                best, best_key = i, key
    return best
