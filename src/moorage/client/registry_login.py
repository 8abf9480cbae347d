"""Logging in to a registry's data plane with the caller's Entra identity, as ``az acr login`` does.

The client's ARM token is exchanged at the registry's ``/oauth2/exchange`` for an ACR refresh
token, which docker, podman, skopeo and oras accept as the password of the null-GUID user. The
registry's firewall judges the exchange like any other request from this machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from moorage.client import MoorageClient, _error_from

NULL_USER = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class RegistryLogin:
    """Credentials for ``login_server``: ``username`` is the null GUID, ``password`` a refresh token."""

    login_server: str
    username: str
    password: str


async def exchange_token(client: MoorageClient, login_server: str) -> RegistryLogin:
    """Exchange the client's ARM token for a refresh token of the registry at ``login_server``.

    Raises :class:`~moorage.client.ApiError` with the registry's code (``DENIED`` when the
    firewall refuses this machine, ``UNAUTHORIZED`` for a token it does not accept).
    """
    token = await client.token()
    async with httpx.AsyncClient(verify=client.tls, timeout=30) as http:
        response = await http.post(
            f"https://{login_server}/oauth2/exchange",
            data={
                "grant_type": "access_token",
                "service": login_server,
                "tenant": client.connection.tenant_id,
                "access_token": token,
            },
        )
    if response.status_code != 200:
        raise _error_from(response)
    return RegistryLogin(login_server, NULL_USER, str(response.json()["refresh_token"]))
