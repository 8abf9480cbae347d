"""Pure parts of the CLI: how errors are described and how `container create` builds its body."""

from __future__ import annotations

import pytest

from moorage.cli.command import UsageError
from moorage.cli.container import GroupSpec, RegistryLogin, group_body, image_registry, parse_ports
from moorage.cli.errors import describe
from moorage.client import ApiError

DIAGNOSIS = {
    "type": "MoorageImageAccessDiagnosis",
    "info": {
        "cause": "MissingRole",
        "summary": "The managedIdentity has no role that allows pulling from registry 'r'.",
        "evidence": {"status": 403, "registry": {"name": "r", "ipRules": []}},
        "fix": "az role assignment create ...",
    },
}


def test_a_plain_refusal_is_one_line() -> None:
    error = ApiError(
        401, "invalid_client", "AADSTS7000215: Invalid client secret provided.", {"error": "invalid_client"}
    )
    assert describe(error) == ["ERROR: (invalid_client) AADSTS7000215: Invalid client secret provided."]


def test_nested_details_carry_their_cause() -> None:
    body = {
        "status": "Failed",
        "error": {
            "code": "DeploymentFailed",
            "message": "At least one resource deployment operation failed.",
            "details": [
                {
                    "code": "InaccessibleImage",
                    "message": "The image 'x' ...",
                    "target": None,
                    "additionalInfo": [DIAGNOSIS],
                },
                {
                    "code": "Conflict",
                    "message": "other",
                    "additionalInfo": [{"type": "PolicyViolation", "info": {}}],
                },
            ],
        },
    }
    assert describe(ApiError(200, "DeploymentFailed", "", body)) == [
        "ERROR: (DeploymentFailed) At least one resource deployment operation failed.",
        "  (InaccessibleImage) The image 'x' ...",
        "    Cause: MissingRole: The managedIdentity has no role that allows pulling from registry 'r'.",
        "    Evidence:",
        "      status: 403",
        "      registry:",
        "        name: r",
        "        ipRules: []",
        "    Fix: az role assignment create ...",
        "  (Conflict) other",
    ]


def test_target_is_shown() -> None:
    body = {"error": {"code": "InvalidTemplate", "message": "m", "target": "properties.template"}}
    assert describe(ApiError(400, "InvalidTemplate", "m", body)) == [
        "ERROR: (InvalidTemplate) m",
        "Target: properties.template",
    ]


def test_image_registry_is_the_reference_s_host() -> None:
    assert image_registry("127.0.0.1:5000/app:v1") == "127.0.0.1:5000"
    assert image_registry("myreg.azurecr.io/a/b:v1") == "myreg.azurecr.io"
    assert image_registry("localhost/app") == "localhost"
    assert image_registry("library/busybox") is None
    assert image_registry("busybox") is None


def test_ports() -> None:
    assert parse_ports(None) == (80,)
    assert parse_ports(["80 443", "8080,80"]) == (80, 443, 8080)
    for bad in ("0", "70000", "http"):
        with pytest.raises(UsageError):
            parse_ports([bad])


def test_body_with_identities_credentials_and_public_ports() -> None:
    uami = (
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/puller"
    )
    spec = GroupSpec(
        name="cg",
        location="westus",
        image="myreg.azurecr.io/app:v1",
        ports=(80, 443),
        ip_address=None,
        command_line="sh -c 'echo a b'",
        environment={"A": "1"},
        secure_environment={"S": "2"},
        registry=RegistryLogin(identity=uami),
        identities=("[system]",),
    )
    body = group_body(spec)
    assert body["identity"] == {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {uami: {}}}
    props = body["properties"]
    assert props["imageRegistryCredentials"] == [{"server": "myreg.azurecr.io", "identity": uami}]
    container = props["containers"][0]
    assert container["name"] == "cg"
    assert container["properties"]["command"] == ["sh", "-c", "echo a b"]
    assert container["properties"]["environmentVariables"] == [
        {"name": "A", "value": "1"},
        {"name": "S", "secureValue": "2"},
    ]
    assert "ipAddress" not in props  # as az: ports are published only with --ip-address
    assert props["osType"] == "Linux"
    assert props["restartPolicy"] == "Always"


def test_username_without_password_or_registry_is_refused() -> None:
    with pytest.raises(UsageError):
        group_body(GroupSpec(name="cg", location="w", image="busybox", registry=RegistryLogin(username="u")))
    with pytest.raises(UsageError):
        group_body(
            GroupSpec(
                name="cg", location="w", image="busybox", registry=RegistryLogin(username="u", password="p")
            )
        )
