"""End to end: ``az acr`` (the real Azure CLI from ``.venv-az``) against a real moorage server.

Same isolated profile as ``test_azcli.py`` (own ``AZURE_CONFIG_DIR``, our CA in ``REQUESTS_CA_BUNDLE``,
MSAL instance discovery off, local cloud registered from ``/metadata/endpoints``, service-principal
login). The CLI finds the login server through ARM and uses ``properties.loginServer`` verbatim
(docs: clients.md section 6.2); an image is pushed in between with skopeo.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.registry_support import cert_dir, skopeo
from tests.e2e.test_azcli import AzCli, require_az, unique
from tests.images import busybox_image, write_layout
from tests.server import RunningServer

pytestmark = pytest.mark.azcli


@pytest.fixture(scope="module")
def az(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> AzCli:
    """An isolated CLI profile: local cloud registered and selected, bootstrap principal logged in."""
    require_az()
    cli = AzCli(server, tmp_path_factory.mktemp("azure-config-acr"))
    cli.register_cloud()
    cli.json(*cli.login_args(server.client_secret))
    return cli


@pytest.fixture(scope="module")
def group(az: AzCli) -> Iterator[str]:
    name = unique("azcli-acr-rg")
    az.json("group", "create", "--name", name, "--location", "westus")
    yield name
    az.run("group", "delete", "--name", name, "--yes", "--no-wait")


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def test_acr_lifecycle_with_push(az: AzCli, server: RunningServer, group: str, tmp_path: Path) -> None:
    name = f"azcli{uuid.uuid4().hex[:10]}"
    created = az.json("acr", "create", "--resource-group", group, "--name", name, "--sku", "Basic")
    assert created["name"] == name
    assert created["type"] == "Microsoft.ContainerRegistry/registries"
    assert created["sku"]["name"] == "Basic"
    assert created["provisioningState"] == "Succeeded"
    assert created["adminUserEnabled"] is False
    login = created["loginServer"]
    assert login.startswith("127.0.0.1:"), login

    shown = az.json("acr", "show", "--name", name)
    assert (shown["id"], shown["loginServer"]) == (created["id"], login)

    updated = az.json("acr", "update", "--name", name, "--admin-enabled", "true")
    assert updated["adminUserEnabled"] is True
    credentials = az.json("acr", "credential", "show", "--name", name)
    assert credentials["username"] == name
    assert [p["name"] for p in credentials["passwords"]] == ["password", "password2"]
    password = credentials["passwords"][0]["value"]

    # An image pushed with the admin credentials the CLI showed.
    layout = write_layout(tmp_path / "layout", "v1", busybox_image())
    certs = str(cert_dir(server.ca_path, tmp_path / "certs"))
    pushed = skopeo(
        "copy",
        "--dest-cert-dir",
        certs,
        "--dest-creds",
        f"{name}:{password}",
        f"oci:{layout}:v1",
        f"docker://{login}/hello/busybox:v1",
    )
    assert pushed.returncode == 0, pushed.stderr

    exposed = az.json("acr", "login", "--name", name, "--expose-token")
    assert exposed["loginServer"] == login
    claims = _claims(exposed["accessToken"])
    assert claims["aud"] == login
    assert claims["iss"] == "Azure Container Registry"

    assert az.json("acr", "repository", "list", "--name", name) == ["hello/busybox"]
    assert az.json("acr", "repository", "show-tags", "--name", name, "--repository", "hello/busybox") == [
        "v1"
    ]

    az.run("acr", "delete", "--name", name, "--yes")
    missing = az.run("acr", "show", "--name", name, expect_success=False)
    assert "could not be found" in missing.stderr, missing.stderr
