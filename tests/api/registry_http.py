"""Plain-HTTPS clients for a registry's login server, principals and role assignments, for the
registry auth and firewall tests (exact statuses, headers and bodies)."""

from __future__ import annotations

import base64
import json
import ssl
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.api.conftest import RawArm
from tests.images import Image, build_image, tar_layer

NULL_GUID = "00000000-0000-0000-0000-000000000000"
ROLE_API = "2022-04-01"
ROLES = {
    "AcrPull": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
    "AcrPush": "8311e382-0749-4cb8-b61a-304f252e45ec",
    "AcrDelete": "c2f4ef07-c644-48eb-af81-4b1b4947fb11",
    "Reader": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
}
DENIED_BODY = {"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]}


def firewall_body(ip: str) -> dict[str, Any]:
    message = (
        f"client with IP '{ip}' is not allowed access. Refer https://aka.ms/acr/firewall to grant access."
    )
    return {"errors": [{"code": "DENIED", "message": message}]}


def small_image(text: str = "hello") -> Image:
    return build_image([tar_layer({"hello.txt": text.encode()})], cmd=["/bin/true"])


def basic(username: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def jwt_payload(token: str) -> dict[str, Any]:
    """Decode a JWT's payload the way azure-containerregistry does: plain ``b64decode``."""
    return dict(json.loads(base64.b64decode(token.split(".")[1])))


class LoginServer:
    """A registry's login server over HTTPS (optionally from another loopback source address)."""

    def __init__(self, login_server: str, ca_path: str, *, local_address: str | None = None) -> None:
        self.login_server = login_server
        transport = httpx.HTTPTransport(
            verify=ssl.create_default_context(cafile=ca_path), local_address=local_address
        )
        self.http = httpx.Client(base_url=f"https://{login_server}", transport=transport, timeout=30)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> LoginServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tokens ---------------------------------------------------------------------------------
    def token_response(self, *scopes: str, headers: dict[str, str] | None = None) -> httpx.Response:
        params = [("service", self.login_server), *(("scope", s) for s in scopes)]
        return self.http.get("/oauth2/token", params=params, headers=headers)

    def access_token(self, *scopes: str, headers: dict[str, str] | None = None) -> str:
        response = self.token_response(*scopes, headers=headers)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def exchange(self, aad_token: str, tenant: str | None = None) -> httpx.Response:
        form = {"grant_type": "access_token", "service": self.login_server, "access_token": aad_token}
        if tenant:
            form["tenant"] = tenant
        return self.http.post("/oauth2/exchange", data=form)

    def refreshed(self, refresh_token: str, *scopes: str) -> httpx.Response:
        form: dict[str, Any] = {
            "grant_type": "refresh_token",
            "service": self.login_server,
            "refresh_token": refresh_token,
            "scope": list(scopes),
        }
        return self.http.post("/oauth2/token", data=form)

    # -- content --------------------------------------------------------------------------------
    def manifest(self, repo: str, reference: str, headers: dict[str, str] | None = None) -> httpx.Response:
        accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        return self.http.get(f"/v2/{repo}/manifests/{reference}", headers={**accept, **(headers or {})})

    def delete_manifest(
        self, repo: str, digest: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return self.http.delete(f"/v2/{repo}/manifests/{digest}", headers=headers)

    def push(
        self, repo: str, tag: str, image: Image | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """Push ``image`` blob by blob; the first failing response, or the manifest PUT's."""
        image = image or small_image()
        for blob in image.blobs:
            started = self.http.post(f"/v2/{repo}/blobs/uploads/", headers=headers)
            if started.status_code != 202:
                return started
            location = started.headers["Location"]
            done = self.http.put(
                location,
                params={"digest": blob.digest},
                content=blob.data,
                headers={**(headers or {}), "Content-Type": "application/octet-stream"},
            )
            if done.status_code != 201:
                return done
        return self.http.put(
            f"/v2/{repo}/manifests/{tag}",
            content=image.manifest.data,
            headers={**(headers or {}), "Content-Type": image.manifest.media_type},
        )


# -- principals and role assignments ------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    app_id: str
    object_id: str
    secret: str


def create_principal(raw: RawArm, name: str = "registry-test") -> Principal:
    """A new service principal (no roles) through the directory API."""
    response = raw.http.post(
        f"/moorage/directory/{raw.server.tenant_id}/servicePrincipals",
        json={"displayName": name},
        headers=bearer(raw.token),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Principal(body["appId"], body["id"], body["password"])


def delete_principal(raw: RawArm, principal: Principal) -> None:
    raw.http.delete(
        f"/moorage/directory/{raw.server.tenant_id}/servicePrincipals/{principal.app_id}",
        headers=bearer(raw.token),
    )


def assign_role(raw: RawArm, scope: str, role: str, principal_id: str) -> str:
    """Assign a built-in role (by name) at ``scope``; returns the assignment's id."""
    sub = raw.server.subscription_id
    definition = f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{ROLES[role]}"
    path = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
    response = raw.request(
        "PUT",
        path,
        api_version=ROLE_API,
        json={
            "properties": {
                "roleDefinitionId": definition,
                "principalId": principal_id,
                "principalType": "ServicePrincipal",
            }
        },
    )
    assert response.status_code == 201, response.text
    return path


def unassign_role(raw: RawArm, assignment_id: str) -> None:
    response = raw.request("DELETE", assignment_id, api_version=ROLE_API)
    assert response.status_code in (200, 204), response.text
