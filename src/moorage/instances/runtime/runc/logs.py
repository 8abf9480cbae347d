"""Parsing conmon's ``k8s-file`` logs: one record per line,
``<RFC 3339 time> <stdout|stderr> <P|F> <text>``, where ``P`` marks a partial line that the next
record of the same stream continues and ``F`` ends it."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from moorage.instances.runtime.base import LogLine

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _timestamp(text: str) -> datetime:
    try:
        # Python 3.11 accepts the nanosecond fraction conmon writes and truncates it.
        return datetime.fromisoformat(text)
    except ValueError:
        return _EPOCH


def parse_k8s_file(data: bytes) -> list[LogLine]:
    """The log lines of a k8s-file log, partial records joined. A partial line that the log
    ends with (the process wrote no newline) is returned as a line of its own."""
    lines: list[LogLine] = []
    partial: dict[str, tuple[datetime, list[str]]] = {}
    for raw in data.decode("utf-8", "replace").split("\n"):
        if not raw:
            continue
        fields = raw.split(" ", 3)
        if len(fields) < 3 or fields[1] not in ("stdout", "stderr"):
            continue  # not a record (e.g. torn by rotation)
        stamp, stream, tag = fields[0], fields[1], fields[2]
        text = fields[3] if len(fields) == 4 else ""
        begun = partial.get(stream)
        if begun is None:
            begun = (_timestamp(stamp), [])
        begun[1].append(text)
        if tag == "P":
            partial[stream] = begun
            continue
        partial.pop(stream, None)
        lines.append(LogLine(begun[0], stream, "".join(begun[1])))
    lines.extend(LogLine(ts, stream, "".join(parts)) for stream, (ts, parts) in partial.items())
    return lines


def read_log(path: Path, *, tail: int | None = None) -> list[LogLine]:
    """The lines of the log at ``path`` (``[]`` when there is none yet), the last ``tail`` only
    if given."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    lines = parse_k8s_file(data)
    return lines if tail is None else lines[max(len(lines) - tail, 0) :]


class LogCursor:
    """Reads a k8s-file log incrementally, from where it stood when the cursor was made: each
    :meth:`read` returns the lines completed since the last one (partial records joined across
    reads). A log that conmon rotated (a new file, or one shorter than what was read) is read
    again from its start."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._inode, self._offset = self._position()
        self._pending = b""  # an incomplete record at the end of what was read
        self._partial: dict[str, tuple[datetime, list[str]]] = {}

    def _position(self) -> tuple[int | None, int]:
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return None, 0
        return stat.st_ino, stat.st_size

    def read(self) -> list[LogLine]:
        try:
            with self._path.open("rb") as handle:
                stat = os.fstat(handle.fileno())
                if stat.st_ino != self._inode or stat.st_size < self._offset:
                    self._inode, self._offset, self._pending = stat.st_ino, 0, b""
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        records = (self._pending + data).split(b"\n")
        self._pending = records.pop()
        lines: list[LogLine] = []
        for raw in records:
            fields = raw.decode("utf-8", "replace").split(" ", 3)
            if len(fields) < 3 or fields[1] not in ("stdout", "stderr"):
                continue
            stamp, stream, tag = fields[0], fields[1], fields[2]
            begun = self._partial.pop(stream, None) or (_timestamp(stamp), [])
            begun[1].append(fields[3] if len(fields) == 4 else "")
            if tag == "P":
                self._partial[stream] = begun
            else:
                lines.append(LogLine(begun[0], stream, "".join(begun[1])))
        return lines

    def flush(self) -> list[LogLine]:
        """Whatever :meth:`read` finds plus the partial lines still open (the log's end)."""
        lines = self.read()
        lines.extend(LogLine(ts, stream, "".join(parts)) for stream, (ts, parts) in self._partial.items())
        self._partial.clear()
        return lines
