"""The seven checks of one image, from the puller's viewpoint.

One traced run of the platform's own check (:meth:`ImageAccess.attempt`: the credential
container groups would use, on the platform channel for moorage's registries) decides; its
failure is named by the one classifier (:func:`moorage.instances.access.classify`), so a report
and a container group's ``additionalInfo`` can never disagree. The trace and the registry's
own settings then say, check by check, what happened before the failure:

1. reference — parsed and normalised; the registry resolved (moorage by login server or by
   Azure's ``<name>.azurecr.io`` alias, or remote) and the channel a pull takes;
2. reachability — the first exchange: peer, channel, TLS;
3. firewall — public network access, default action, the IP rule that matched the platform's
   address, and whether the trusted-services bypass applies (trusted service, managed identity,
   bypass enabled, SKU), decided by the registry's own rules;
4. authentication — the challenge, the credential kind, the token exchanges, the granted scope;
5. authorization — the principal's role assignments and scopes against the pull action;
6. manifest — tag to digest, media type, platform (index entries, attestation entries);
7. blobs — the config and every layer answered by the registry (``HEAD``, same grant).

Nothing here decides on its own what the pull already decided; the firewall and RBAC evidence
explain it. Evidence never holds a secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from moorage.core.reference import DOCKER_HUB
from moorage.diagnose.report import CheckReport, Status, StepReport
from moorage.diagnose.trace import Exchange, Recorder, TracingRouter, granted_access, parse_challenge
from moorage.instances.access import (
    CHECK_ORDER,
    PULL_ACTION,
    AccessAttempt,
    Check,
    CredentialKind,
    ImageAccess,
    RegistryCredential,
    credential_evidence,
)
from moorage.instances.images import PullCause, PullFailure, PullStep, ResolvedImage

BYPASS_AZURE_SERVICES = "AzureServices"
TRUSTED_SERVICE = "Microsoft.ContainerInstance/containerGroups"
ATTESTATION_ANNOTATION = "vnd.docker.reference.type"


@dataclass(frozen=True)
class FirewallVerdict:
    """The registry's own firewall decision for a platform pull (``reason`` as the registry logs
    it: ``public-access-disabled``, ``ip-rule``, ``default-allow``, ``default-deny``,
    ``trusted-service-bypass``) and for the platform's address alone (no bypass)."""

    allowed: bool
    reason: str
    address_allowed: bool
    address_reason: str
    matched_rule: str | None
    audit: bool = False  # the registry only logs denials


class FirewallPolicy(Protocol):
    async def verdict(self, host: str, *, managed_identity: bool) -> FirewallVerdict | None:
        """The decision for a platform pull of the local registry ``host`` with or without a
        managed identity; ``None`` when ``host`` is not a moorage registry."""
        ...


@dataclass(frozen=True)
class RoleFact:
    """One role assignment of a principal, and whether it grants the action at the scope."""

    id: str
    role: str
    scope: str
    grants: bool


class RoleDirectory(Protocol):
    async def service_principal(self, tenant_id: str, app_id: str) -> str | None:
        """The object id of the service principal with this appId, or ``None``."""
        ...

    async def assignments(self, principal_id: str, scope: str, action: str) -> list[RoleFact]:
        """Every role assignment of ``principal_id``, each saying whether it grants ``action``
        at ``scope``."""
        ...


@dataclass
class _Run:
    """What one traced check produced, for the step builders."""

    image: str
    found: AccessAttempt
    exchanges: list[Exchange]
    tenant_id: str
    blob_failure: PullFailure | None = None
    blob_evidence: list[dict[str, Any]] | None = None


