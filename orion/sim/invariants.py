"""Safety invariants checked by the simulator after every step of every node.

- Election safety: at most one leader per term.
- Log matching: an entry with a given index and term has the same content and the same
  predecessor term wherever it is persisted (by induction, identical prefixes).
- Leader completeness: the leader of term T holds every entry committed in a term before T.
  Raft promises no more: an entry committed in term T+1 (by a leader elected while a slow
  candidate of term T was still collecting late votes) need not be in the log of T's leader.
  The checker records, for each index, the term in which it was first known committed (the
  term of the first node seen with that commit index: exact when that node is the leader that
  committed it, an upper bound otherwise, so the check never reports a false violation).
- State machine safety: every node applies the same entry at each index, in order, and a
  snapshot installed anywhere carries the same FSM chain as the entries it replaces.
"""

from __future__ import annotations

from orion.raft.core import LEADER, RaftCore
from orion.raft.types import Entry


class InvariantViolation(AssertionError):
    pass


class InvariantChecker:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.leaders: dict[int, str] = {}  # term -> leader
        self.entries: dict[tuple[int, int], tuple[int, bytes, int | None]] = {}
        self.committed: dict[int, Entry] = {}  # index -> the entry applied there
        self.chains: dict[int, int] = {}  # index -> FSM chain after applying it
        self.max_committed = 0
        self.commit_terms: dict[int, int] = {}  # index -> term in which it was first known committed
        self.known_commit = 0  # highest commit index seen on any node

    def fail(self, what: str) -> None:
        raise InvariantViolation(f"seed={self.seed}: {what}")

    def on_persist(self, node: str, core: RaftCore, entries: list[Entry], prev_term: int | None = -1) -> None:
        """``prev_term``: the term before the entries when they were handed to a writer (None if
        compacted; -1: read it from the core, for a write made at once)."""
        seen = self.entries
        if prev_term == -1:
            prev_term = core.entry_term(entries[0].index - 1)
        for e in entries:
            key = (e.index, e.term)
            old = seen.get(key)
            if old is None:
                seen[key] = (e.kind, e.data, prev_term)
            elif (
                old[0] != e.kind
                or old[1] != e.data
                or (old[2] is not None and prev_term is not None and old[2] != prev_term)
            ):
                self.fail(f"log matching: {node} persisted a different entry at {key}")
            prev_term = e.term

    def on_state(self, node: str, core: RaftCore) -> None:
        commit = core.commit_index
        if commit > self.known_commit:
            term = core.term
            commit_terms = self.commit_terms
            for index in range(self.known_commit + 1, commit + 1):
                commit_terms[index] = term
            self.known_commit = commit
        if core.role != LEADER:
            return
        term = core.term
        holder = self.leaders.get(term)
        if holder is None:
            self.leaders[term] = node
            self._check_completeness(node, core)
        elif holder != node:
            self.fail(f"two leaders in term {term}: {holder} and {node}")

    def _check_completeness(self, node: str, core: RaftCore) -> None:
        """Called when the leader of a term is first seen. Every index committed in an earlier
        term must hold the committed entry in its log (or lie inside its snapshot, whose last
        entry must then agree)."""
        term = core.term
        snapshot_index = core.snapshot_index
        commit_terms = self.commit_terms
        snap = self.committed.get(snapshot_index)
        if (
            snap is not None
            and commit_terms.get(snapshot_index, term) < term
            and core.entry_term(snapshot_index) != snap.term
        ):
            self.fail(f"leader completeness: {node}'s snapshot disagrees with committed entries")
        for index in range(snapshot_index + 1, self.max_committed + 1):
            entry = self.committed.get(index)
            if entry is None or commit_terms.get(index, term) >= term:
                continue  # not applied anywhere yet, or committed in term T or later
            if core.entry_term(index) != entry.term:
                self.fail(
                    f"leader completeness: leader {node} of term {term} lacks entry {index} "
                    f"committed in term {commit_terms[index]}"
                )

    def on_apply(self, node: str, entry: Entry, expected_index: int, chain: int) -> None:
        if entry.index != expected_index:
            self.fail(f"{node} applied index {entry.index}, expected {expected_index}")
        old = self.committed.get(entry.index)
        if old is None:
            self.committed[entry.index] = entry
            self.chains[entry.index] = chain
            if entry.index > self.max_committed:
                self.max_committed = entry.index
        elif old != entry or self.chains[entry.index] != chain:
            self.fail(f"state machine safety: {node} applied {entry} at {entry.index}, others {old}")

    def on_restore(self, node: str, index: int, chain: int) -> None:
        known = self.chains.get(index)
        if known is not None and known != chain:
            self.fail(f"state machine safety: {node} restored a snapshot at {index} that differs")
