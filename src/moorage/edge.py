"""Glue shared by the HTTP edges (ARM, OAuth2/Entra, OCI): one place where exceptions become
responses.

Each edge supplies an :class:`ErrorMapper` (its one table from error kind to status and envelope).
:func:`guarded` wraps an endpoint so that a :class:`~moorage.core.errors.MoorageError` is rendered
by that mapper and any other exception becomes an ``Internal`` error with a correlation id: the
traceback is logged once, the client sees only the id.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from moorage.core.errors import Internal, InvalidArgument, MoorageError
from moorage.core.log import get_logger

log = get_logger("edge")

Endpoint = Callable[[Request], Awaitable[Response]]


# An edge's one table from error to response.
ErrorMapper = Callable[[Request, MoorageError], Response]


def guarded(mapper: ErrorMapper) -> Callable[[Endpoint], Endpoint]:
    """Decorate an endpoint so every failure leaves through ``mapper``."""

    def wrap(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def run(request: Request) -> Response:
            try:
                return await endpoint(request)
            except MoorageError as error:
                return mapper(request, error)
            except Exception:
                correlation_id = str(uuid.uuid4())
                log.exception(
                    "unhandled error",
                    correlation_id=correlation_id,
                    method=request.method,
                    path=request.url.path,
                )
                internal = Internal(
                    f"The server encountered an internal error. Correlation id: {correlation_id}.",
                    correlation_id=correlation_id,
                )
                return mapper(request, internal)

        return run

    return wrap


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Compact JSON with the content type every Azure client expects."""
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        headers=headers,
        media_type="application/json; charset=utf-8",
    )


def base_url(request: Request) -> str:
    """``https://host:port`` as the client addressed us (absolute URLs are built from Host)."""
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"


async def form_body(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a dict (last value wins)."""
    raw = await request.body()
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise InvalidArgument("The request body is not valid UTF-8.") from exc
    return dict(pairs)
