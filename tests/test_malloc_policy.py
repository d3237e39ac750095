"""orion/malloc_policy.py: with the thresholds pinned, a big block is still a mapping of its own
after one was freed (glibc would otherwise have raised its threshold above it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from orion.malloc_policy import pin_malloc_thresholds

# In a process of its own: the setting is process-wide. Prints the number of glibc's own
# mappings (mallinfo2's hblks) while a 2 MiB block is held, after one was freed.
PROBE = """
import ctypes, sys
from orion.malloc_policy import pin_malloc_thresholds
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
