"""Can the platform pull this image? The check container groups run at PUT (and at start and
restart), and the one classifier that turns a failed pull into a named cause with its evidence
and one concrete fix — shared with ``moorage diagnose``, so the two always agree.

The check is made from the platform's point of view and through the real registry protocol:
the credential ACI would use (username/password, a user-assigned managed identity exchanged at
the registry, or none), the platform channel for moorage's own registries (so the firewall,
RBAC and the trusted-services bypass decide for real). Azure's error stays byte-exact —
``InaccessibleImage`` with its one generic sentence — and the diagnosis travels in
``error.additionalInfo`` as ``{"type": "MoorageImageAccessDiagnosis", "info": {...}}`` with
``cause`` (a stable code, see :data:`CAUSES`), ``check`` (which of the ordered checks failed),
``summary``, ``evidence``, ``fix`` (a sentence), ``fixCommand`` (the ``az``/``moorage``
command) and ``templateChange`` (the same fix in an ARM template).

Everything that names a cause lives here: :func:`classify` for failed pulls,
:func:`identity_not_found` and :func:`identity_not_attached` for the identity checks that come
before any pull. Evidence never holds a secret: user names and identities, never passwords or
tokens.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from moorage.core.errors import AdditionalInfo, InvalidArgument, MoorageError
from moorage.core.reference import ImageReference, parse_reference
from moorage.instances.images import (
    ANONYMOUS,
    BasicCredential,
    Credential,
    EntraExchange,
    ImageSource,
    PullCause,
    PullFailure,
    PullStep,
    ResolvedImage,
)

DIAGNOSIS_TYPE = "MoorageImageAccessDiagnosis"
NULL_GUID = "00000000-0000-0000-0000-000000000000"
REGISTRY_AUDIENCE = "https://containerregistry.azure.net"
PULL_ACTION = "Microsoft.ContainerRegistry/registries/pull/read"
ACR_PULL = f"AcrPull ({PULL_ACTION})"
ACR_PULL_ROLE_ID = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
_FIREWALL_TEXT = "is not allowed access"
_TRANSIENT = (PullCause.TOO_MANY_REQUESTS, PullCause.REGISTRY_ERROR, PullCause.UNREACHABLE)


class InaccessibleImage(InvalidArgument):
    default_code = "InaccessibleImage"


class RegistryErrorResponse(InvalidArgument):
    default_code = "RegistryErrorResponse"


def inaccessible_message(image: str, group: str) -> str:
    """ACI's exact sentence."""
    return (
        f"The image '{image}' in container group '{group}' is not accessible. Please check the image "
        "and registry credential."
    )


class Check(StrEnum):
    """The ordered checks of an image pull, as ``moorage diagnose`` reports them."""

    REFERENCE = "reference"  # 1. parsed and normalised; registry resolved
    REACHABILITY = "reachability"  # 2. connection and TLS
    FIREWALL = "firewall"  # 3. public access, IP rules, trusted-services bypass
    AUTHENTICATION = "authentication"  # 4. challenge, credential, token exchange, granted scope
    AUTHORIZATION = "authorization"  # 5. RBAC (or scope map) for the pull action
    MANIFEST = "manifest"  # 6. tag → digest, media type, platform
    BLOBS = "blobs"  # 7. config and layers reachable


CHECK_ORDER: tuple[Check, ...] = tuple(Check)

#: Every cause code :func:`classify` and the identity checks produce, with the check it fails.
CAUSES: dict[str, Check] = {
    "InvalidImageReference": Check.REFERENCE,
    "RegistryUnreachable": Check.REACHABILITY,
    "RegistryTlsFailure": Check.REACHABILITY,
    "PublicNetworkAccessDisabled": Check.FIREWALL,
    "FirewallBypassDisabled": Check.FIREWALL,
    "FirewallBlocksPlatform": Check.FIREWALL,
    "AuthenticationRequired": Check.AUTHENTICATION,
    "CredentialsRejected": Check.AUTHENTICATION,
    "IdentityNotFound": Check.AUTHENTICATION,
    "IdentityNotAttached": Check.AUTHENTICATION,
    "MissingRole": Check.AUTHORIZATION,
    "AccessDenied": Check.AUTHORIZATION,
    "RepositoryNotFound": Check.MANIFEST,
    "TagNotFound": Check.MANIFEST,
    "NoMatchingPlatform": Check.MANIFEST,
    "UnsupportedMediaType": Check.MANIFEST,
    "DigestMismatch": Check.MANIFEST,
    "SizeLimit": Check.MANIFEST,
    "BlobUnavailable": Check.BLOBS,
    # A group definition refused before any pull for another reason than its identities.
    "InvalidGroupDefinition": Check.REFERENCE,
    # The registry's own trouble: the check is the one whose request it answered so.
    "RegistryRateLimited": Check.REACHABILITY,
    "RegistryError": Check.REACHABILITY,
}

