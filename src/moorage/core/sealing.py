"""Sealing: authenticated encryption (AES-256-GCM) for secrets that must be readable again,
such as registry admin passwords. The key lives in a 0600 file beside the signing keys.

Secrets that only need checking (client secrets, token passwords) are hashed instead.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class Sealer:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def load(cls, path: Path) -> Sealer:
        """Load the key at ``path``, creating it (mode 0600) on first use."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, AESGCM.generate_key(bit_length=256))
                os.fsync(fd)
            finally:
                os.close(fd)
        return cls(path.read_bytes())

    def seal(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, plaintext.encode(), None)).decode()

    def unseal(self, sealed: str) -> str:
        raw = base64.b64decode(sealed)
        return self._aead.decrypt(raw[:12], raw[12:], None).decode()
