"""Parsing conmon's ``k8s-file`` logs: one record per line,
``<RFC 3339 time> <stdout|stderr> <P|F> <text>``, where ``P`` marks a partial line that the next
record of the same stream continues and ``F`` ends it."""

from __future__ import annotations

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
