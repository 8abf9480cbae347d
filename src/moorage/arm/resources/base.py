"""The provider-neutral resource-provider contract.

A provider owns one resource type. ARM's edge authenticates, authorizes, checks that the
subscription and resource group exist, parses the body, and then calls exactly one method here;
template deployments call the same methods with the same :class:`CallContext`. Providers raise
:class:`~moorage.core.errors.MoorageError` and never build HTTP responses.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from moorage.arm.ids import ResourceRef
from moorage.arm.lro import Operation
from moorage.arm.store import StoredResource, Subscription
from moorage.core.errors import InvalidArgument, NotFound, NotSupported
from moorage.core.jsonc import to_strict_json
from moorage.identity.records import TokenClaims


@dataclass(frozen=True)
class CallContext:
    """Who is calling, for which subscription, with which api-version, at which base URL."""

    caller: TokenClaims
    subscription: Subscription
    api_version: str
    base_url: str
    request_id: str = ""
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class PutResult:
    body: dict[str, Any]
    created: bool
    # When set, the PUT answered before the work finished: 201/200 + Azure-AsyncOperation.
    operation: Operation | None = None


@dataclass
class DeleteResult:
    existed: bool
    body: dict[str, Any] | None = None
    operation: Operation | None = None


@dataclass
class ActionResult:
    body: Any = None
    status: int = 200
    operation: Operation | None = None
    headers: dict[str, str] = field(default_factory=dict)


Scope = Literal["resource_group", "subscription", "extension"]
# Entries of a namespace's operations catalog (a name: providers have a ``list`` method).
OperationCatalog = list[dict[str, Any]]


class ResourceProvider:
    """Base class: every operation is refused until a provider implements it."""

    resource_type: ClassVar[str]
    scope: ClassVar[Scope] = "resource_group"
    # POST (and GET-style) actions the type supports, e.g. {"listCredentials": "POST"}.
    actions: ClassVar[dict[str, str]] = {}
    # Accept bodies Json.NET would (comments, unquoted keys, trailing commas); see core.jsonc.
    lenient_json: ClassVar[bool] = False

    def permission(self, method: str, action: str | None = None) -> str:
        """The Azure operation name checked against role definitions."""
        if action:
            return f"{self.resource_type}/{action}/action"
        return f"{self.resource_type}/" + {
            "GET": "read",
            "HEAD": "read",
            "PUT": "write",
            "PATCH": "write",
            "DELETE": "delete",
        }.get(method, "action")

    async def put(self, ctx: CallContext, ref: ResourceRef, body: dict[str, Any]) -> PutResult:
        raise self._unsupported("PUT", ctx)

    async def get(self, ctx: CallContext, ref: ResourceRef) -> dict[str, Any]:
        raise self._unsupported("GET", ctx)

    async def preflight(self, ctx: CallContext, ref: ResourceRef, body: dict[str, Any]) -> None:
        """Check a PUT body without acting on it (template deployment preflight); raise what
        :meth:`put` would raise for a malformed body. Default: nothing to check up front."""

    async def patch(self, ctx: CallContext, ref: ResourceRef, body: dict[str, Any]) -> dict[str, Any]:
        raise self._unsupported("PATCH", ctx)

    async def delete(self, ctx: CallContext, ref: ResourceRef) -> DeleteResult:
        raise self._unsupported("DELETE", ctx)

    async def list(self, ctx: CallContext, ref: ResourceRef) -> list[dict[str, Any]]:
        raise self._unsupported("GET", ctx)

    async def action(self, ctx: CallContext, ref: ResourceRef, name: str, body: Any) -> ActionResult:
        raise self._unsupported(f"POST {name}", ctx)

    async def on_scope_deleted(self, ctx: CallContext, scope: str) -> None:
        """Called when a resource group (or parent resource) at ``scope`` is deleted."""

    def operation_catalog(self) -> OperationCatalog:
        """Entries of ``GET /providers/{namespace}/operations`` this provider contributes."""
        return []

    def _unsupported(self, what: str, ctx: CallContext) -> NotSupported:
        return NotSupported(
            f"The operation '{what}' is not supported for resource type '{self.resource_type}' "
            f"with api version '{ctx.api_version}'.",
            code="UnsupportedOperation",
        )


# -- helpers shared by providers ------------------------------------------------------------------


def not_found(ref: ResourceRef) -> NotFound:
    """ARM's ``ResourceNotFound`` for a provider resource."""
    where = f"under resource group '{ref.resource_group}' " if ref.resource_group else ""
    return NotFound(
        f"The Resource '{ref.resource_type}/{ref.name}' {where}was not found. For more details "
        "please go to https://aka.ms/ARMResourceNotFoundFix",
        code="ResourceNotFound",
    )


