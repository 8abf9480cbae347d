"""The one error hierarchy of moorage.

Every failure that can reach a client is a :class:`MoorageError`. Each edge (ARM, OAuth2, OCI)
owns one table that maps an error's *kind* (its class in the tree below) or its stable ``code`` to
an HTTP status and an envelope. Subsystems subclass a kind and set a stable code; they never pick
HTTP statuses themselves.

::

    MoorageError(code, message, target=None, details=(), additional_info=())
     ├── InvalidArgument      bad input: malformed body, invalid name, unknown field value
     ├── NotFound             the addressed thing does not exist
     ├── AlreadyExists        create of something that exists and may not be overwritten
     ├── Conflict             valid request in the wrong state (busy, in use, precondition)
     │    └── Canceled         long-running work stopped because a client asked to cancel it
     ├── Unauthenticated      no credential, or one we cannot verify
     ├── PermissionDenied     authenticated, but not allowed
     ├── QuotaExceeded        a limit was reached
     ├── Unavailable          transient: retry later
     ├── NotSupported         valid, but not something this host can do
     └── Internal             a bug; carries a correlation id, never a traceback to clients

Third-party exceptions are translated where the library is called (``raise ... from exc``).
Messages must never contain secrets: callers pass identifiers, never credentials.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AdditionalInfo:
    """ARM's ``additionalInfo`` entry: a typed, machine-readable blob attached to an error."""

    type: str
    info: Mapping[str, Any]


@dataclass(frozen=True)
class ErrorDetail:
    """A nested error (``details[]``) with the same shape as the outer one."""

    code: str
    message: str
    target: str | None = None
    details: Sequence[ErrorDetail] = ()
    additional_info: Sequence[AdditionalInfo] = field(default=())


class MoorageError(Exception):
    """Base of every error that may reach a client.

    ``code`` is stable and machine-readable (Azure's codes where Azure has one), ``message`` is
    for humans and free of secrets, ``target`` names the offending field when there is one.
    """

    default_code = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        target: str | None = None,
        details: Sequence[ErrorDetail] = (),
        additional_info: Sequence[AdditionalInfo] = (),
    ) -> None:
        super().__init__(message)
        self.code = code or self.default_code
        self.message = message
        self.target = target
        self.details = tuple(details)
        self.additional_info = tuple(additional_info)

    def as_detail(self) -> ErrorDetail:
        """This error as a nested detail (for aggregating errors, e.g. ``DeploymentFailed``)."""
        return ErrorDetail(self.code, self.message, self.target, self.details, self.additional_info)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class InvalidArgument(MoorageError):
    default_code = "InvalidRequestContent"


class NotFound(MoorageError):
    default_code = "NotFound"


class AlreadyExists(MoorageError):
    default_code = "Conflict"


class Conflict(MoorageError):
    default_code = "Conflict"


class Canceled(Conflict):
    """Long-running work ended because a client canceled it (its operation ends ``Canceled``)."""

    default_code = "Canceled"


class Unauthenticated(MoorageError):
    default_code = "AuthenticationFailed"


class PermissionDenied(MoorageError):
    default_code = "AuthorizationFailed"


class QuotaExceeded(MoorageError):
    default_code = "QuotaExceeded"


class Unavailable(MoorageError):
    default_code = "ServiceUnavailable"


class NotSupported(MoorageError):
    default_code = "NotSupported"


class Internal(MoorageError):
    """A bug. ``correlation_id`` ties the client's answer to the one logged traceback."""

    default_code = "InternalServerError"

    def __init__(self, message: str, *, correlation_id: str, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.correlation_id = correlation_id
