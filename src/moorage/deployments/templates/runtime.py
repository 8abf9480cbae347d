"""Runtime values: what ``reference()`` and ``list*()`` need from deployed resources.

The template package never touches resources. When an expression calls ``reference(id, ...)`` or
``listKeys(id, ...)``, the evaluator builds a :class:`RuntimeCall` and asks the :class:`Resolver`
the engine passed in. The protocol is synchronous (evaluation is pure CPU work); an engine whose
lookups are asynchronous uses :meth:`LazyValue.resolve
<moorage.deployments.templates.plan.LazyValue.resolve>` with an :class:`AsyncResolver`: it
evaluates, and each time the evaluator needs a value it has not fetched yet
(:class:`MissingRuntimeValue`), awaits it and evaluates again.

What a resolver returns for each call:

* ``reference(id, apiVersion)`` (``full`` false): the resource's ``properties`` object.
* ``reference(id, apiVersion, 'Full')``: the whole resource as GET returns it (``id``, ``name``,
  ``type``, ``location``, ``identity``, ``properties``... plus ``apiVersion``).
* ``list*(id, apiVersion[, body])``: the response of ``POST {id}/{function}?api-version=...``
  (``function`` as the template spells it, e.g. ``listCredentials``).

Errors a resolver raises (:class:`~moorage.core.errors.MoorageError` subclasses, e.g. a
``ResourceNotFound``) propagate unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from moorage.deployments.templates.values import Json, compact_json


@dataclass(frozen=True)
class RuntimeCall:
    """One ``reference()`` or ``list*()`` call, with its arguments evaluated."""

    function: str  # "reference", or the list function as written ("listKeys")
    resource_id: str
    api_version: str | None  # None: not given and not a resource of the template; resolver's choice
    full: bool = False
    body: Json = None

    @property
    def is_reference(self) -> bool:
        return self.function.casefold() == "reference"

    def key(self) -> tuple[str, str, str, bool, str]:
        """A hashable identity (ids and function names compare case-insensitively)."""
        return (
            self.function.casefold(),
            self.resource_id.casefold(),
            (self.api_version or "").casefold(),
            self.full,
            compact_json(self.body),
        )


class MissingRuntimeValue(Exception):
    """The evaluator needs ``call`` and has no resolver, or the resolver does not have it yet."""

    def __init__(self, call: RuntimeCall) -> None:
        super().__init__(f"{call.function}({call.resource_id}) is not resolved yet")
        self.call = call


class Resolver(Protocol):
    """Answers runtime calls synchronously; raises :class:`MissingRuntimeValue` for a call it
    cannot answer yet."""

    def resolve(self, call: RuntimeCall) -> Json: ...


class AsyncResolver(Protocol):
    """Answers runtime calls by looking the resources up (the engine's side)."""

    async def resolve(self, call: RuntimeCall) -> Json: ...


class CachedResolver:
    """A :class:`Resolver` over values fetched so far (used by the async evaluation loop, and a
    handy fixed resolver in tests)."""

    def __init__(self, answers: dict[tuple[str, str, str, bool, str], Json] | None = None) -> None:
        self._answers: dict[tuple[str, str, str, bool, str], Json] = dict(answers or {})

    def add(self, call: RuntimeCall, value: Json) -> None:
        self._answers[call.key()] = value

    def resolve(self, call: RuntimeCall) -> Json:
        try:
            return self._answers[call.key()]
        except KeyError:
            raise MissingRuntimeValue(call) from None