_STEP_CHECKS = {
    PullStep.RESOLVE: Check.REFERENCE,
    PullStep.CONNECT: Check.REACHABILITY,
    PullStep.TLS: Check.REACHABILITY,
    PullStep.CHALLENGE: Check.AUTHENTICATION,
    PullStep.TOKEN: Check.AUTHENTICATION,
    PullStep.MANIFEST: Check.MANIFEST,
    PullStep.BLOB: Check.BLOBS,
}


class CredentialKind(StrEnum):
    """How the platform authenticates to the registry for one image."""

    ANONYMOUS = "anonymous"
    ADMIN_USER = "adminUser"
    SERVICE_PRINCIPAL = "servicePrincipal"
    REPOSITORY_TOKEN = "repositoryToken"
    REFRESH_TOKEN = "refreshToken"
    MANAGED_IDENTITY = "managedIdentity"


@dataclass(frozen=True)
class CredentialUse:
    """The credential chosen for an image, as evidence (never the secret)."""

    kind: CredentialKind
    username: str | None = None
    identity: str | None = None  # ARM id of the user-assigned identity
    principal_id: str | None = None
    server: str | None = None  # the imageRegistryCredentials entry's server


@dataclass(frozen=True)
class RegistryFacts:
    """What moorage knows about one of its own registries (none for remote registries)."""

    name: str
    resource_id: str
    login_server: str
    sku: str
    public_network_access: str
    default_action: str
    ip_rules: tuple[str, ...]
    bypass: str
    admin_user_enabled: bool
    anonymous_pull_enabled: bool = False


class RegistryFactsSource(Protocol):
    async def facts(self, host: str) -> RegistryFacts | None:
        """Facts about the local registry ``host`` names (``host:port`` or ``<name>.azurecr.io``)."""
        ...


class ManagedIdentityTokens(Protocol):
    async def token(self, identity_resource_id: str, audience: str) -> str:
        """An Entra access token for a user-assigned identity (the platform's token issuer)."""
        ...

    async def principal_id(self, identity_resource_id: str) -> str | None: ...


@dataclass(frozen=True)
class Fix:
    """One concrete fix: a sentence, the command that applies it, and the template change."""

    text: str
    command: str
    template: str


@dataclass(frozen=True)
class Diagnosis:
    """A named cause, the check it failed, the evidence for it, and one fix. ``cause`` codes are
    stable (:data:`CAUSES`)."""

    cause: str
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    fix: Fix = field(default_factory=lambda: Fix("", "", ""))
    failed_check: Check | None = None  # when the cause alone does not say (the registry's trouble)

    @property
    def check(self) -> Check:
        return self.failed_check or CAUSES.get(self.cause, Check.REFERENCE)

    def as_json(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "check": str(self.check),
            "summary": self.summary,
            "evidence": self.evidence,
            "fix": self.fix.text,
            "fixCommand": self.fix.command,
            "templateChange": self.fix.template,
        }

    def as_info(self) -> AdditionalInfo:
        return AdditionalInfo(DIAGNOSIS_TYPE, self.as_json())


def credential_kind(username: str, registry: RegistryFacts | None) -> CredentialKind:
    """What kind of username/password credential this is, as far as the name tells."""
    if username == NULL_GUID:
        return CredentialKind.REFRESH_TOKEN
    if registry is not None and username.lower() == registry.name.lower():
        return CredentialKind.ADMIN_USER
    try:
        uuid.UUID(username)
    except ValueError:
        return CredentialKind.REPOSITORY_TOKEN
    return CredentialKind.SERVICE_PRINCIPAL


