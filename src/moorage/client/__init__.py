"""A typed async HTTP client for moorage, used by the CLI and the e2e tests.

It reaches the server only over HTTPS: it obtains a token from the Entra-compatible endpoint with
client credentials, then calls ARM and the directory API. Errors come back as
:class:`ApiError` carrying the server's code and message.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from moorage.core.errors import MoorageError

ARM_SCOPE = "https://management.azure.com/.default"
DEFAULT_API_VERSIONS = {
    "resourceGroups": "2024-11-01",
    "subscriptions": "2022-12-01",
    "userAssignedIdentities": "2024-11-30",
    "roleAssignments": "2022-04-01",
    "roleDefinitions": "2022-04-01",
}


class ApiError(MoorageError):
    """A failed call: ``status`` is the HTTP status, ``code``/``message`` the server's."""

    def __init__(self, status: int, code: str, message: str, body: Any = None) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.body = body

    def __str__(self) -> str:
        return f"({self.code}) {self.message}"


@dataclass(frozen=True)
class Connection:
    """How to reach and authenticate to a server (the fields of ``connection.json``)."""

    endpoint: str
    tenant_id: str
    subscription_id: str
    ca_path: str
    client_id: str
    client_secret: str

    @classmethod
    def from_file(cls, path: Path) -> Connection:
        data = json.loads(path.read_text())
        return cls(
            data["endpoint"],
            data["tenantId"],
            data["subscriptionId"],
            data["caPath"],
            data["clientId"],
            data["clientSecret"],
        )

    def with_overrides(self, values: Mapping[str, str | None]) -> Connection:
        fields = {k: v for k, v in values.items() if v}
        return Connection(**{**self.__dict__, **fields})


