"""Identity: tenants, service principals, managed identities, roles, role assignments, tokens.

Entra-compatible token endpoints live in :mod:`moorage.identity.http`; everything else in this
package is transport-neutral.
"""
