"""Identity errors. ``code`` holds the OAuth2 ``error`` value; the message starts with Entra's
AADSTS code so that clients (MSAL, az CLI) show users the text they would see against Azure."""

from __future__ import annotations

from moorage.core.errors import Conflict, InvalidArgument, NotFound, Unauthenticated


class OAuthInvalidRequest(InvalidArgument):
    default_code = "invalid_request"


class OAuthInvalidClient(Unauthenticated):
    """Wrong client secret (HTTP 401)."""

    default_code = "invalid_client"


class OAuthUnauthorizedClient(InvalidArgument):
    """Unknown application id in this tenant (HTTP 400)."""

    default_code = "unauthorized_client"


class OAuthUnsupportedGrant(InvalidArgument):
    default_code = "unsupported_grant_type"


class OAuthInvalidScope(InvalidArgument):
    default_code = "invalid_scope"


class OAuthInvalidResource(InvalidArgument):
    default_code = "invalid_resource"


class TenantNotFound(NotFound):
    default_code = "TenantNotFound"


class PrincipalNotFound(NotFound):
    default_code = "PrincipalNotFound"


class RoleAssignmentExists(Conflict):
    default_code = "RoleAssignmentExists"


class RoleDefinitionNotFound(InvalidArgument):
    default_code = "RoleDefinitionDoesNotExist"


class RoleAssignmentUpdateNotPermitted(InvalidArgument):
    default_code = "RoleAssignmentUpdateNotPermitted"


class RoleAssignmentNotFound(NotFound):
    default_code = "RoleAssignmentNotFound"
