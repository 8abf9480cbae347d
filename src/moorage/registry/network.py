"""The registry firewall: public network access, IP rules, and the trusted-services bypass.

Decisions use the TCP peer address the server saw (``X-Forwarded-For`` only counts when the peer
is an operator-configured trusted proxy). The trusted-services bypass applies only to requests
that arrive on the *platform channel* — an in-process transport that the container-instances
runtime uses for its own pulls, which no network client can reach — and that authenticate with a
managed identity. A client that merely holds a managed-identity token, a service principal, the
admin user or a scope-map token is judged by the IP rules like anyone else.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum

from moorage.core.errors import PermissionDenied
from moorage.registry.records import BYPASS_AZURE_SERVICES, Registry

FIREWALL_DOC = "https://aka.ms/acr/firewall"


class Origin(StrEnum):
    NETWORK = "network"
    PLATFORM = "platform"


class Denied(PermissionDenied):
    """The firewall refused the client (HTTP 403, OCI code ``DENIED``); ``reason`` says which rule."""

    default_code = "DENIED"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # Machine-readable: public-access-disabled, ip-rule, default-allow, default-deny,
    # trusted-service-bypass.
    reason: str
    matched_rule: str | None = None


def _in_rule(address: str, rule: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
        network = ipaddress.ip_network(rule, strict=False)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.version == network.version and ip in network


def decide(registry: Registry, peer: str, origin: Origin, *, managed_identity: bool | None) -> Decision:
    """Whether a request may proceed.

    ``managed_identity`` is ``True`` when the request authenticates with a managed identity,
    ``False`` for any other credential and ``None`` before authentication (the challenge and the
    token endpoints), where a platform request is let through so it can authenticate.
    """
    settings = registry.settings
    if (
        origin is Origin.PLATFORM
        and settings.network_rule_bypass == BYPASS_AZURE_SERVICES
        and managed_identity is not False
    ):
        return Decision(True, "trusted-service-bypass")
    if settings.public_network_access == "Disabled":
        return Decision(False, "public-access-disabled")
    rules = settings.network_rule_set
    if rules.default_action != "Deny":
        return Decision(True, "default-allow")
    for rule in rules.ip_rules:
        if _in_rule(peer, rule):
            return Decision(True, "ip-rule", rule)
    return Decision(False, "default-deny")


def denied(peer: str, decision: Decision) -> Denied:
    """ACR's exact firewall error."""
    return Denied(
        f"client with IP '{peer}' is not allowed access. Refer {FIREWALL_DOC} to grant access.",
        reason=decision.reason,
    )


def client_address(peer: str, forwarded_for: str | None, trusted_proxies: tuple[str, ...]) -> str:
    """The address to judge: the peer, or — only when the peer is a trusted proxy — the last
    untrusted hop of ``X-Forwarded-For``."""
    if not forwarded_for or not any(_in_rule(peer, p) for p in trusted_proxies):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not any(_in_rule(hop, p) for p in trusted_proxies):
            return hop
    return peer
