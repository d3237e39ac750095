"""orion/malloc_policy.py: with the thresholds pinned, a big block is still a mapping of its own
after one was freed (glibc would otherwise have raised its threshold above it)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from orion.malloc_policy import FreeMemoryReleaser, pin_malloc_thresholds

# In a process of its own: the setting is process-wide. Prints the number of glibc's own
# mappings (mallinfo2's hblks) while a 2 MiB block is held, after one was freed.
PROBE = """
import ctypes, sys
from orion.malloc_policy import FreeMemoryReleaser, pin_malloc_thresholds
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
if sys.argv[1] == "pin":
    assert pin_malloc_thresholds()
first = bytearray(2 << 20)
del first
before = libc.mallinfo2().hblks
second = bytearray(2 << 20)
print(libc.mallinfo2().hblks - before)
"""


def _mapped_blocks(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60, check=True
    )
    return int(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_big_block_stays_a_mapping_of_its_own_once_the_thresholds_are_pinned() -> None:
    assert _mapped_blocks("default") == 0  # glibc raised its threshold when the first was freed
    assert _mapped_blocks("pin") == 1


def test_a_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="thresholds must be > 0"):
        pin_malloc_thresholds(0)


# Frees 60 MB of 4 KiB blocks but every 16th, so no heap can shrink from its top; prints the
# anonymous RSS in KiB after the frees and after release_free_memory().
RELEASE_PROBE = """
from orion.malloc_policy import pin_malloc_thresholds, release_free_memory
def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
pin_malloc_thresholds()
blocks = [bytes(4096) for _ in range(15000)]
kept = blocks[::16]
del blocks
before = anon()
released = release_free_memory()
print(before, anon(), released, len(kept))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_free_pages_inside_the_heap_go_back_to_the_system() -> None:
    done = subprocess.run(
        [sys.executable, "-c", RELEASE_PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    before, after, released, _ = done.stdout.split()
    assert released == "True"
    assert int(before) - int(after) > 30_000  # KiB: most of the 56 MB freed in the middle


def test_the_releaser_runs_until_stopped() -> None:
    releaser = FreeMemoryReleaser(every_s=0.01).start()
    deadline = time.monotonic() + 30
    while releaser.rounds < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    releaser.stop()
    assert releaser.rounds >= 2
    with pytest.raises(ValueError, match="every_s must be > 0"):
        FreeMemoryReleaser(every_s=0)
