"""Live progress of long-running commands, on stderr (stdout carries only the result).

On a terminal (stdout and stderr both TTYs) a rich live table is redrawn in place; otherwise
each row is printed as one plain line whenever it changes (columns marked volatile, such as a
running duration, do not count as a change), so logs and CI output stay readable.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

Row = tuple[str, ...]
_ISO_DURATION = re.compile(r"P(?:(\d+)D)?T?(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?")


def interactive() -> bool:
    return sys.stdout.isatty() and sys.stderr.isatty()


def seconds_text(duration: str | None) -> str:
    """An ISO 8601 duration (``PT1M2.5S``, as ARM reports) as ``62.5s``; '' when absent."""
    if not duration:
        return ""
    match = _ISO_DURATION.fullmatch(duration)
    if not match:
        return duration
    days, hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + secs
    return f"{total:.1f}s"


class ProgressTable:
    """Rows keyed by their first two cells under a one-line status, shown live or as plain lines."""

    def __init__(
        self,
        title: str,
        headers: Sequence[str],
        *,
        volatile: Sequence[int] = (),
        live: bool | None = None,
    ) -> None:
        self._title = title
        self._headers = tuple(headers)
        self._volatile = set(volatile)
        self._console = Console(stderr=True)
        self._live = (
            Live(console=self._console, refresh_per_second=4)
            if (interactive() if live is None else live)
            else None
        )
        self._seen: dict[Row, Row] = {}
        self._status = ""

    def __enter__(self) -> ProgressTable:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.stop()

    def update(self, status: str, rows: Sequence[Row]) -> None:
        if self._live is not None:
            self._live.update(self._render(status, rows))
            return
        if status != self._status:
            self._status = status
            sys.stderr.write(f"{self._title}: {status}\n")
        for row in rows:
            stable = tuple(v for i, v in enumerate(row) if i not in self._volatile)
            key = row[:2]  # a name alone may repeat (a container named after its group)
            if self._seen.get(key) == stable:
                continue
            self._seen[key] = stable
            cells = ", ".join(f"{h}={v}" for h, v in zip(self._headers[1:], row[1:], strict=False) if v)
            sys.stderr.write(f"  {row[0]}: {cells}\n")
        sys.stderr.flush()

    def _render(self, status: str, rows: Sequence[Row]) -> Group:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for header in self._headers:
            table.add_column(header)
        for row in rows:
            table.add_row(*row)
        return Group(Text(f"{self._title}: {status}", style="bold"), table)
