"""What to do when a task's container exits: Nomad's ``restart`` block, per task.

- ``policy``: ``on-failure`` restarts a container that exited non-zero (or was OOM-killed) and
  lets one that exited 0 complete (Stopped); ``always`` restarts it either way; ``no`` never
  restarts (exit 0: Stopped, else Failed).
- ``attempts`` within ``interval``: only restarts of the last ``interval`` seconds count, so a
  task that crashes now and then is never worn out by crashes long past (the budget resets).
- ``delay``: the wait before a restart, doubled for each restart already in the interval, up
  to ``cap``.
- ``mode``: when the attempts are used, ``fail`` marks the task Failed for good; ``delay``
  waits until the oldest counted restart leaves the interval and goes on.

Pure arithmetic over values: the times of recent restarts live in the FSM (the task's
``restart_times``, reported by its node), so a node that restarts, or another node the task
moves to, decides from the same record. ``RestartPolicy`` is the node's default ([docker]
restart*); a task's ``RestartSpec`` overrides any part of it.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from orion.model import RESTART_CONDITIONS, RESTART_MODES, RestartSpec

Action = Literal["restart", "fail", "complete"]


def _duration(seconds: float) -> str:
    """3.0 -> "3s", 0.25 -> "0.2s", 300 -> "5m", 150 -> "2m30s", 7200 -> "2h"."""
    if seconds < 60:
        return f"{seconds:.1f}".removesuffix(".0") + "s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts)


class RestartDecision(msgspec.Struct, frozen=True):
    action: Action  # "restart" after ``delay``; "fail": Failed for good; "complete": Stopped
    reason: str
    delay: float = 0.0
    restart_times: list[float] = []  # the task's recent restarts, this one included


class RestartPolicy(msgspec.Struct, frozen=True, kw_only=True):
    condition: str = "on-failure"
    max_attempts: int = 3  # restarts allowed within ``interval``; 0 never restarts
    interval: float = 300.0  # seconds
    base: float = 1.0  # seconds before the first restart of an interval
    cap: float = 30.0  # no wait is ever longer than this (except in delay mode, see decide)
    mode: str = "fail"

    def __post_init__(self) -> None:
        if self.condition not in RESTART_CONDITIONS:
            raise ValueError(
                f"restart policy must be one of {', '.join(RESTART_CONDITIONS)}, got {self.condition!r}"
            )
        if self.mode not in RESTART_MODES:
            raise ValueError(f"restart mode must be one of {', '.join(RESTART_MODES)}, got {self.mode!r}")
        if self.max_attempts < 0 or self.base < 0 or self.cap < 0 or not self.interval > 0:
            raise ValueError(f"restart attempts and delays must be >= 0 and the interval > 0: {self}")

    def for_task(self, spec: RestartSpec | None) -> RestartPolicy:
        """This policy with what the task's own spec sets."""
        if spec is None:
            return self
        changes: dict[str, object] = {}
        if spec.policy:
            changes["condition"] = spec.policy
        if spec.attempts is not None:
            changes["max_attempts"] = spec.attempts
        if spec.interval is not None:
            changes["interval"] = spec.interval
        if spec.delay is not None:
            changes["base"] = spec.delay
            changes["cap"] = max(self.cap, spec.delay)
        if spec.mode:
            changes["mode"] = spec.mode
        return msgspec.structs.replace(self, **changes) if changes else self

    def describe(self) -> str:
        """One line for ``task inspect``: "on-failure: 3 restarts in 5m, from 1s doubling, then fail"."""
        if self.condition == "no":
            return "no"
        return (
            f"{self.condition}: {self.max_attempts} restart(s) in {_duration(self.interval)}, "
            f"from {_duration(self.base)} doubling, then {self.mode}"
        )

    def decide(
        self,
        exit_code: int | None,
        oom_killed: bool,
        restart_times: list[float],
        now: float,
        cause: str = "",
    ) -> RestartDecision:
        """What to do about an exit seen at ``now`` (seconds since the epoch). ``cause``
        replaces the exit's description for an end that was not an exit (a container removed
        behind Orion's back), which counts as a failure."""
        if not cause:
            cause = "killed: out of memory" if oom_killed else f"exited with code {exit_code}"
        succeeded = exit_code == 0 and not oom_killed
        if self.condition == "no" or (self.condition == "on-failure" and succeeded):
            if succeeded:
                return RestartDecision("complete", "completed: exited with code 0")
            return RestartDecision("fail", f"{cause} (restart policy: no)")
        recent = [at for at in restart_times if now - at < self.interval]
        window = _duration(self.interval)
        if len(recent) >= self.max_attempts:
            if self.mode == "fail" or not recent:
                return RestartDecision("fail", f"{cause}; gave up after {len(recent)} restart(s) in {window}")
            # Delay mode: wait until the oldest counted restart leaves the interval.
            delay = max(recent[0] + self.interval - now, self.base)
            reason = f"{cause}; {len(recent)} restart(s) in {window}: next in {_duration(delay)}"
            return RestartDecision("restart", reason, delay, [*recent[1:], now + delay])
        delay = min(self.cap, self.base * 2 ** len(recent))
        reason = f"{cause}; restart {len(recent) + 1}/{self.max_attempts} in {_duration(delay)}"
        return RestartDecision("restart", reason, delay, [*recent, now + delay])
