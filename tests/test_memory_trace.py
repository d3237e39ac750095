"""orion.memory_trace: the debug report's head says what Python does not see."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from orion import memory_trace


def test_report_has_python_total_process_pages_and_glibc_figures(tmp_path: Path) -> None:
    path = tmp_path / "memory.txt"
    tracemalloc.start(1)
    try:
        kept = [bytes(1000) for _ in range(100)]
        memory_trace.write_report(path, top=5)
    finally:
        tracemalloc.stop()
    lines = path.read_text().splitlines()
    assert lines[0].startswith("total ") and int(lines[0].split()[1]) >= 100_000
    assert lines[1].startswith("process: VmRSS ") and "RssAnon" in lines[1] and "RssFile" in lines[1]
    assert lines[2].startswith("glibc malloc: ") and "free in its arenas" in lines[2]
    assert any("test_memory_trace.py" in line for line in lines[3:])
    assert len(kept) == 100


def test_native_report_lists_glibc_arenas_and_python_arenas(tmp_path: Path) -> None:
    path = tmp_path / "native.txt"
    memory_trace.write_native_report(path)
    text = path.read_text()
    assert text.startswith("process: VmRSS ")
    assert "<malloc version=" in text and '<heap nr="0">' in text
    assert "# arenas allocated current" in text and "# bytes in allocated blocks" in text


def test_native_figures_read_the_reports_totals(tmp_path: Path) -> None:
    path = tmp_path / "native.txt"
    memory_trace.write_native_report(path)
    figures = memory_trace.native_figures(path.read_text())
    assert set(figures) == {
        "rssanon_mib",
        "rssfile_mib",
        "glibc_in_use_mib",
        "glibc_free_mib",
        "pymalloc_arenas_mib",
        "pymalloc_live_mib",
        "pymalloc_unused_pools_mib",
    }
    assert figures["pymalloc_live_mib"] > 0 and figures["glibc_in_use_mib"] > 0 and figures["rssfile_mib"] > 0
