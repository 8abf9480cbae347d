"""Can the platform pull this image? The check container groups run at PUT (and at start and
restart), and the one classifier that turns a failed pull into a named cause with its evidence
and one concrete fix — shared with ``moorage diagnose``, so the two always agree.

The check is made from the platform's point of view and through the real registry protocol:
the credential ACI would use (username/password, a user-assigned managed identity exchanged at
the registry, or none), the platform channel for moorage's own registries (so the firewall,
RBAC and the trusted-services bypass decide for real). Azure's error stays byte-exact —
``InaccessibleImage`` with its one generic sentence — and the diagnosis travels in
``error.additionalInfo`` as ``{"type": "MoorageImageAccessDiagnosis", "info": {...}}``.
"""

from __future__ import annotations

import asyncio
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
ACR_PULL = "AcrPull (Microsoft.ContainerRegistry/registries/pull/read)"
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
class Diagnosis:
    """A named cause, the evidence for it, and one fix. ``cause`` codes are stable."""

    cause: str
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    fix: str = ""

    def as_info(self) -> AdditionalInfo:
        return AdditionalInfo(
            DIAGNOSIS_TYPE,
            {"cause": self.cause, "summary": self.summary, "evidence": self.evidence, "fix": self.fix},
        )


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


def _registry_name(facts: RegistryFacts | None, host: str) -> str:
    return facts.name if facts else host


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
        "credentialKind": str(credential.kind),
    }
    if credential.identity:
        evidence["identity"] = credential.identity
    if credential.principal_id:
        evidence["principalId"] = credential.principal_id
    if credential.username and credential.kind is not CredentialKind.REFRESH_TOKEN:
        evidence["username"] = credential.username
    if facts is not None:
        evidence["registry"] = {
            "name": facts.name,
            "loginServer": facts.login_server,
            "sku": facts.sku,
            "publicNetworkAccess": facts.public_network_access,
            "defaultAction": facts.default_action,
            "ipRules": list(facts.ip_rules),
            "networkRuleBypassOptions": facts.bypass,
        }
    evidence = {k: v for k, v in evidence.items() if v is not None}
    cause = failure.cause
    mi = credential.kind is CredentialKind.MANAGED_IDENTITY

    if cause is PullCause.INVALID_REFERENCE:
        return Diagnosis(
            "InvalidImageReference",
            f"'{image}' is not a valid image reference.",
            evidence,
            "Write the image as <registry>/<repository>:<tag> or @sha256:<digest>.",
        )
    if cause is PullCause.UNREACHABLE:
        return Diagnosis(
            "RegistryUnreachable",
            f"The registry '{host}' could not be reached from the platform.",
            evidence,
            f"Check the registry name in the image ('{host}'); for a moorage registry use its "
            "loginServer or <name>.azurecr.io.",
        )
    if cause is PullCause.TLS:
        return Diagnosis(
            "RegistryTlsFailure",
            f"The TLS handshake with '{host}' failed: its certificate is not trusted by the platform.",
            evidence,
            "Serve the registry with a certificate from a CA the platform trusts.",
        )
    if cause is PullCause.DENIED and failure.registry_message and _FIREWALL_TEXT in failure.registry_message:
        evidence["platformAddress"] = platform_address
        if (
            facts is not None
            and facts.public_network_access == "Disabled"
            and not (mi and facts.bypass == "AzureServices")
        ):
            return Diagnosis(
                "PublicNetworkAccessDisabled",
                f"Registry '{reg}' has public network access disabled, and this pull cannot use the "
                "trusted-services bypass.",
                evidence,
                _mi_fix(reg, facts, credential),
            )
        if mi:
            return Diagnosis(
                "FirewallBypassDisabled",
                f"Registry '{reg}' denies the platform's address {platform_address} and its "
                "'Allow trusted services' bypass is off, so the managed-identity pull is refused.",
                evidence,
                f"Allow trusted services: az acr update -n {reg} --allow-trusted-services true "
                '(template: "networkRuleBypassOptions": "AzureServices").',
            )
        return Diagnosis(
            "FirewallBlocksPlatform",
            f"Registry '{reg}' denies the platform's address {platform_address}. The "
            f"trusted-services bypass applies only to managed-identity pulls, not to a "
            f"{credential.kind.value} credential.",
            evidence,
            _mi_fix(reg, facts, credential),
        )
    if cause is PullCause.DENIED:
        if credential.kind in (CredentialKind.MANAGED_IDENTITY, CredentialKind.SERVICE_PRINCIPAL):
            evidence["roleChecked"] = ACR_PULL
            who = credential.principal_id or credential.username or "<principal id>"
            scope = facts.resource_id if facts else "<registry resource id>"
            return Diagnosis(
                "MissingRole",
                f"The {credential.kind.value} has no role that allows pulling from registry '{reg}'.",
                evidence,
                f"az role assignment create --assignee-object-id {who} --assignee-principal-type "
                f"ServicePrincipal --role AcrPull --scope {scope}",
            )
        return Diagnosis(
            "AccessDenied",
            f"Registry '{reg}' denied the {credential.kind.value} access to the repository.",
            evidence,
            "Use a credential allowed to pull this repository (for a scope-map token, add "
            "repositories/<repo>/content/read to its scope map).",
        )
    if cause is PullCause.UNAUTHORIZED:
        if credential.kind is CredentialKind.ANONYMOUS:
            return Diagnosis(
                "AuthenticationRequired",
                f"Registry '{host}' requires credentials and the group has none for it.",
                evidence,
                f'Add an imageRegistryCredentials entry with "server": "{host}" (a user-assigned '
                "managed identity with AcrPull, or username and password).",
            )
        return Diagnosis(
            "CredentialsRejected",
            f"Registry '{host}' rejected the {credential.kind.value} credentials.",
            evidence,
            "Check the username and password in imageRegistryCredentials (reset a service "
            "principal's secret with moorage sp reset-credentials <appId>), or use a managed identity.",
        )
    if cause is PullCause.NAME_UNKNOWN:
        return Diagnosis(
            "RepositoryNotFound",
            f"The repository of '{image}' does not exist in registry '{reg}'.",
            evidence,
            "Push the image first (moorage image push ...), or fix the repository name.",
        )
    if cause is PullCause.MANIFEST_UNKNOWN:
        return Diagnosis(
            "TagNotFound",
            f"The tag or digest of '{image}' does not exist in registry '{reg}'.",
            evidence,
            "Push the tag, or use one that exists (az acr repository show-tags).",
        )
    if cause is PullCause.UNSUPPORTED_PLATFORM:
        return Diagnosis(
            "NoMatchingPlatform",
            f"'{image}' has no linux/amd64 image.",
            evidence,
            "Build and push a linux/amd64 variant (or a multi-platform index that includes one).",
        )
    if cause is PullCause.UNSUPPORTED_MEDIA_TYPE:
        return Diagnosis(
            "UnsupportedMediaType",
            f"'{image}' is not a container image the platform can run.",
            evidence,
            "Reference an OCI or Docker image manifest (not an artifact or a schema-1 manifest).",
        )
    if cause is PullCause.DIGEST_MISMATCH:
        return Diagnosis(
            "DigestMismatch",
            f"Registry '{host}' served content that does not match its digest.",
            evidence,
            "Re-push the image; the registry's copy is corrupt or altered.",
        )
    if cause is PullCause.SIZE_LIMIT:
        return Diagnosis("SizeLimit", f"'{image}' exceeds a size limit.", evidence, "Use a smaller image.")
    if cause is PullCause.TOO_MANY_REQUESTS:
        return Diagnosis(
            "RegistryRateLimited",
            f"Registry '{host}' is rate limiting the platform.",
            evidence,
            "Retry later.",
        )
    return Diagnosis("RegistryError", f"Registry '{host}' returned an error.", evidence, "Retry later.")