class Prober:
    """Runs the checks of one image (see the module docstring)."""

    def __init__(self, firewall: FirewallPolicy, roles: RoleDirectory, *, platform_address: str) -> None:
        self._firewall = firewall
        self._roles = roles
        self._platform_address = platform_address

    async def probe(
        self,
        access: ImageAccess,
        router: TracingRouter,
        recorder: Recorder,
        image: str,
        credentials: Sequence[RegistryCredential],
        *,
        group: str | None,
        tenant_id: str,
    ) -> CheckReport:
        """Check ``image`` with ``access`` (whose source routes through ``router``, recording into
        ``recorder``) and report every step."""
        found = await access.attempt(image, credentials)
        run = _Run(image, found, recorder.exchanges, tenant_id)
        diagnosis = found.diagnosis
        if found.resolved is not None:
            await self._blobs(run, found.resolved, router, recorder)
            if run.blob_failure is not None:
                diagnosis = access.diagnose(image, run.blob_failure, found.use, found.facts)
        failed = diagnosis.check if diagnosis is not None else None
        steps: list[StepReport] = []
        for check in CHECK_ORDER:
            if failed is not None and CHECK_ORDER.index(check) > CHECK_ORDER.index(failed):
                steps.append(StepReport(check, Status.SKIPPED))
                continue
            status, evidence = await self._step(check, run)
            if check is failed:
                status = Status.FAILED
            steps.append(StepReport(check, status, evidence))
        return CheckReport(group, image, steps, diagnosis.as_json() if diagnosis is not None else None)

    async def _step(self, check: Check, run: _Run) -> tuple[Status, dict[str, Any]]:
        match check:
            case Check.REFERENCE:
                return _reference(run)
            case Check.REACHABILITY:
                return _reachability(run)
            case Check.FIREWALL:
                return await self._firewall_step(run)
            case Check.AUTHENTICATION:
                return _authentication(run)
            case Check.AUTHORIZATION:
                return await self._authorization(run)
            case Check.MANIFEST:
                return _manifest(run)
            case Check.BLOBS:
                return Status.PASSED, {"blobs": run.blob_evidence or []}

    # -- 3. firewall -----------------------------------------------------------------------------

    async def _firewall_step(self, run: _Run) -> tuple[Status, dict[str, Any]]:
        facts = run.found.facts
        if facts is None:
            return Status.NOT_APPLICABLE, {
                "reason": "not a moorage registry: its network rules are not visible from here; what it "
                "answered is judged by the other checks"
            }
        mi = run.found.use.kind is CredentialKind.MANAGED_IDENTITY
        verdict = await self._firewall.verdict(facts.login_server, managed_identity=mi)
        evidence: dict[str, Any] = {
            "publicNetworkAccess": facts.public_network_access,
            "defaultAction": facts.default_action,
            "ipRules": list(facts.ip_rules),
            "pullerAddress": self._platform_address,
        }
        bypass_enabled = facts.bypass == BYPASS_AZURE_SERVICES
        evidence["trustedServicesBypass"] = {
            "trustedService": TRUSTED_SERVICE,
            "platformChannel": True,
            "managedIdentity": mi,
            "bypassEnabled": bypass_enabled,
            "networkRuleBypassOptions": facts.bypass,
            "sku": facts.sku,
            "firewallSupportedBySku": facts.sku == "Premium",
            "applies": verdict is not None and verdict.reason == "trusted-service-bypass",
        }
        if verdict is not None:
            evidence["matchedIpRule"] = verdict.matched_rule
            evidence["addressVerdict"] = "allowed" if verdict.address_allowed else "denied"
            evidence["addressReason"] = verdict.address_reason
            evidence["decision"] = "allowed" if verdict.allowed else "denied"
            evidence["reason"] = verdict.reason
            if verdict.audit:
                evidence["auditMode"] = True
        return Status.PASSED, evidence

    # -- 5. authorization ------------------------------------------------------------------------

    async def _authorization(self, run: _Run) -> tuple[Status, dict[str, Any]]:
        found = run.found
        use, facts = found.use, found.facts
        evidence: dict[str, Any] = {"action": PULL_ACTION}
        granted = _granted(run.exchanges)
        if granted is not None:
            evidence["grantedScope"] = granted
        if facts is None:
            evidence["rule"] = "a registry outside moorage decides with its own rules"
            return Status.PASSED if granted is not None or found.ok else Status.NOT_APPLICABLE, evidence
        evidence["scope"] = facts.resource_id
        match use.kind:
            case CredentialKind.MANAGED_IDENTITY | CredentialKind.SERVICE_PRINCIPAL:
                principal = use.principal_id
                if principal is None and use.username:
                    principal = await self._roles.service_principal(run.tenant_id, use.username)
                evidence["principalId"] = principal
                if principal is not None:
                    facts_ = await self._roles.assignments(principal, facts.resource_id, PULL_ACTION)
                    evidence["roleAssignments"] = [
                        {"id": f.id, "role": f.role, "scope": f.scope, "grantsPull": f.grants} for f in facts_
                    ]
                    evidence["granted"] = any(f.grants for f in facts_)
            case CredentialKind.ADMIN_USER:
                evidence["rule"] = "the admin user may pull every repository (RBAC is not consulted)"
            case CredentialKind.REPOSITORY_TOKEN:
                evidence["rule"] = "the token's scope map decides"
            case CredentialKind.ANONYMOUS:
                evidence["rule"] = "anonymous pull"
                evidence["anonymousPullEnabled"] = facts.anonymous_pull_enabled
            case _:
                evidence["rule"] = "the refresh token's grant decides"
        return Status.PASSED, evidence

    # -- 7. blobs --------------------------------------------------------------------------------

    async def _blobs(
        self, run: _Run, resolved: ResolvedImage, router: TracingRouter, recorder: Recorder
    ) -> None:
        """``HEAD`` the config and every layer with the grant the manifest was fetched with."""
        reference = resolved.reference
        host = "registry-1.docker.io" if reference.registry == DOCKER_HUB else reference.registry
        routed, transport = router.route(host)
        if transport is None:  # pragma: no cover - the tracing router always gives one
            return
        authorization = recorder.authorization_for(f"https://{routed}")
        evidence: list[dict[str, Any]] = []
        for descriptor in (resolved.config_descriptor, *resolved.layers):
            url = f"https://{routed}/v2/{reference.repository}/blobs/{descriptor.digest}"
            headers = {"Authorization": authorization} if authorization else {}
            entry: dict[str, Any] = {
                "digest": descriptor.digest,
                "mediaType": descriptor.media_type,
                "size": descriptor.size,
            }
            try:
                response = await transport.handle_async_request(httpx.Request("HEAD", url, headers=headers))
            except httpx.TransportError as exc:
                run.blob_failure = PullFailure(
                    f"HEAD of blob {descriptor.digest} failed: {type(exc).__name__}",
                    cause=PullCause.UNREACHABLE,
                    step=PullStep.BLOB,
                    image=run.image,
                    peer=routed,
                    url=url,
                )
                break
            await response.aclose()
            entry["status"] = response.status_code
            evidence.append(entry)
            if response.status_code not in (200, 301, 302, 303, 307, 308):
                cause = {401: PullCause.UNAUTHORIZED, 403: PullCause.DENIED}.get(
                    response.status_code, PullCause.REGISTRY_ERROR
                )
                run.blob_failure = PullFailure(
                    f"HEAD of blob {descriptor.digest}: HTTP {response.status_code}",
                    cause=cause,
                    step=PullStep.BLOB,
                    image=run.image,
                    status=response.status_code,
                    registry_code="BLOB_UNKNOWN" if response.status_code == 404 else None,
                    peer=routed,
                    url=url,
                )
                break
            length = response.headers.get("content-length")
            if response.status_code == 200 and length is not None and length.isdigit():
                entry["sizeMatches"] = int(length) == descriptor.size
        run.blob_evidence = evidence