def _error_from(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        return ApiError(response.status_code, f"Http{response.status_code}", response.text[:500])
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return ApiError(response.status_code, str(err.get("code")), str(err.get("message")), body)
    if isinstance(body, dict) and "error" in body:
        return ApiError(
            response.status_code, str(body["error"]), str(body.get("error_description", "")), body
        )
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        err = body["errors"][0]
        return ApiError(response.status_code, str(err.get("code")), str(err.get("message")), body)
    return ApiError(response.status_code, f"Http{response.status_code}", response.text[:500], body)


class MoorageClient:
    """Async client. Use as ``async with MoorageClient(conn) as client: ...``."""

    def __init__(self, connection: Connection, *, timeout: float = 60.0) -> None:
        self.connection = connection
        verify: ssl.SSLContext | bool = True
        if connection.ca_path and os.path.exists(connection.ca_path):
            verify = ssl.create_default_context(cafile=connection.ca_path)
        # Public: other transports of this client (registry login servers, websockets) trust the same CA.
        self.tls = verify
        self._http = httpx.AsyncClient(base_url=connection.endpoint, verify=verify, timeout=timeout)
        self._tokens: dict[str, tuple[str, float]] = {}

    async def __aenter__(self) -> MoorageClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._http.aclose()

    async def token(self, scope: str = ARM_SCOPE) -> str:
        cached = self._tokens.get(scope)
        if cached and cached[1] - time.time() > 60:
            return cached[0]
        c = self.connection
        response = await self._http.post(
            f"/{c.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": c.client_id,
                "client_secret": c.client_secret,
                "scope": scope,
            },
        )
        if response.status_code != 200:
            raise _error_from(response)
        body = response.json()
        self._tokens[scope] = (body["access_token"], time.time() + int(body["expires_in"]))
        return str(body["access_token"])

    async def request(
        self,
        method: str,
        path: str,
        *,
        api_version: str | None = None,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        expect: tuple[int, ...] = (200, 201, 202, 204),
    ) -> httpx.Response:
        query = dict(params or {})
        if api_version:
            query["api-version"] = api_version
        headers = {"Authorization": f"Bearer {await self.token()}"}
        response = await self._http.request(method, path, params=query, json=json_body, headers=headers)
        if response.status_code not in expect:
            raise _error_from(response)
        return response

    async def arm(self, method: str, path: str, api_version: str, body: Any = None, **params: str) -> Any:
        """An ARM call that follows ``Azure-AsyncOperation`` to completion; returns the JSON body."""
        response = await self.request(method, path, api_version=api_version, json_body=body, params=params)
        status_url = response.headers.get("azure-asyncoperation")
        if status_url:
            await self._await_operation(status_url)
            if method == "PUT":
                response = await self.request("GET", path, api_version=api_version)
            else:
                return None
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def _await_operation(self, url: str) -> None:
        while True:
            response = await self._http.get(url, headers={"Authorization": f"Bearer {await self.token()}"})
            if response.status_code != 200:
                raise _error_from(response)
            body = response.json()
            status = body.get("status")
            if status == "Succeeded":
                return
            if status in ("Failed", "Canceled"):
                err = body.get("error") or {}
                raise ApiError(200, str(err.get("code", status)), str(err.get("message", "")), body)
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))

    # -- resources used by the CLI -------------------------------------------------------------

    def sub_path(self, suffix: str = "") -> str:
        return f"/subscriptions/{self.connection.subscription_id}{suffix}"

    async def list_value(self, path: str, api_version: str, **params: str) -> list[Any]:
        body = await self.arm("GET", path, api_version, **params)
        items: list[Any] = list(body.get("value", []))
        next_link = body.get("nextLink")
        while next_link:
            response = await self._http.get(
                next_link, headers={"Authorization": f"Bearer {await self.token()}"}
            )
            if response.status_code != 200:
                raise _error_from(response)
            page = response.json()
            items.extend(page.get("value", []))
            next_link = page.get("nextLink")
        return items

    async def role_definition_id(self, role: str) -> str:
        """Resolve a role name (``AcrPull``) or GUID to its full role definition id."""
        path = self.sub_path("/providers/Microsoft.Authorization/roleDefinitions")
        version = DEFAULT_API_VERSIONS["roleDefinitions"]
        found = await self.list_value(path, version, **{"$filter": f"roleName eq '{role}'"})
        if not found:
            found = [d for d in await self.list_value(path, version) if d["name"] == role.lower()]
        if not found:
            raise ApiError(404, "RoleDefinitionDoesNotExist", f"Role '{role}' doesn't exist.")
        return str(found[0]["id"])

    async def create_role_assignment(
        self, scope: str, role: str, principal_id: str, principal_type: str = "ServicePrincipal"
    ) -> Any:
        role_id = await self.role_definition_id(role)
        path = f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
        body = {
            "properties": {
                "roleDefinitionId": role_id,
                "principalId": principal_id,
                "principalType": principal_type,
            }
        }
        return await self.arm("PUT", path, DEFAULT_API_VERSIONS["roleAssignments"], body)

    # -- directory API -------------------------------------------------------------------------

    async def create_tenant(self, display_name: str | None = None) -> Any:
        """A new tenant and its administrator principal (needs Global Administrator)."""
        body = {"displayName": display_name} if display_name else {}
        response = await self.request("POST", "/moorage/directory/tenants", json_body=body, expect=(201,))
        return response.json()

    def _directory(self, suffix: str = "") -> str:
        return f"/moorage/directory/{self.connection.tenant_id}/servicePrincipals{suffix}"

    async def create_service_principal(self, display_name: str | None) -> Any:
        body = {"displayName": display_name} if display_name else {}
        return (await self.request("POST", self._directory(), json_body=body, expect=(201,))).json()

    async def list_service_principals(self) -> list[Any]:
        return list((await self.request("GET", self._directory(), expect=(200,))).json()["value"])

    async def get_service_principal(self, ref: str) -> Any:
        return (await self.request("GET", self._directory(f"/{ref}"), expect=(200,))).json()

    async def delete_service_principal(self, ref: str) -> None:
        await self.request("DELETE", self._directory(f"/{ref}"), expect=(204,))

    async def reset_credentials(self, ref: str, *, append: bool = False) -> Any:
        return (
            await self.request(
                "POST",
                self._directory(f"/{ref}/resetCredentials"),
                json_body={"append": append},
                expect=(200,),
            )
        ).json()
