"""Secrets that are only ever checked (client secrets, token passwords): generated with a CSPRNG,
stored only as salted scrypt hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_N, _R, _P = 2**14, 8, 1
_SECRET_BYTES = 30


def generate_secret() -> str:
    """A new client secret in Entra's shape: 40 URL-safe characters."""
    return secrets.token_urlsafe(_SECRET_BYTES)


def hash_secret(secret: str) -> str:
    """``scrypt$<salt>$<hash>``, both base64; salt is 16 random bytes."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time comparison of ``secret`` against a :func:`hash_secret` result."""
    try:
        scheme, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    salt = base64.b64decode(salt_b64)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))


def hint(secret: str) -> str:
    """The first three characters, as Entra shows them (``hint``)."""
    return secret[:3]
