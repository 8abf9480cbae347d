"""Structured logging with secrets redacted before any line is written.

Every log line goes through :func:`redact`, which blanks values under secret-looking keys and
scrubs bearer tokens, JWTs and basic-auth blobs from free text. Code should still never log a
secret on purpose: this is the safety net, not the policy.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any, TextIO, cast

import structlog

REDACTED = "***"

_SECRET_KEYS = re.compile(
    r"(pass(word)?|secret|token|authorization|securevalue|credential|assertion|private|key$)",
    re.IGNORECASE,
)
# JWT-shaped strings (three base64url parts, the first starting like a JSON header) and the values
# of Authorization-style schemes.
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9+/=._\-]{8,}")
_FORM_SECRET = re.compile(
    r"(?i)\b(client_secret|password|refresh_token|access_token|secureValue)=([^&\s\"']+)"
)


def scrub_text(text: str) -> str:
    """Remove token-like substrings from free text."""
    text = _JWT.sub(REDACTED, text)
    text = _SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _FORM_SECRET.sub(lambda m: f"{m.group(1)}={REDACTED}", text)


def redact(value: Any, key: str = "") -> Any:
    """Return ``value`` with secrets removed, recursing through mappings and sequences."""
    if (
        key
        and _SECRET_KEYS.search(key)
        and not key.endswith(("_id", "Id", "_kind", "_type", "_file", "_path", "Path"))
    ):
        return REDACTED if value not in (None, "") else value
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def _redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return {k: (redact(v, k) if k != "event" else redact(v)) for k, v in event_dict.items()}


class _Tee:
    """Write each line to several streams (stderr and the log file)."""

    def __init__(self, *streams: TextIO) -> None:
        self._streams = streams

    def write(self, data: str) -> int:
        for stream in self._streams:
            stream.write(data)
            stream.flush()
        return len(data)

    def flush(self) -> None:
        for stream in self._streams:
            stream.flush()


def configure(log_file: Path | None = None, level: str = "info") -> None:
    """Configure structlog (and the stdlib loggers it replaces) for the server process.

    Lines are JSON, one per event, on stderr and, when given, appended to ``log_file``.
    """
    streams: list[TextIO] = [sys.stderr]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        streams.append(log_file.open("a", encoding="utf-8"))
    tee = cast(TextIO, _Tee(*streams))
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_processor,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=tee),
        cache_logger_on_first_use=False,
    )
    # Third-party stdlib logging (uvicorn, sqlalchemy) goes through the same redaction.
    handler = logging.StreamHandler(tee)
    handler.setFormatter(_RedactingFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub_text(super().format(record))


def get_logger(name: str) -> Any:
    """A structlog logger bound to ``component=name``."""
    return structlog.get_logger(component=name)
