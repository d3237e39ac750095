"""orion/idle_pages.py: which mappings may be released, and that releasing them drops this
process's RSS without changing what the pages hold."""

from __future__ import annotations

import mmap
import os
import sys
from pathlib import Path

import pytest

from orion.idle_pages import IdlePages, Mapping, pristine_mappings, read_only_file_mappings

MAPS = """\
55d0c0a00000-55d0c0a20000 r--p 00000000 08:01 1311 /usr/bin/python3.11
7f0000000000-7f0000100000 r-xp 00010000 08:01 2222 /venv/_duckdb.so
7f0000100000-7f0000200000 r--p 00200000 08:01 2222 /venv/_duckdb.so
7f0000200000-7f0000210000 rw-p 00300000 08:01 2222 /venv/_duckdb.so
7f0000300000-7f0000400000 rw-p 00000000 00:00 0
7f0000400000-7f0000401000 r--p 00000000 00:00 0 [vvar]
7f0000500000-7f0000600000 r--p 00000000 08:01 3333 /lib/with space (deleted)
"""


def _smaps(anonymous_kib: dict[str, int]) -> str:
    lines = []
    for line in MAPS.splitlines():
        lines.append(line)
        lines += ["Size:               1024 kB", "Rss:                 512 kB"]
        lines.append(f"Anonymous:          {anonymous_kib.get(line.split()[0], 0)} kB")
        lines.append("VmFlags: rd ex mr mw me")
    return "\n".join(lines) + "\n"


def test_only_read_only_file_mappings_are_candidates() -> None:
    found = read_only_file_mappings(MAPS.splitlines())
    assert found == [
        Mapping(0x55D0C0A00000, 0x55D0C0A20000, 0, 1311),
        Mapping(0x7F0000000000, 0x7F0000100000, 0x10000, 2222),
        Mapping(0x7F0000100000, 0x7F0000200000, 0x200000, 2222),
        Mapping(0x7F0000500000, 0x7F0000600000, 0, 3333),
    ]


def test_a_mapping_with_copied_on_write_pages_is_never_pristine() -> None:
    relocated = "7f0000100000-7f0000200000"  # a library's relocated read-only data
    clean, written = pristine_mappings(_smaps({relocated: 8}).splitlines())
    assert Mapping(0x7F0000100000, 0x7F0000200000, 0x200000, 2222) in written
    assert {m.start for m in clean} == {0x55D0C0A00000, 0x7F0000000000, 0x7F0000500000}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc are Linux's")
def test_release_drops_resident_pages_and_keeps_their_content(tmp_path: Path) -> None:
    """A read-only private file mapping, read in full, then released: this process no longer
    maps its pages (VmRSS falls), and reading it again gives the same bytes. A private mapping
    that was written (copy-on-write pages) is left alone, its data intact."""
    data = os.urandom(4 << 20)
    path = tmp_path / "library.bin"
    path.write_bytes(data)
    with open(path, "rb") as file:
        text = mmap.mmap(file.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
        written = mmap.mmap(file.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    written[:4] = b"mine"
    assert text[:] == data  # every page resident now
    rss_before = _vm_rss_kib()
    pages = IdlePages(interval=0.0)
    released = pages.release()
    assert released >= len(data)
    assert _vm_rss_kib() <= rss_before - 3 * 1024
    assert text[:] == data  # mapped back from the page cache, unchanged
    assert written[:4] == b"mine" and written[4:] == data[4:]
    text.close()
    written.close()


def _vm_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def test_release_when_due_waits_for_its_interval() -> None:
    now = [100.0]
    pages = IdlePages(interval=30.0, clock=lambda: now[0])
    assert pages.release_when_due() == 0  # not yet: the first is due 30 s after creation
    now[0] += 30.0
    assert pages.release_when_due() > 0 or not pages.enabled
    assert pages.release_when_due() == 0
