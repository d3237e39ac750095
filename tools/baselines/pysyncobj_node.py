"""One PySyncObj 0.3.17 member holding a replicated dict, driven over stdin/stdout, and the
3-process cluster the side-by-side benchmarks use.

PySyncObj has no client protocol: calls are made in the process of a member (a follower
forwards them to the leader). So each member process reads commands on stdin and answers
one JSON line on stdout:

    status                       -> {"leader": true|false, "ready": ...}
    bench sync C SECONDS         -> C threads, each a blocking set() after the last
    bench async WINDOW SECONDS   -> up to WINDOW set() calls outstanding (callbacks)
    probe TIMEOUT                -> blocking set() until one succeeds; {"at": wall clock}

Modes (``--mode``): ``default`` (stock SyncObjConf: appends go out on a 100 ms tick) or
``nobatch`` (appendEntriesUseBatch=False: every call is sent at once). Durability: the log is
in memory (no journalFile); even with a journal file PySyncObj never fsyncs it on the commit
path, so an acknowledged call survives only while a majority of processes stays up.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orion.testing.localcluster import free_ports, wait_for
from tools.baselines.processes import kill_process

ROOT = Path(__file__).resolve().parents[2]  # members run as ``python -m`` from the checkout


def member_main(argv: list[str]) -> None:
    from pysyncobj import SyncObj, SyncObjConf
    from pysyncobj.batteries import ReplDict

    mode, self_addr, *others = argv
    conf = SyncObjConf() if mode == "default" else SyncObjConf(appendEntriesUseBatch=False)
    conf.dynamicMembershipChange = False
    store = ReplDict()
    node = SyncObj(self_addr, others, conf=conf, consumers=[store])
    value = "v" * 200

    def answer(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "status":
            answer({"leader": node._isLeader(), "ready": node.isReady()})
        elif words[0] == "bench" and words[1] == "sync":
            answer(bench_sync(store, value, int(words[2]), float(words[3])))
        elif words[0] == "bench" and words[1] == "async":
            answer(bench_async(store, value, int(words[2]), float(words[3])))
        elif words[0] == "probe":
            answer(probe(store, float(words[1])))
    node.destroy()


def bench_sync(store: Any, value: str, threads: int, duration: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    deadline = time.perf_counter() + duration

    def worker(w: int) -> None:
        n = 0
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                store.set(f"k{w}-{n % 1000}", value, sync=True, timeout=5.0)
            except Exception as exc:
                with lock:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            n += 1
            with lock:
                latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return {"latencies": latencies, "errors": errors, "elapsed": time.perf_counter() - start}


def bench_async(store: Any, value: str, window: int, duration: float) -> dict[str, Any]:
    """Keep ``window`` calls outstanding; latency from call to its callback."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    slots = threading.Semaphore(window)
    deadline = time.perf_counter() + duration
    n = 0

    def make_callback(start: float) -> Any:
        def callback(result: Any, error: Any) -> None:
            if error == 0:  # FAIL_REASON.SUCCESS
                latencies.append(time.perf_counter() - start)
            else:
                errors[str(error)] = errors.get(str(error), 0) + 1
            slots.release()

        return callback

    start = time.perf_counter()
    while time.perf_counter() < deadline:
        if not slots.acquire(timeout=1.0):
            continue
        store.set(f"k{n % 10000}", value, callback=make_callback(time.perf_counter()))
        n += 1
    for _ in range(window):  # wait for the calls still outstanding
        slots.acquire(timeout=10.0)
    return {"latencies": latencies, "errors": errors, "elapsed": time.perf_counter() - start}


def probe(store: Any, timeout: float) -> dict[str, Any]:
    attempts = 0
    while True:
        attempts += 1
        try:
            store.set("probe", str(attempts), sync=True, timeout=timeout)
            return {"at": time.time(), "attempts": attempts}
        except Exception:
            continue


# ---------------------------------------------------------------------- the controller side


@dataclass
class PySyncObjCluster:
    base_dir: Path
    mode: str = "default"
    size: int = 3
    ports: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen[str] | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.ports = free_ports(self.size)
        self.processes = [None] * self.size

    def address(self, i: int) -> str:
        return f"127.0.0.1:{self.ports[i]}"

    def start_member(self, i: int) -> None:
        others = [self.address(j) for j in range(self.size) if j != i]
        log = open(self.base_dir / f"m{i}.log", "a")  # noqa: SIM115 - owned by the child
        self.processes[i] = subprocess.Popen(
            [sys.executable, "-m", "tools.baselines.pysyncobj_node", self.mode, self.address(i), *others],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
        log.close()

    def start(self, timeout: float = 30.0) -> PySyncObjCluster:
        for i in range(self.size):
            self.start_member(i)
        wait_for(lambda: self.leader_index() is not None, timeout, what="a PySyncObj leader")
        return self

    def ask(self, i: int, command: str) -> dict[str, Any]:
        process = self.processes[i]
        assert process is not None and process.stdin is not None and process.stdout is not None
        process.stdin.write(command + "\n")
        process.stdin.flush()
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"PySyncObj member {i} exited")
        return json.loads(line)

    def running(self, i: int) -> bool:
        process = self.processes[i]
        return process is not None and process.poll() is None

    def leader_index(self) -> int | None:
        leaders = [i for i in range(self.size) if self.running(i) and self.ask(i, "status")["leader"]]
        return leaders[0] if len(leaders) == 1 else None

    def kill(self, i: int) -> None:
        process = self.processes[i]
        if process is not None:
            kill_process(process)

    def close(self) -> None:
        for process in self.processes:
            if process is not None:
                if process.stdin is not None:
                    process.stdin.close()
                kill_process(process, 15)

    def __enter__(self) -> PySyncObjCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    member_main(sys.argv[1:])
