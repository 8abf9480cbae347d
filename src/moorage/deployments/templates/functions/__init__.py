"""The built-in template functions, registered by name in :data:`REGISTRY` when this package is
imported. One module per family: :mod:`.strings`, :mod:`.collections`, :mod:`.logic` (comparison,
logical, numeric), :mod:`.datetimes`, :mod:`.deployment` (deployment and scope),
:mod:`.resources` (ids, ``reference``, ``list*``), :mod:`.lambdas`, :mod:`.user`."""

from __future__ import annotations

from moorage.deployments.templates.function_registry import REGISTRY
from moorage.deployments.templates.functions import (  # noqa: F401 - imported to register
    collections,
    datetimes,
    deployment,
    lambdas,
    logic,
    resources,
    strings,
    user,
)

__all__ = ["REGISTRY"]
