"""core.memory.trim gives freed heap pages back to the OS (glibc's malloc_trim)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from moorage.core import memory

MIB = 1 << 20


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_trim_returns_freed_transfer_buffers() -> None:
    if memory._malloc_trim() is None:
        pytest.skip("this C library has no malloc_trim")
    # A freed mmap-ed 1 MiB buffer raises glibc's mmap threshold: later 1 MiB buffers come from
    # the heap, as a pull's do. Freeing every other one leaves holes the heap cannot shrink past.
    first = bytearray(MIB)
    del first
    buffers = [bytearray(b"x" * MIB) for _ in range(120)]
    kept = buffers[1::2]
    del buffers
    before = _rss_mib()
    assert memory.trim()
    after = _rss_mib()
    assert before - after > 30, (before, after)
    assert len(kept) == 60


def test_limit_arenas_takes_effect_on_glibc() -> None:
    if memory._libc() is None or not hasattr(memory._libc(), "mallopt"):
        pytest.skip("this C library has no mallopt")
    # Run in a child: the cap applies to the whole process, and this one is the test runner.
    code = "from moorage.core import memory; print(memory.limit_arenas(2))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"