def registry_evidence(facts: RegistryFacts) -> dict[str, Any]:
    """A local registry's settings as evidence."""
    return {
        "name": facts.name,
        "id": facts.resource_id,
        "loginServer": facts.login_server,
        "sku": facts.sku,
        "publicNetworkAccess": facts.public_network_access,
        "defaultAction": facts.default_action,
        "ipRules": list(facts.ip_rules),
        "networkRuleBypassOptions": facts.bypass,
    }


def credential_evidence(credential: CredentialUse) -> dict[str, Any]:
    """The credential as evidence: its kind and who it is, never its secret."""
    out: dict[str, Any] = {"credentialKind": str(credential.kind)}
    if credential.server:
        out["credentialServer"] = credential.server
    if credential.identity:
        out["identity"] = credential.identity
    if credential.principal_id:
        out["principalId"] = credential.principal_id
    if credential.username and credential.kind is not CredentialKind.REFRESH_TOKEN:
        out["username"] = credential.username
    return out


# -- fixes ----------------------------------------------------------------------------------------

_UAMI = "<identity resource id>"


def _json(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "))


def _image_parts(image: str) -> tuple[str, str, str]:
    """(registry, repository, tag or digest) of ``image``, placeholders where it does not parse."""
    try:
        ref = parse_reference(image)
    except MoorageError:
        return "<registry>", "<repository>", "<tag>"
    return ref.registry, ref.repository, ref.locator


def _registry_name(facts: RegistryFacts | None, host: str) -> str:
    return facts.name if facts else host


def _scope(facts: RegistryFacts | None) -> str:
    return facts.resource_id if facts else "<registry resource id>"


def _bypass_fix(reg: str) -> Fix:
    return Fix(
        f"Allow trusted services on registry '{reg}': az acr update -n {reg} --allow-trusted-services true.",
        f"az acr update -n {reg} --allow-trusted-services true",
        'Microsoft.ContainerRegistry/registries: "properties": {"networkRuleBypassOptions": "AzureServices"}',
    )


def _identity_pull_fix(reg: str, facts: RegistryFacts | None, server: str) -> Fix:
    """Pull with a user-assigned identity that has AcrPull, through the trusted-services bypass:
    the only way the platform passes a registry firewall."""
    scope = _scope(facts)
    credentials = _json([{"server": server, "identity": _UAMI}])
    identity = _json({"type": "UserAssigned", "userAssignedIdentities": {_UAMI: {}}})
    return Fix(
        "Pull with a user-assigned managed identity and allow trusted services: give the identity "
        f"AcrPull on {scope}, list it in the group's identity and in imageRegistryCredentials "
        f'("identity": "{_UAMI}"), and run az acr update -n {reg} --allow-trusted-services true.',
        f"az identity create -g <resource group> -n acr-puller && az role assignment create "
        f"--assignee-object-id <its principalId> --assignee-principal-type ServicePrincipal "
        f"--role AcrPull --scope {scope} && az acr update -n {reg} --allow-trusted-services true",
        f'Microsoft.ContainerInstance/containerGroups: "identity": {identity}, "properties": '
        f'{{"imageRegistryCredentials": {credentials}}}; a Microsoft.Authorization/roleAssignments '
        f"resource granting AcrPull ({ACR_PULL_ROLE_ID}) on the registry to the identity's principalId; "
        'Microsoft.ContainerRegistry/registries: "properties": {"networkRuleBypassOptions": "AzureServices"}',
    )


def _role_fix(credential: CredentialUse, facts: RegistryFacts | None) -> Fix:
    scope = _scope(facts)
    if credential.kind is CredentialKind.SERVICE_PRINCIPAL:
        who = credential.username or "<appId>"
        command = f"az role assignment create --assignee {who} --role AcrPull --scope {scope}"
        principal = f"the service principal's object id (az ad sp show --id {who} --query id)"
    else:
        who = credential.principal_id or "<principal id>"
        command = (
            f"az role assignment create --assignee-object-id {who} --assignee-principal-type "
            f"ServicePrincipal --role AcrPull --scope {scope}"
        )
        principal = who
    assignment = _json(
        {
            "type": "Microsoft.Authorization/roleAssignments",
            "scope": f"Microsoft.ContainerRegistry/registries/{facts.name if facts else '<registry>'}",
            "properties": {
                "roleDefinitionId": (
                    "[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', "
                    f"'{ACR_PULL_ROLE_ID}')]"
                ),
                "principalId": principal,
                "principalType": "ServicePrincipal",
            },
        }
    )
    return Fix(f"{command} (grants AcrPull on the registry)", command, f"add the resource {assignment}")


def _image_fix(text: str, command: str, image_hint: str) -> Fix:
    return Fix(
        text,
        command,
        'Microsoft.ContainerInstance/containerGroups: "properties.containers[].properties.image": '
        f'"{image_hint}"',
    )


def _registry_server_fix(host: str, facts: RegistryFacts | None) -> Fix:
    login = facts.login_server if facts else "<login server>"
    return Fix(
        f"Check the registry name in the image ('{host}'); for a moorage registry use its loginServer "
        "or <name>.azurecr.io.",
        "az acr show -n <registry> --query loginServer",
        f'Microsoft.ContainerInstance/containerGroups: "image": "{login}/<repository>:<tag>" and '
        f'"imageRegistryCredentials": [{{"server": "{login}", ...}}]',
    )


def _credentials_fix(credential: CredentialUse, host: str, reg: str) -> Fix:
    template = (
        'Microsoft.ContainerInstance/containerGroups: "imageRegistryCredentials": '
        f'[{{"server": "{credential.server or host}", "username": "{credential.username or "<username>"}", '
        '"password": "[parameters(\'registryPassword\')]"}] with registryPassword a securestring '
        "parameter holding the new secret"
    )
    match credential.kind:
        case CredentialKind.SERVICE_PRINCIPAL:
            who = credential.username or "<appId>"
            command = f"az ad sp credential reset --id {who}"
            text = (
                "The service principal's secret was refused (mistyped, reset or expired): reset it "
                f"(az ad sp credential reset --id {who}, or moorage sp reset-credentials {who}) and pass the "
                "new one, or use a managed identity."
            )
        case CredentialKind.ADMIN_USER:
            command = f"az acr credential show -n {reg}"
            text = (
                "Check the username and password in imageRegistryCredentials: use the registry's current "
                f"admin password ({command}), or use a managed identity."
            )
        case CredentialKind.REPOSITORY_TOKEN:
            command = f"az acr token credential generate -n {credential.username} -r {reg}"
            text = (
                "The repository token's password was refused (mistyped or expired): generate a new one "
                f"({command})."
            )
        case CredentialKind.MANAGED_IDENTITY:
            command = f"az identity show --ids {credential.identity}"
            text = "The registry refused the managed identity's token; check that the identity still exists."
            template = (
                'Microsoft.ContainerInstance/containerGroups: "imageRegistryCredentials": '
                f'[{{"server": "{credential.server or host}", "identity": "{credential.identity}"}}]'
            )
        case _:
            command = f"az acr login -n {reg} --expose-token"
            text = "Check the username and password in imageRegistryCredentials, or use a managed identity."
    return Fix(text, command, template)


# -- classification -------------------------------------------------------------------------------


def classify(
    failure: PullFailure,
    *,
    image: str,
    credential: CredentialUse,
    facts: RegistryFacts | None,
    platform_address: str,
) -> Diagnosis:
    """Name the cause of a failed pull, from the platform's viewpoint."""
    host = image.split("/", 1)[0]
    reg = _registry_name(facts, host)
    evidence: dict[str, Any] = {
        "image": image,
        "step": str(failure.step),
        "status": failure.status,
        "registryCode": failure.registry_code,
        "registryMessage": failure.registry_message,
        "peer": failure.peer,
        "url": failure.url,
        **credential_evidence(credential),
    }
    if facts is not None:
        evidence["registry"] = registry_evidence(facts)
    evidence = {k: v for k, v in evidence.items() if v is not None}
    cause = failure.cause
    _, repository, locator = _image_parts(image)

    if cause is PullCause.INVALID_REFERENCE:
        evidence["detail"] = str(failure.message)
        return Diagnosis(
            "InvalidImageReference",
            f"'{image}' is not a valid image reference.",
            evidence,
            _image_fix(
                "Write the image as <registry>/<repository>:<tag> or @sha256:<digest>.",
                "moorage image inspect <registry>/<repository>:<tag>",
                "<registry>/<repository>:<tag>",
            ),
        )
    if cause is PullCause.UNREACHABLE:
        evidence["detail"] = str(failure.message)
        return Diagnosis(
            "RegistryUnreachable",
            f"The registry '{host}' could not be reached from the platform.",
            evidence,
            _registry_server_fix(host, facts),
        )
    if cause is PullCause.TLS:
        evidence["detail"] = str(failure.message)
        return Diagnosis(
            "RegistryTlsFailure",
            f"The TLS handshake with '{host}' failed: its certificate is not trusted by the platform.",
            evidence,
            Fix(
                f"Serve '{host}' with a certificate from a CA the platform trusts (publicly trusted, "
                "with the registry's name), or push the image to a moorage registry.",
                f"curl -v https://{host}/v2/",
                'Microsoft.ContainerInstance/containerGroups: "image": '
                f'"<a trusted registry>/{repository}:{locator}"',
            ),
        )
    if cause is PullCause.DENIED and failure.registry_message and _FIREWALL_TEXT in failure.registry_message:
        return _firewall(
            evidence, credential, facts=facts, reg=reg, host=host, platform_address=platform_address
        )
    if cause is PullCause.DENIED:
        if credential.kind in (CredentialKind.MANAGED_IDENTITY, CredentialKind.SERVICE_PRINCIPAL):
            evidence["roleChecked"] = ACR_PULL
            evidence["scope"] = _scope(facts)
            return Diagnosis(
                "MissingRole",
                f"The {credential.kind.value} has no role that allows pulling from registry '{reg}'.",
                evidence,
                _role_fix(credential, facts),
            )
        return Diagnosis(
            "AccessDenied",
            f"Registry '{reg}' denied the {credential.kind.value} access to the repository.",
            evidence,
            Fix(
                "Use a credential allowed to pull this repository (for a scope-map token, add "
                f"repositories/{repository}/content/read to its scope map).",
                f"az acr scope-map update -n <scope map> -r {reg} --add-repository {repository} content/read",
                'Microsoft.ContainerRegistry/registries/scopeMaps: "properties": {"actions": '
                f'["repositories/{repository}/content/read"]}}',
            ),
        )
    if cause is PullCause.UNAUTHORIZED:
        return _unauthorized(failure, evidence, credential, host, reg)
    if cause is PullCause.NAME_UNKNOWN:
        return Diagnosis(
            "RepositoryNotFound",
            f"The repository of '{image}' does not exist in registry '{reg}'.",
            evidence,
            _image_fix(
                "Push the image first (moorage image push <source> <registry>/<repository>:<tag>), "
                "or fix the repository name.",
                f"moorage image push <source> {host}/{repository}:{locator}",
                f"{host}/<existing repository>:<tag>",
            ),
        )
    if cause is PullCause.MANIFEST_UNKNOWN:
        return Diagnosis(
            "TagNotFound",
            f"The tag or digest of '{image}' does not exist in registry '{reg}'.",
            evidence,
            _image_fix(
                "Push the tag, or use one that exists (az acr repository show-tags).",
                f"az acr repository show-tags -n {reg} --repository {repository}",
                f"{host}/{repository}:<existing tag>",
            ),
        )
    if cause is PullCause.UNSUPPORTED_PLATFORM:
        evidence["detail"] = str(failure.message)
        return Diagnosis(
            "NoMatchingPlatform",
            f"'{image}' has no linux/amd64 image.",
            evidence,
            _image_fix(
                "Build and push a linux/amd64 variant (or a multi-platform index that includes one).",
                f"moorage image push <linux/amd64 image> {host}/{repository}:{locator}",
                f"{host}/{repository}:<a tag with a linux/amd64 image>",
            ),
        )
    return _content(failure, evidence, image, host, reg)


def _firewall(
    evidence: dict[str, Any],
    credential: CredentialUse,
    *,
    facts: RegistryFacts | None,
    reg: str,
    host: str,
    platform_address: str,
) -> Diagnosis:
    evidence["platformAddress"] = platform_address
    mi = credential.kind is CredentialKind.MANAGED_IDENTITY
    server = credential.server or (facts.login_server if facts else host)
    bypassed = mi and facts is not None and facts.bypass == "AzureServices"
    if facts is not None and facts.public_network_access == "Disabled" and not bypassed:
        return Diagnosis(
            "PublicNetworkAccessDisabled",
            f"Registry '{reg}' has public network access disabled, and this pull cannot use the "
            "trusted-services bypass.",
            evidence,
            _bypass_fix(reg) if mi else _identity_pull_fix(reg, facts, server),
        )
    if mi:
        return Diagnosis(
            "FirewallBypassDisabled",
            f"Registry '{reg}' denies the platform's address {platform_address} and its "
            "'Allow trusted services' bypass is off, so the managed-identity pull is refused.",
            evidence,
            _bypass_fix(reg),
        )
    return Diagnosis(
        "FirewallBlocksPlatform",
        f"Registry '{reg}' denies the platform's address {platform_address}. The "
        f"trusted-services bypass applies only to managed-identity pulls, not to a "
        f"{credential.kind.value} credential.",
        evidence,
        _identity_pull_fix(reg, facts, server),
    )


def _unauthorized(
    failure: PullFailure, evidence: dict[str, Any], credential: CredentialUse, host: str, reg: str
) -> Diagnosis:
    if credential.kind is CredentialKind.ANONYMOUS:
        return Diagnosis(
            "AuthenticationRequired",
            f"Registry '{host}' requires credentials and the group has none for it.",
            evidence,
            Fix(
                f'Add an imageRegistryCredentials entry with "server": "{host}" (a user-assigned '
                "managed identity with AcrPull, or username and password).",
                f"az container create ... --acr-identity {_UAMI} --assign-identity {_UAMI}",
                'Microsoft.ContainerInstance/containerGroups: "imageRegistryCredentials": '
                f'[{{"server": "{host}", "identity": "{_UAMI}"}}] (and the identity in "identity")',
            ),
        )
    if (
        credential.kind is CredentialKind.MANAGED_IDENTITY
        and credential.principal_id is None
        and failure.step is PullStep.TOKEN
    ):
        return identity_not_found_diagnosis(credential.identity or "", evidence)
    return Diagnosis(
        "CredentialsRejected",
        f"Registry '{host}' rejected the {credential.kind.value} credentials.",
        evidence,
        _credentials_fix(credential, host, reg),
    )


def _content(failure: PullFailure, evidence: dict[str, Any], image: str, host: str, reg: str) -> Diagnosis:
    """Causes about the content the registry served (or its own trouble)."""
    cause = failure.cause
    _, repository, locator = _image_parts(image)
    repush = _image_fix(
        "Re-push the image; the registry's copy is incomplete, corrupt or altered.",
        f"moorage image push <source> {host}/{repository}:{locator}",
        f"{host}/{repository}@<digest of a good push>",
    )
    if failure.step is PullStep.BLOB and (failure.status == 404 or failure.registry_code == "BLOB_UNKNOWN"):
        return Diagnosis(
            "BlobUnavailable",
            f"Registry '{reg}' lists a blob of '{image}' that it cannot serve.",
            evidence,
            repush,
        )
    if cause is PullCause.UNSUPPORTED_MEDIA_TYPE:
        evidence["detail"] = str(failure.message)
        return Diagnosis(
            "UnsupportedMediaType",
            f"'{image}' is not a container image the platform can run.",
            evidence,
            _image_fix(
                "Reference an OCI or Docker image manifest (not an artifact or a schema-1 manifest).",
                f"moorage image inspect {image}",
                f"{host}/{repository}:<tag of a container image>",
            ),
        )
    if cause is PullCause.DIGEST_MISMATCH:
        return Diagnosis(
            "DigestMismatch",
            f"Registry '{host}' served content that does not match its digest.",
            evidence,
            repush,
        )
    if cause is PullCause.SIZE_LIMIT:
        return Diagnosis(
            "SizeLimit",
            f"'{image}' exceeds a size limit.",
            evidence,
            _image_fix(
                "Use a smaller image.", f"moorage image inspect {image}", f"{host}/{repository}:<smaller>"
            ),
        )
    retry = Fix(
        "Retry later; the registry's own trouble is not in the group's definition.",
        "moorage diagnose <container group or deployment>",
        "none: the template is not the cause",
    )
    if cause is PullCause.TOO_MANY_REQUESTS:
        return Diagnosis(
            "RegistryRateLimited",
            f"Registry '{host}' is rate limiting the platform.",
            evidence,
            retry,
            _STEP_CHECKS[failure.step],
        )
    return Diagnosis(
        "RegistryError", f"Registry '{host}' returned an error.", evidence, retry, _STEP_CHECKS[failure.step]
    )


# -- identity checks (before any pull) ------------------------------------------------------------


def identity_not_found_diagnosis(identity: str, evidence: dict[str, Any] | None = None) -> Diagnosis:
    """A user-assigned identity the group names does not exist."""
    name = identity.rstrip("/").rsplit("/", 1)[-1] or "<name>"
    return Diagnosis(
        "IdentityNotFound",
        f"The user-assigned identity '{identity}' does not exist.",
        {"identity": identity, **(evidence or {})},
        Fix(
            f"Create the identity (az identity create -g <resource group> -n {name}) and give it AcrPull on "
            "the registry, or reference an identity that exists.",
            f"az identity create -g <resource group> -n {name}",
            'add a "Microsoft.ManagedIdentity/userAssignedIdentities" resource named '
            f'"{name}" and make the container group dependsOn it',
        ),
    )


def identity_not_attached_diagnosis(identity: str, server: str, listed: Sequence[str]) -> Diagnosis:
    """``imageRegistryCredentials[].identity`` names an identity the group's ``identity`` does not list."""
    return Diagnosis(
        "IdentityNotAttached",
        f"The identity '{identity}' used for registry '{server}' is not one of the container group's "
        "user-assigned identities.",
        {
            "identity": identity,
            "credentialServer": server,
            "credentialKind": str(CredentialKind.MANAGED_IDENTITY),
            "groupIdentities": list(listed),
        },
        Fix(
            "List the identity in the group's identity (type UserAssigned) as well as in "
            "imageRegistryCredentials.",
            f"az container create ... --assign-identity {identity} --acr-identity {identity}",
            'Microsoft.ContainerInstance/containerGroups: "identity": '
            + _json({"type": "UserAssigned", "userAssignedIdentities": {identity: {}}}),
        ),
    )


# -- the check ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryCredential:
    """One ``imageRegistryCredentials`` entry (already validated)."""

    server: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity: str | None = None


@dataclass(frozen=True)
class AccessAttempt:
    """One check of one image: what was used, and either the resolved image or the classified
    failure. ``credential`` holds the secret for the pull; never render it."""

    image: str
    reference: ImageReference | None
    use: CredentialUse
    facts: RegistryFacts | None
    credential: Credential = field(repr=False)
    resolved: ResolvedImage | None = None
    failure: PullFailure | None = None
    diagnosis: Diagnosis | None = None

    @property
    def ok(self) -> bool:
        return self.resolved is not None


class ImageAccess:
    """Checks images from the platform's viewpoint; raises ACI's errors with a diagnosis."""

    def __init__(
        self,
        source: ImageSource,
        identities: ManagedIdentityTokens,
        registries: RegistryFactsSource,
        *,
        platform_address: str,
        attempts: int = 2,
    ) -> None:
        self._source = source
        self._identities = identities
        self._registries = registries
        self._platform_address = platform_address
        self._attempts = attempts

    @property
    def source(self) -> ImageSource:
        return self._source

    @property
    def platform_address(self) -> str:
        return self._platform_address

    def with_source(self, source: ImageSource) -> ImageAccess:
        """The same check over another image source (``moorage diagnose`` traces its own)."""
        return ImageAccess(
            source,
            self._identities,
            self._registries,
            platform_address=self._platform_address,
            attempts=self._attempts,
        )

    async def registry(self, host: str) -> RegistryFacts | None:
        """Facts about the moorage registry ``host`` names, ``None`` for any other registry."""
        return await self._registries.facts(host)

    async def credential_for(
        self, reference: ImageReference, credentials: Sequence[RegistryCredential]
    ) -> tuple[Credential, CredentialUse, RegistryFacts | None]:
        """The credential ACI would use for ``reference``: the entry whose ``server`` is the
        image's registry (case-insensitive), else none."""
        facts = await self._registries.facts(reference.registry)
        hosts = {reference.registry.lower()}
        if facts is not None:
            hosts |= {facts.login_server.lower(), f"{facts.name}.azurecr.io".lower()}
        entry = next((c for c in credentials if c.server.lower() in hosts), None)
        if entry is None:
            return ANONYMOUS, CredentialUse(CredentialKind.ANONYMOUS), facts
        if entry.identity:
            identity = entry.identity

            async def token() -> str:
                return await self._identities.token(identity, REGISTRY_AUDIENCE)

            principal = await self._identities.principal_id(identity)
            use = CredentialUse(
                CredentialKind.MANAGED_IDENTITY,
                identity=identity,
                principal_id=principal,
                server=entry.server,
            )
            return EntraExchange(token), use, facts
        username = entry.username or ""
        kind = credential_kind(username, facts)
        use = CredentialUse(kind, username=username, server=entry.server)
        return BasicCredential(username, entry.password or ""), use, facts

    async def attempt(self, image: str, credentials: Sequence[RegistryCredential]) -> AccessAttempt:
        """Resolve ``image`` as the platform would (transient failures retried); never raises a
        :class:`PullFailure` — a failure comes back classified."""
        try:
            reference = parse_reference(image)
        except MoorageError as error:
            failure = PullFailure(
                error.message, cause=PullCause.INVALID_REFERENCE, step=PullStep.RESOLVE, image=image
            )
            use = CredentialUse(CredentialKind.ANONYMOUS)
            return AccessAttempt(
                image,
                None,
                use,
                None,
                ANONYMOUS,
                failure=failure,
                diagnosis=self.diagnose(image, failure, use, None),
            )
        credential, use, facts = await self.credential_for(reference, credentials)
        last: PullFailure | None = None
        for attempt in range(self._attempts):
            try:
                resolved = await self._source.resolve(reference, credential)
            except PullFailure as failure:
                last = failure
                if failure.cause not in _TRANSIENT or attempt + 1 == self._attempts:
                    break
                await asyncio.sleep(0.5 * (attempt + 1))
            else:
                return AccessAttempt(image, reference, use, facts, credential, resolved=resolved)
        assert last is not None  # noqa: S101 - the loop ran at least once and failed
        return AccessAttempt(
            image,
            reference,
            use,
            facts,
            credential,
            failure=last,
            diagnosis=self.diagnose(image, last, use, facts),
        )

    def diagnose(
        self, image: str, failure: PullFailure, use: CredentialUse, facts: RegistryFacts | None
    ) -> Diagnosis:
        """:func:`classify` with this check's platform address."""
        return classify(
            failure, image=image, credential=use, facts=facts, platform_address=self._platform_address
        )

    async def check(self, group: str, image: str, credentials: Sequence[RegistryCredential]) -> ResolvedImage:
        """Resolve ``image`` as the platform would; raise ``InaccessibleImage`` (or
        ``RegistryErrorResponse``) carrying the diagnosis otherwise."""
        return (await self.check_with_credential(group, image, credentials))[0]

    async def check_with_credential(
        self, group: str, image: str, credentials: Sequence[RegistryCredential]
    ) -> tuple[ResolvedImage, Credential]:
        found = await self.attempt(image, credentials)
        if found.resolved is not None:
            return found.resolved, found.credential
        if found.failure is None or found.diagnosis is None:  # pragma: no cover - not resolved
            raise InvalidArgument(f"'{image}' could not be checked.", code="InaccessibleImage")
        raise self.error(group, image, found.failure, found.diagnosis) from found.failure

    async def pull_error(
        self, group: str, image: str, credentials: Sequence[RegistryCredential], failure: PullFailure
    ) -> MoorageError:
        """The error for a pull that failed after its check passed: the check's own error if the
        image is inaccessible now, else ``failure`` classified (a layer the registry lost)."""
        found = await self.attempt(image, credentials)
        if found.failure is not None and found.diagnosis is not None:
            return self.error(group, image, found.failure, found.diagnosis)
        diagnosis = self.diagnose(image, failure, found.use, found.facts)
        return self.error(group, image, failure, diagnosis)

    def error(self, group: str, image: str, failure: PullFailure, diagnosis: Diagnosis) -> MoorageError:
        """ACI's error for an inaccessible image, carrying ``diagnosis``."""
        if failure.cause in (PullCause.TOO_MANY_REQUESTS, PullCause.REGISTRY_ERROR) and diagnosis.cause in (
            "RegistryRateLimited",
            "RegistryError",
        ):
            host = image.split("/", 1)[0] if "/" in image else "index.docker.io"
            return RegistryErrorResponse(
                f"An error response is received from the docker registry '{host}'. Please retry later.",
                additional_info=(diagnosis.as_info(),),
            )
        return InaccessibleImage(inaccessible_message(image, group), additional_info=(diagnosis.as_info(),))