def render_tracked(res: StoredResource) -> dict[str, Any]:
    """``{id, name, type, location, tags, ...body}`` for a tracked resource."""
    out: dict[str, Any] = {"id": res.id, "name": res.name, "type": res.type}
    if res.location is not None:
        out["location"] = res.location
    out["tags"] = res.tags or {}
    out.update(res.body)
    return out


def require_object(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(
            f"The request content was invalid and could not be deserialized: 'Error converting "
            f"value to type 'Object'. Path '{path}'.'.",
            code="InvalidRequestContent",
            target=path,
        )
    return value


def parse_tags(value: Any, path: str = "tags") -> dict[str, str] | None:
    """Validate ARM tags: at most 50, names <= 512 and values <= 256 characters, strings only."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidArgument(
            "The request content was invalid and could not be deserialized: 'Error converting "
            f"value to type 'Dictionary`2[String,String]'. Path '{path}'.'.",
            code="InvalidRequestContent",
            target=path,
        )
    if len(value) > 50:
        raise InvalidArgument(
            "The tags count exceeds the limit of 50 tags per resource.", code="InvalidTagCount", target=path
        )
    for name, tag in value.items():
        if not name or len(name) > 512 or re.search(r"[<>%&\\?/]", name):
            raise InvalidArgument(
                f"The tag name '{name}' has invalid characters or is too long (512 at most).",
                code="InvalidTagNameCharacters",
                target=path,
            )
        if len(tag) > 256:
            raise InvalidArgument(
                f"The value of tag '{name}' is too long; 256 characters at most.",
                code="InvalidTagValueLength",
                target=path,
            )
    return dict(value)


def parse_json_body(raw: bytes, *, lenient: bool = False) -> Any:
    """Parse a request body with ARM's ``InvalidRequestContent`` message on failure.

    ``lenient`` also accepts what Json.NET (ARM's parser) does beyond JSON: comments, unquoted
    property names, single-quoted strings and trailing commas.
    """
    if not raw.strip():
        return None
    try:
        if lenient:
            return json.loads(to_strict_json(raw.decode("utf-8")))
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise InvalidArgument(
            "The request content was invalid and could not be deserialized: 'The body is not valid UTF-8.'.",
            code="InvalidRequestContent",
        ) from exc
    except json.JSONDecodeError as exc:
        raise InvalidArgument(
            "The request content was invalid and could not be deserialized: "
            f"'{exc.msg}. Path '', line {exc.lineno}, position {exc.colno}.'.",
            code="InvalidRequestContent",
        ) from exc
    except (ValueError, RecursionError) as exc:
        # Integers beyond Python's digit limit, and nesting deeper than the recursion limit.
        raise InvalidArgument(
            "The request content was invalid and could not be deserialized: 'The JSON has a number "
            "that is too large or is nested too deeply.'.",
            code="InvalidRequestContent",
        ) from exc


class ProviderRegistry:
    """Resource type → provider (case-insensitive). Shared by the ARM edge and deployments."""

    def __init__(self) -> None:
        self._by_type: dict[str, ResourceProvider] = {}

    def add(self, provider: ResourceProvider) -> None:
        self._by_type[provider.resource_type.lower()] = provider

    def get(self, resource_type: str) -> ResourceProvider | None:
        return self._by_type.get(resource_type.lower())

    def namespaces(self) -> set[str]:
        return {t.split("/", 1)[0] for t in self._by_type}

    def all(self) -> list[ResourceProvider]:
        return list(self._by_type.values())
