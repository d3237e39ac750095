"""Where a node's samples went, by thread and by stage of the write path, from py-spy's raw output.

    .venv/bin/python -m benchmarks.flames.stages benchmarks/flames/leader-after-c16.txt [--top 25]

Reads the collapsed stacks ``record.py --raw`` writes (``py-spy record --format raw --threads``:
one line per distinct stack, ``thread (tid): name;frame;frame... count``). Samples whose
innermost frame is a wait (a queue, a lock, a poll) are counted as waiting, not work: py-spy
without ``--idle`` still reports threads parked in those calls. Each busy sample is given to
the first stage in ``STAGES`` one of whose markers appears in its stack, so the order there
goes from the most specific to the most general.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

# A sample is waiting when its innermost frame is one of these (blocking calls that release the
# interpreter lock and burn no CPU while parked).
WAITS = (
    "Condition.wait ",
    "Event.wait ",
    "Queue.get ",
    "Poller.poll ",
    "_poll ",
    "select ",
    "Thread.join ",
    "_wait_for_tstate_lock ",
    "sleep ",
    "Ticker._run",
    "recv_pyobj",
    "Lock.acquire",
    # The hosted transport's wait: zmq_poll is a C call, so a thread parked in it shows
    # ``_turn`` itself as the innermost frame (its Python work shows frames below it).
    "PeerTransport._turn ",
)

# (stage, markers): the first stage with a marker in the stack takes the sample.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("DuckDB append (store.save)", ("DuckDBStore.save", "save (orion/raft/duckdb_store")),
    ("snapshot", ("snapshot", "Snapshot")),
    (
        "reply: outcome -> encoded answer",
        ("_reply_with", "checked_reply", "encode_reply", "_post ", "timed.<locals>"),
    ),
    ("FSM apply", ("ClusterState.apply", "apply (orion/fsm/state")),
    ("submit placement (SubmitPlacer)", ("SubmitPlacer",)),
    ("Raft message encode", ("encode_envelope",)),
    ("Raft message decode", ("decode_envelope",)),
    (
        "Raft core step/ready/advance",
        ("RaftCore.", "(orion/raft/core.py", "(orion/raft/log.py", "(orion/raft/progress.py"),
    ),
    ("listeners (StateChanged, events)", ("RaftListeners", "raft_listeners")),
    (
        "reads of other actors (queries)",
        ("LinearizableReads", "serve_ready", "requests.read", "RequestPath.read"),
    ),
    ("request path (propose, waiters)", ("RequestPath", "WriteWaiters", "request_path", "write_waiters")),
    ("API receive + decode + policy", ("ApiServer._receive_batch", "ApiServer._serve", "decode_request")),
    ("API send", ("ApiServer._send",)),
    ("submit command (task_of, encode)", ("submit_command", "task_of")),
    ("transport send", ("send_batch", "PeerTransport._write", "PeerTransport._send")),
    ("transport receive", ("PeerTransport._receive", "on_frame", "frame_handler")),
    ("transport loop", ("PeerTransport",)),
    ("actor mailboxes (tell, dispatch) and other actors' work", ("pykka", "_actor_loop", "ActorRef.tell")),
    ("loguru", ("loguru",)),
    ("metrics", ("prometheus", "metrics.py")),
)

_LINE = re.compile(r"^thread \((?P<tid>[^)]*)\): (?P<stack>.*) (?P<count>\d+)$")
_DIGITS = re.compile(r"\d+")


def thread_kind(name: str) -> str:
    """A thread's name without its numbers (pykka's ``RaftActor-3 (...)`` -> ``RaftActor- (...)``)."""
    return _DIGITS.sub("", name.split(" (", 1)[0]).rstrip("-_")


def stage_of(frames: list[str]) -> str:
    for stage, markers in STAGES:
        for frame in frames:
            if any(marker in frame for marker in markers):
                return stage
    return "other: " + frames[-1].split(" (", 1)[0] if frames else "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", type=Path, nargs="+")
    parser.add_argument("--top", type=int, default=25, help="stages shown per file")
    parser.add_argument("--per-thread", action="store_true", help="stages by thread too")
    args = parser.parse_args()
    for path in args.raw:
        threads: Counter[str] = Counter()
        waiting: Counter[str] = Counter()
        stages: Counter[str] = Counter()
        by_thread: dict[str, Counter[str]] = defaultdict(Counter)
        for line in path.read_text().splitlines():
            match = _LINE.match(line)
            if match is None:
                continue
            name, *frames = match.group("stack").split(";")
            count = int(match.group("count"))
            kind = thread_kind(name)
            threads[kind] += count
            if frames and any(frames[-1].startswith(wait) or wait in frames[-1] for wait in WAITS):
                waiting[kind] += count
                continue
            stage = stage_of(frames)
            stages[stage] += count
            by_thread[kind][stage] += count
        busy = sum(stages.values())
        print(f"== {path.name}: {busy} busy samples")
        print("  thread: busy (waiting)")
        for kind, total in threads.most_common():
            print(f"    {kind}: {total - waiting[kind]} ({waiting[kind]})")
        print("  stage: busy samples, share of busy")
        for stage, count in stages.most_common(args.top):
            print(f"    {count:6d} {count / max(busy, 1):6.1%}  {stage}")
        if args.per_thread:
            for kind, counter in by_thread.items():
                print(f"  -- {kind}")
                for stage, count in counter.most_common(8):
                    print(f"    {count:6d}  {stage}")


if __name__ == "__main__":
    main()