# -- the steps that need only the run -------------------------------------------------------------


def _reference(run: _Run) -> tuple[Status, dict[str, Any]]:
    found = run.found
    ref = found.reference
    if ref is None:
        return Status.FAILED, {"input": run.image}
    facts = found.facts
    evidence: dict[str, Any] = {
        "input": run.image,
        "normalized": str(ref),
        "registry": ref.registry,
        "repository": ref.repository,
    }
    if ref.tag is not None:
        evidence["tag"] = ref.tag
    if ref.digest is not None:
        evidence["digest"] = ref.digest
    if facts is not None:
        alias = ref.registry.lower().endswith(".azurecr.io")
        evidence["registryKind"] = "moorage (Azure-form alias)" if alias else "moorage"
        evidence["registryId"] = facts.resource_id
        evidence["loginServer"] = facts.login_server
    else:
        evidence["registryKind"] = "remote"
    first = run.exchanges[0] if run.exchanges else None
    evidence["channel"] = first.channel if first else ("platform" if facts is not None else "network")
    evidence.update(credential_evidence(found.use))
    return Status.PASSED, evidence


def _reachability(run: _Run) -> tuple[Status, dict[str, Any]]:
    if not run.exchanges:
        return Status.SKIPPED, {}
    first = run.exchanges[0]
    evidence: dict[str, Any] = {**first.summary()}
    evidence["peer"] = first.url.split("/")[2]
    if first.channel == "platform":
        evidence["tls"] = "not used: the in-process platform channel"
    elif first.url.startswith("https://"):
        evidence["tls"] = (
            "verified against the platform's trust store" if first.status is not None else "failed"
        )
    failure = run.found.failure
    if failure is not None and failure.cause in (PullCause.UNREACHABLE, PullCause.TLS):
        evidence["detail"] = failure.message
    return Status.PASSED, evidence


