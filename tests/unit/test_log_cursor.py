"""``LogCursor``: incremental reading of conmon's k8s-file logs (what ``follow_logs`` builds on)."""

from __future__ import annotations

from pathlib import Path

from moorage.instances.runtime.base import LogLine
from moorage.instances.runtime.runc.logs import LogCursor

T = "2026-01-02T03:04:05.000000000+00:00"


def _texts(lines: list[LogLine]) -> list[tuple[str, str]]:
    return [(line.stream, line.text) for line in lines]


def test_starts_at_the_end_and_returns_only_new_lines(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    log.write_text(f"{T} stdout F before\n")
    cursor = LogCursor(log)
    assert cursor.read() == []
    with log.open("a") as handle:
        handle.write(f"{T} stdout F one\n{T} stderr F two\n")
    assert _texts(cursor.read()) == [("stdout", "one"), ("stderr", "two")]
    assert cursor.read() == []


def test_a_missing_log_reads_from_its_start_once_it_appears(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    cursor = LogCursor(log)
    assert cursor.read() == []
    log.write_text(f"{T} stdout F first\n")
    assert _texts(cursor.read()) == [("stdout", "first")]


def test_partial_records_and_torn_writes_are_joined_across_reads(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    log.write_text("")
    cursor = LogCursor(log)
    with log.open("a") as handle:
        handle.write(f"{T} stdout P hel")
    assert cursor.read() == []  # the record is not complete yet
    with log.open("a") as handle:
        handle.write(f"\n{T} stdout F lo\n{T} stdout P tail")
    assert _texts(cursor.read()) == [("stdout", "hello")]
    with log.open("a") as handle:
        handle.write("\n")
    assert cursor.read() == []
    assert _texts(cursor.flush()) == [("stdout", "tail")]


def test_a_rotated_log_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    log.write_text(f"{T} stdout F old line that makes the file long\n")
    cursor = LogCursor(log)
    rotated = tmp_path / "new.log"
    rotated.write_text(f"{T} stdout F fresh\n")
    rotated.replace(log)  # conmon's rotation: a new file under the same name
    assert _texts(cursor.read()) == [("stdout", "fresh")]
    log.write_text(f"{T} stdout F s\n")  # truncated in place: shorter than what was read
    assert _texts(cursor.read()) == [("stdout", "s")]
