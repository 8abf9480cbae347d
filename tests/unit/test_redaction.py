"""Support-bundle redaction rules, one per kind of secret."""

from __future__ import annotations

import json

from moorage.diagnose.bundle import export_group_template
from moorage.diagnose.redaction import REDACTED, redact, redact_text

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


def test_secret_properties_are_replaced_in_any_casing() -> None:
    doc = {"password": "p1", "clientSecret": "c1", "secureValue": "s1", "refresh_token": "r1", "keep": "k"}
    assert redact(doc) == {
        "password": REDACTED,
        "clientSecret": REDACTED,
        "secureValue": REDACTED,
        "refresh_token": REDACTED,
        "keep": "k",
    }


def test_connection_file_secrets() -> None:
    connection = {"endpoint": "https://127.0.0.1:8443", "clientId": "abc", "clientSecret": "top-secret"}
    assert redact(connection)["clientSecret"] == REDACTED
    assert redact(connection)["clientId"] == "abc"


def test_environment_variables_named_like_secrets() -> None:
    env = [
        {"name": "IDENTITY_HEADER", "value": "hdr-value"},
        {"name": "DB_PASSWORD", "value": "pw"},
        {"name": "MODE", "value": "visible"},
    ]
    assert [e["value"] for e in redact(env)] == [REDACTED, REDACTED, "visible"]


def test_secure_parameters_lose_values_and_defaults() -> None:
    template = {
        "parameters": {
            "secret": {"type": "secureString", "defaultValue": "d1"},
            "obj": {"type": "SecureObject", "value": {"a": 1}},
            "plain": {"type": "string", "defaultValue": "shown"},
        }
    }
    params = redact(template)["parameters"]
    assert params["secret"]["defaultValue"] == REDACTED
    assert params["obj"]["value"] == REDACTED
    assert params["plain"]["defaultValue"] == "shown"


def test_registry_password_lists_keep_their_names() -> None:
    creds = {
        "username": "reg",
        "passwords": [{"name": "password", "value": "v1"}, {"name": "password2", "value": "v2"}],
    }
    assert redact(creds)["passwords"] == [
        {"name": "password", "value": REDACTED},
        {"name": "password2", "value": REDACTED},
    ]


def test_tokens_headers_urls_and_known_values_inside_text() -> None:
    text = (
        f"token {JWT} header Authorization: Basic dXNlcjpwYXNzd29yZA== url "
        "postgresql://moorage:dbpass@db/moorage and the value known-secret-1"
    )
    out = redact_text(text, known=["known-secret-1"])
    assert JWT not in out
    assert "dXNlcjpwYXNzd29yZA==" not in out
    assert "dbpass" not in out
    assert "known-secret-1" not in out
    assert "postgresql://moorage:<redacted>@db/moorage" in out


def test_exported_template_leaves_out_platform_state_and_secrets() -> None:
    group = {
        "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/cg-1",
        "name": "cg-1",
        "location": "westus",
        "identity": {"type": "UserAssigned", "userAssignedIdentities": {"/x/id": {"principalId": "p"}}},
        "properties": {
            "provisioningState": "Succeeded",
            "instanceView": {"state": "Running", "events": []},
            "ipAddress": {"ip": "10.0.0.4", "type": "Public", "ports": [{"port": 80}]},
            "imageRegistryCredentials": [{"server": "r", "username": "u", "password": "pw"}],
            "containers": [
                {
                    "name": "main",
                    "properties": {
                        "image": "r/app:v1",
                        "instanceView": {"restartCount": 0},
                        "environmentVariables": [{"name": "S", "secureValue": "sv"}],
                    },
                }
            ],
        },
    }
    exported = export_group_template(group, "2023-05-01")
    [resource] = exported["resources"]
    assert resource["name"] == "[parameters('containerGroups_cg_1_name')]"
    assert resource["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {"/x/id": {}}}
    props = resource["properties"]
    assert set(props) == {"ipAddress", "imageRegistryCredentials", "containers"}
    assert props["ipAddress"] == {"type": "Public", "ports": [{"port": 80}]}
    assert props["imageRegistryCredentials"] == [{"server": "r", "username": "u"}]
    assert "instanceView" not in props["containers"][0]["properties"]
    assert "pw" not in json.dumps(exported)
    assert "sv" not in json.dumps(exported)