def _authentication(run: _Run) -> tuple[Status, dict[str, Any]]:
    evidence: dict[str, Any] = credential_evidence(run.found.use)
    challenge = next((e for e in run.exchanges if e.path == "/v2/"), None)
    realm_path = None
    if challenge is not None:
        entry: dict[str, Any] = challenge.summary()
        header = challenge.headers.get("www-authenticate")
        if header:
            parsed = parse_challenge(header)
            entry["challenge"] = parsed
            realm = parsed.get("realm")
            if realm:
                realm_path = realm.split("://", 1)[-1].partition("/")[2]
                realm_path = "/" + realm_path.split("?", 1)[0]
        evidence["challenge"] = entry
    tokens = [
        e
        for e in run.exchanges
        if e.path.endswith("/oauth2/exchange") or (realm_path is not None and e.path == realm_path)
    ]
    if tokens:
        evidence["tokenExchange"] = [_token_step(e) for e in tokens]
    granted = _granted(run.exchanges)
    if granted is not None:
        evidence["grantedScope"] = granted
    if challenge is not None and challenge.status == 200:
        evidence["note"] = "the registry asked for no credentials"
    return Status.PASSED, evidence


def _token_step(exchange: Exchange) -> dict[str, Any]:
    out = exchange.summary()
    body = exchange.json()
    if isinstance(body, dict):
        if exchange.status == 200:
            issued = [k for k in ("refresh_token", "access_token", "token") if body.get(k)]
            out["issued"] = issued
        else:
            error = body.get("error") or body.get("errors")
            if isinstance(error, str):
                out["error"] = {"code": error, "description": body.get("error_description")}
            elif isinstance(error, list) and error and isinstance(error[0], dict):
                out["error"] = {"code": error[0].get("code"), "message": error[0].get("message")}
    return out


def _granted(exchanges: list[Exchange]) -> list[dict[str, Any]] | None:
    """The access the last issued registry token grants (``None``: no token seen, or opaque)."""
    for exchange in reversed(exchanges):
        body = exchange.json() if exchange.status == 200 else None
        if not isinstance(body, dict):
            continue
        token = body.get("access_token") or body.get("token")
        if isinstance(token, str) and "refresh_token" not in body:
            return granted_access(token)
    return None


def _manifest(run: _Run) -> tuple[Status, dict[str, Any]]:
    resolved = run.found.resolved
    evidence: dict[str, Any] = {}
    manifests = [e for e in run.exchanges if "/manifests/" in e.path]
    if manifests:
        evidence["requests"] = [e.summary() | _manifest_headers(e) for e in manifests]
    index = next(
        (e.json() for e in manifests if isinstance(e.json(), dict) and "manifests" in e.json()), None
    )
    if isinstance(index, dict):
        entries = _index_entries(index)
        evidence["indexEntries"] = entries
        evidence["attestationOnly"] = bool(entries) and all(e["attestation"] for e in entries)
    if resolved is not None:
        evidence |= {
            "locator": resolved.reference.locator,
            "digest": resolved.digest,
            "mediaType": resolved.media_type,
            "platform": str(resolved.platform),
            "manifestDigest": resolved.manifest_digest,
            "manifestMediaType": resolved.manifest_media_type,
            "config": resolved.config_descriptor.digest,
            "layers": len(resolved.layers),
        }
    return Status.PASSED, evidence


def _manifest_headers(exchange: Exchange) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "docker-content-digest" in exchange.headers:
        out["digest"] = exchange.headers["docker-content-digest"]
    if "content-type" in exchange.headers:
        out["contentType"] = exchange.headers["content-type"]
    return out


def _index_entries(index: dict[str, Any]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for item in index.get("manifests") or []:
        if not isinstance(item, dict):
            continue
        raw_platform, raw_annotations = item.get("platform"), item.get("annotations")
        platform: dict[str, Any] = raw_platform if isinstance(raw_platform, dict) else {}
        annotations: dict[str, Any] = raw_annotations if isinstance(raw_annotations, dict) else {}
        text = "/".join(str(platform[k]) for k in ("os", "architecture", "variant") if platform.get(k))
        attestation = annotations.get(ATTESTATION_ANNOTATION) == "attestation-manifest" or "unknown" in (
            platform.get("os"),
            platform.get("architecture"),
        )
        entries.append(
            {
                "platform": text or None,
                "digest": item.get("digest"),
                "mediaType": item.get("mediaType"),
                "attestation": attestation,
            }
        )
    return entries
