"""Client-secret hashing and the local CA."""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509

from moorage.core import passwords as credentials
from moorage.tls import ensure_server_tls


def test_secrets_are_salted_and_verified() -> None:
    secret = credentials.generate_secret()
    first, second = credentials.hash_secret(secret), credentials.hash_secret(secret)
    assert first != second
    assert secret not in first
    assert credentials.verify_secret(secret, first)
    assert not credentials.verify_secret(secret + "x", first)
    assert not credentials.verify_secret(secret, "garbage")


def test_server_certificate_covers_loopback_and_extra_names(tmp_path: Path) -> None:
    tls = ensure_server_tls(tmp_path / "tls", ["moorage.test", "10.1.2.3"])
    cert = x509.load_pem_x509_certificate(tls.cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "moorage.test"}
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1", "10.1.2.3"}
    context = ssl.create_default_context(cafile=str(tls.ca_path))
    context.load_cert_chain(tls.cert_path, tls.key_path)
    assert oct(tls.key_path.stat().st_mode & 0o777) == "0o600"


def test_ca_is_kept_and_certificate_reissued_for_new_names(tmp_path: Path) -> None:
    first = ensure_server_tls(tmp_path / "tls")
    ca_before = first.ca_path.read_bytes()
    cert_before = first.cert_path.read_bytes()
    assert ensure_server_tls(tmp_path / "tls").cert_path.read_bytes() == cert_before
    second = ensure_server_tls(tmp_path / "tls", ["new.example"])
    assert second.ca_path.read_bytes() == ca_before
    assert second.cert_path.read_bytes() != cert_before
