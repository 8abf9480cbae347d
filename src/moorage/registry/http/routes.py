"""The registry edge as one ASGI application (served on every registry's login-server port and
on the platform channel)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from moorage.edge import guarded
from moorage.registry.content import Content
from moorage.registry.http.acr import AcrMetadataApi
from moorage.registry.http.errors import oci_error
from moorage.registry.http.gate import Gate
from moorage.registry.http.oauth import TokenService
from moorage.registry.http.v2 import DistributionApi

ALL = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


def registry_app(gate: Gate, content: Content) -> Starlette:
    oci = guarded(oci_error)
    v2 = DistributionApi(gate, content)
    acr = AcrMetadataApi(gate, content)
    tokens = TokenService(gate)
    return Starlette(
        routes=[
            Route("/v2/", oci(v2.base), methods=["GET", "HEAD"]),
            Route("/v2", oci(v2.base), methods=["GET", "HEAD"]),
            Route("/v2/_catalog", oci(v2.catalog), methods=["GET"]),
            Route("/v2/{path:path}", oci(v2.dispatch), methods=ALL),
            Route("/oauth2/exchange", oci(tokens.exchange), methods=["POST"]),
            Route("/oauth2/token", oci(tokens.token), methods=["GET", "POST"]),
            Route("/acr/v1/_catalog", oci(acr.catalog), methods=["GET"]),
            Route("/acr/v1/{path:path}", oci(acr.dispatch), methods=ALL),
        ]
    )
