"""ARM's error envelope and the one table mapping error kinds to HTTP statuses.

Every ARM failure leaves as ``{"error": {code, message, target, details, additionalInfo}}``.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from moorage.core.errors import (
    AdditionalInfo,
    AlreadyExists,
    Conflict,
    ErrorDetail,
    Internal,
    InvalidArgument,
    MoorageError,
    NotFound,
    NotSupported,
    PermissionDenied,
    QuotaExceeded,
    Unauthenticated,
    Unavailable,
)
from moorage.edge import json_response

_STATUS: tuple[tuple[type[MoorageError], int], ...] = (
    (InvalidArgument, 400),
    (NotFound, 404),
    (AlreadyExists, 409),
    (Conflict, 409),
    (Unauthenticated, 401),
    (PermissionDenied, 403),
    (QuotaExceeded, 400),
    (Unavailable, 503),
    (NotSupported, 400),
    (Internal, 500),
)


def status_for(error: MoorageError) -> int:
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


def _info(info: AdditionalInfo) -> dict[str, Any]:
    return {"type": info.type, "info": dict(info.info)}


def detail_body(detail: ErrorDetail) -> dict[str, Any]:
    return {
        "code": detail.code,
        "message": detail.message,
        "target": detail.target,
        "details": [detail_body(d) for d in detail.details],
        "additionalInfo": [_info(i) for i in detail.additional_info],
    }


def error_body(error: MoorageError) -> dict[str, Any]:
    """The inner ``error`` object (also used in operation-status and deployment bodies)."""
    return detail_body(error.as_detail())


def arm_error(request: Request, error: MoorageError) -> Response:
    """Render ``error`` as ARM does, with a ``WWW-Authenticate`` challenge on 401."""
    status = status_for(error)
    headers = {"x-ms-failure-cause": "gateway" if status in (401, 403) else "service"}
    if status == 401:
        tenant = getattr(request.state, "expected_tenant", None) or "common"
        authority = f"{request.url.scheme}://{request.headers.get('host', '')}/{tenant}"
        description = error.message.replace('"', "'")
        headers["WWW-Authenticate"] = (
            f'Bearer authorization_uri="{authority}", error="invalid_token", '
            f'error_description="{description}"'
        )
    headers["x-ms-request-id"] = getattr(request.state, "request_id", str(uuid.uuid4()))
    return json_response({"error": error_body(error)}, status, headers)
