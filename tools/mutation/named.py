"""Named one-line mutants of orion/raft/core.py that once passed the whole Raft suite and 1,000
simulator seeds (issue 11). Each now has a targeted schedule in tests/sim/test_schedules.py;
``python tools/mutation --named`` checks that the suite kills all three.

A mutant is a text replacement that must match the source exactly once; when the core is
rewritten and the text no longer matches, the runner says so instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass

from .operators import Mutant


@dataclass(frozen=True)
class NamedMutant:
    name: str
    path: str
    old: str
    new: str
    why: str

    def resolve(self, source: bytes) -> Mutant:
        """The mutant at its place in ``source``; ValueError if the text is not there once."""
        old = self.old.encode()
        count = source.count(old)
        if count != 1:
            raise ValueError(f"{self.name}: the text to mutate occurs {count} times in {self.path}")
        start = source.index(old)
        line = source[:start].count(b"\n") + 1
        end_line = line + self.old.count("\n")
        return Mutant(self.path, line, end_line, start, start + len(old), self.name, self.old, self.new)


CORE = "orion/raft/core.py"

NAMED: list[NamedMutant] = [
    NamedMutant(
        "stale-vote",
        CORE,
        "        elif term < self._term:\n",
        "        elif term < self._term and not isinstance(msg, RequestVote):\n",
        "a vote request from an older term is handled instead of dropped: a voter can vote twice in one term",
    ),
    NamedMutant(
        "figure-8",
        CORE,
        "if candidate <= self._commit or self._log.term(candidate) != self._term:",
        "if candidate <= self._commit:",
        "an entry of an earlier term is committed by counting replicas (Figure 8): a committed "
        "entry can be overwritten",
    ),
    NamedMutant(
        "early-read",
        CORE,
        "    def read_index(self, context: bytes) -> None:\n"
        "        if self._role != LEADER:\n"
        "            raise NotLeaderError(self._leader_id)\n"
        "        if self._log.term(self._commit) != self._term:",
        "    def read_index(self, context: bytes) -> None:\n"
        "        if self._role != LEADER:\n"
        "            raise NotLeaderError(self._leader_id)\n"
        "        if False:",
        "ReadIndex is served before the leader committed an entry of its own term: a read can miss "
        "an acknowledged write",
    ),
]
