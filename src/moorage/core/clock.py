"""Time, behind a seam so that expiry logic is testable without sleeping."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Source of the current time. ``now()`` is timezone-aware UTC."""

    def now(self) -> datetime: ...

    def timestamp(self) -> float: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def timestamp(self) -> float:
        return time.time()


def isoformat(moment: datetime) -> str:
    """ARM's timestamp form: ISO 8601, UTC, with a ``Z`` suffix and 7 fractional digits at most."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
