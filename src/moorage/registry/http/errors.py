"""The OCI error envelope and the registry edge's one mapping from error kind to status."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from moorage.core.errors import (
    AlreadyExists,
    Conflict,
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

# Distribution-spec codes by kind, for errors raised without one (e.g. a generic InvalidArgument).
_FALLBACK = (
    (Unauthenticated, 401, "UNAUTHORIZED"),
    (PermissionDenied, 403, "DENIED"),
    (NotFound, 404, "NAME_UNKNOWN"),
    (AlreadyExists, 409, "UNSUPPORTED"),
    (Conflict, 409, "UNSUPPORTED"),
    (QuotaExceeded, 429, "TOOMANYREQUESTS"),
    (InvalidArgument, 400, "UNSUPPORTED"),
    (NotSupported, 405, "UNSUPPORTED"),
    (Unavailable, 503, "UNAVAILABLE"),
    (Internal, 500, "UNKNOWN"),
)
OCI_CODES = {
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
    "TAG_INVALID",
    "UNAVAILABLE",
    "UNKNOWN",
}


def oci_status_and_code(error: MoorageError) -> tuple[int, str]:
    """Status from the error's kind (or its own ``http_status`` where the spec wants another,
    e.g. 416 for an out-of-order chunk); code from the error when it is an OCI code."""
    for kind, status, fallback in _FALLBACK:
        if isinstance(error, kind):
            code = error.code if error.code in OCI_CODES else fallback
            return int(getattr(error, "http_status", status)), code
    return 500, "UNKNOWN"


def oci_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        entry["detail"] = detail
    return {"errors": [entry]}


def oci_error(request: Request, error: MoorageError) -> Response:
    status, code = oci_status_and_code(error)
    headers = {"Docker-Distribution-API-Version": "registry/2.0"}
    challenge = getattr(request.state, "challenge", None)
    if challenge and (status == 401 or (status == 403 and 'error="insufficient_scope"' in challenge)):
        headers["WWW-Authenticate"] = challenge
    extra = getattr(error, "headers", None)
    if isinstance(extra, dict):
        headers.update(extra)
    detail = getattr(error, "detail", None)
    return json_response(oci_body(code, error.message, detail), status, headers)
