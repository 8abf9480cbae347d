"""The platform's image access check and its cause classifier, against a real in-process
moorage: the registry's firewall, RBAC and trusted-services bypass decide for real, and each
failure keeps ACI's exact error while ``additionalInfo`` names the cause, the evidence and a fix."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from moorage.config import Settings
from moorage.core.errors import MoorageError
from moorage.instances.access import DIAGNOSIS_TYPE, RegistryCredential, inaccessible_message
from tests.api.test_registry_firewall import InProcess, provisioned, rules

GROUP = "cg-access"
in_module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def state(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcess]:
    async with provisioned(
        Settings(home=tmp_path_factory.mktemp("access") / "home", port=0)
    ) as provisioned_state:
        yield provisioned_state


def diagnosis(error: MoorageError) -> dict[str, Any]:
    entries = [i for i in error.additional_info if i.type == DIAGNOSIS_TYPE]
    assert len(entries) == 1, error.additional_info
    return dict(entries[0].info)


def admin_credential(state: InProcess, password: str | None = None) -> RegistryCredential:
    user, secret = base64.b64decode(state.admin["Authorization"].split()[1]).decode().split(":", 1)
    return RegistryCredential(state.login, username=user, password=password or secret)


async def failure_of(state: InProcess, image: str, credentials: list[RegistryCredential]) -> MoorageError:
    with pytest.raises(MoorageError) as info:
        await state.moorage.image_access.check(GROUP, image, credentials)
    return info.value


@in_module_loop
async def test_managed_identity_with_acr_pull_passes_the_firewall_via_bypass(state: InProcess) -> None:
    await state.patch_registry(networkRuleSet=rules(), networkRuleBypassOptions="AzureServices")
    resolved = await state.moorage.image_access.check(
        GROUP, f"{state.login}/app:v1", [RegistryCredential(state.login, identity=state.identity_id)]
    )
    assert resolved.manifest_digest.startswith("sha256:")


@in_module_loop
async def test_azure_form_login_server_resolves_to_the_local_registry(state: InProcess) -> None:
    await state.patch_registry(networkRuleSet=rules(), networkRuleBypassOptions="AzureServices")
    alias = "platformreg.azurecr.io"
    resolved = await state.moorage.image_access.check(
        GROUP, f"{alias}/app:v1", [RegistryCredential(alias, identity=state.identity_id)]
    )
    assert resolved.platform.architecture == "amd64"


@in_module_loop
async def test_bypass_disabled_is_named_with_the_registry_text(state: InProcess) -> None:
    await state.patch_registry(networkRuleSet=rules(), networkRuleBypassOptions="None")
    image = f"{state.login}/app:v1"
    error = await failure_of(state, image, [RegistryCredential(state.login, identity=state.identity_id)])
    found = diagnosis(error)
    assert (error.code, error.message) == ("InaccessibleImage", inaccessible_message(image, GROUP))
    assert found["cause"] == "FirewallBypassDisabled"
    assert found["evidence"]["registryCode"] == "DENIED"
    assert "client with IP '100.64.0.1' is not allowed access" in found["evidence"]["registryMessage"]
    assert found["evidence"]["registry"]["networkRuleBypassOptions"] == "None"
    assert "--allow-trusted-services true" in found["fix"]


@in_module_loop
async def test_username_password_never_bypasses_the_firewall(state: InProcess) -> None:
    await state.patch_registry(networkRuleSet=rules(), networkRuleBypassOptions="AzureServices")
    error = await failure_of(state, f"{state.login}/app:v1", [admin_credential(state)])
    found = diagnosis(error)
    assert found["cause"] == "FirewallBlocksPlatform"
    assert found["evidence"]["credentialKind"] == "adminUser"
    assert "managed identity" in found["fix"]


@in_module_loop
async def test_identity_without_a_role_is_missing_role(state: InProcess) -> None:
    await state.patch_registry(networkRuleSet=rules(default="Allow"))
    stranger = state.identity_id.rsplit("/", 1)[0] + f"/stranger{uuid.uuid4().hex[:6]}"
    created = await state.arm.put(stranger, params={"api-version": "2023-01-31"}, json={"location": "westus"})
    assert created.status_code == 201, created.text
    error = await failure_of(
        state, f"{state.login}/app:v1", [RegistryCredential(state.login, identity=stranger)]
    )
    found = diagnosis(error)
    assert found["cause"] == "MissingRole"
    assert found["evidence"]["principalId"] == created.json()["properties"]["principalId"]
    assert found["fix"].startswith("az role assignment create")
    assert "AcrPull" in found["fix"]


@in_module_loop
async def test_wrong_password_is_credentials_rejected(state: InProcess) -> None:
    await state.patch_registry(networkRuleSet=rules(default="Allow"))
    error = await failure_of(state, f"{state.login}/app:v1", [admin_credential(state, "wrong")])
    assert diagnosis(error)["cause"] == "CredentialsRejected"
    assert "wrong" not in str(diagnosis(error))


@pytest.mark.parametrize(
    ("image", "cause"), [("app:missing", "TagNotFound"), ("nothere:v1", "RepositoryNotFound")]
)
@in_module_loop
async def test_missing_content_is_named(state: InProcess, image: str, cause: str) -> None:
    await state.patch_registry(networkRuleSet=rules(default="Allow"))
    error = await failure_of(state, f"{state.login}/{image}", [admin_credential(state)])
    assert diagnosis(error)["cause"] == cause


@in_module_loop
async def test_no_credential_for_a_private_registry(state: InProcess) -> None:
    await state.patch_registry(networkRuleSet=rules(default="Allow"))
    error = await failure_of(state, f"{state.login}/app:v1", [])
    assert diagnosis(error)["cause"] == "AuthenticationRequired"


@in_module_loop
async def test_unreachable_registry(state: InProcess) -> None:
    error = await failure_of(state, "127.0.0.1:9/app:v1", [])
    assert error.code == "InaccessibleImage"
    assert diagnosis(error)["cause"] == "RegistryUnreachable"