def _mi_fix(reg: str, facts: RegistryFacts | None, credential: CredentialUse) -> str:
    scope = facts.resource_id if facts else "<registry resource id>"
    return (
        "Pull with a user-assigned managed identity and allow trusted services: give the identity "
        f"AcrPull on {scope}, list it in the group's identity and in imageRegistryCredentials "
        f'("identity": "<identity resource id>"), and run az acr update -n {reg} '
        "--allow-trusted-services true."
    )


@dataclass(frozen=True)
class RegistryCredential:
    """One ``imageRegistryCredentials`` entry (already validated)."""

    server: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity: str | None = None


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
            use = CredentialUse(CredentialKind.MANAGED_IDENTITY, identity=identity, principal_id=principal)
            return EntraExchange(token), use, facts
        username = entry.username or ""
        kind = credential_kind(username, facts)
        return BasicCredential(username, entry.password or ""), CredentialUse(kind, username=username), facts

    async def check(self, group: str, image: str, credentials: Sequence[RegistryCredential]) -> ResolvedImage:
        """Resolve ``image`` as the platform would; raise ``InaccessibleImage`` (or
        ``RegistryErrorResponse``) carrying the diagnosis otherwise."""
        return (await self.check_with_credential(group, image, credentials))[0]

    async def check_with_credential(
        self, group: str, image: str, credentials: Sequence[RegistryCredential]
    ) -> tuple[ResolvedImage, Credential]:
        try:
            reference = parse_reference(image)
        except MoorageError as error:
            failure = PullFailure(
                error.message, cause=PullCause.INVALID_REFERENCE, step=PullStep.RESOLVE, image=image
            )
            raise self._error(group, image, failure, CredentialUse(CredentialKind.ANONYMOUS), None) from error
        credential, use, facts = await self.credential_for(reference, credentials)
        last: PullFailure | None = None
        for attempt in range(self._attempts):
            try:
                return await self._source.resolve(reference, credential), credential
            except PullFailure as failure:
                last = failure
                if failure.cause not in _TRANSIENT or attempt + 1 == self._attempts:
                    break
                await asyncio.sleep(0.5 * (attempt + 1))
        assert last is not None  # noqa: S101 - the loop ran at least once and failed
        raise self._error(group, image, last, use, facts) from last

    def _error(
        self, group: str, image: str, failure: PullFailure, use: CredentialUse, facts: RegistryFacts | None
    ) -> MoorageError:
        diagnosis = classify(
            failure, image=image, credential=use, facts=facts, platform_address=self._platform_address
        )
        if failure.cause in (PullCause.TOO_MANY_REQUESTS, PullCause.REGISTRY_ERROR):
            host = image.split("/", 1)[0] if "/" in image else "index.docker.io"
            return RegistryErrorResponse(
                f"An error response is received from the docker registry '{host}'. Please retry later.",
                additional_info=(diagnosis.as_info(),),
            )
        return InaccessibleImage(inaccessible_message(image, group), additional_info=(diagnosis.as_info(),))
