"""Secrets out of documents before they leave the machine (support bundles).

:func:`redact` walks a JSON document and replaces, with :data:`REDACTED`:

* the value of every property whose name says it holds a secret — ``password``, ``secret``,
  ``clientSecret``, ``secureValue``, ``token``/``accessToken``/``refreshToken`` (any spelling),
  keys and connection strings, ``IDENTITY_HEADER``;
* the ``value`` of an environment variable (``{"name", "value"}``) whose name says so
  (``*PASSWORD*``, ``*SECRET*``, ``*TOKEN*``, ``*KEY*``, ``IDENTITY_HEADER``, …);
* the ``value`` and ``defaultValue`` of template or deployment parameters typed
  ``securestring``/``secureobject``, and the ``value``s of a registry's ``passwords`` list;
* inside any string: JWTs, ``Basic``/``Bearer`` credentials, user info in URLs, and every value
  the caller names as a known secret (``known``: e.g. the client secret of ``connection.json``).

The rules err on the side of removing: a bundle is for reading what happened, not for
reproducing credentials.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

REDACTED = "<redacted>"

_SECRET_KEYS = re.compile(
    r"^(password|passwords|secret|client_?secret|secure_?value|(access_?|refresh_?|id_?|sas_?)?token|"
    r"primary_?key|secondary_?key|account_?key|storage_?account_?key|private_?key|key_?value|"
    r"connection_?string|identity_?header|authorization|credentials?|api_?key|sas|signature)$",
    re.IGNORECASE,
)
_SECRET_NAMES = re.compile(
    r"(password|passwd|secret|token|key|credential|identity_header|auth)", re.IGNORECASE
)
_SECURE_TYPES = frozenset({"securestring", "secureobject"})
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_AUTH_HEADER = re.compile(r"\b(Basic|Bearer)\s+[A-Za-z0-9+/=._~-]{8,}", re.IGNORECASE)
_URL_USERINFO = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/@:\s]*):(?P<password>[^/@\s]+)@", re.IGNORECASE
)


def redact(document: Any, known: Iterable[str] = ()) -> Any:
    """A copy of ``document`` with every secret replaced (see the module docstring)."""
    secrets = sorted({s for s in known if s and len(s) >= 4}, key=len, reverse=True)
    return _walk(document, secrets)


def redact_text(text: str, known: Iterable[str] = ()) -> str:
    """``text`` with tokens, credentials in headers and URLs, and ``known`` secrets replaced."""
    secrets = sorted({s for s in known if s and len(s) >= 4}, key=len, reverse=True)
    return _text(text, secrets)


def _walk(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, dict):
        return _object(value, secrets)
    if isinstance(value, list):
        return [_walk(v, secrets) for v in value]
    if isinstance(value, str):
        return _text(value, secrets)
    return value


def _object(obj: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    parameter_type = obj.get("type")
    secure_parameter = isinstance(parameter_type, str) and parameter_type.lower() in _SECURE_TYPES
    name = obj.get("name")
    secret_variable = isinstance(name, str) and _SECRET_NAMES.search(name) is not None and "value" in obj
    for key, value in obj.items():
        lowered = key.lower()
        if _SECRET_KEYS.match(key) and value not in (None, "", [], {}):
            out[key] = _redacted_like(value)
        elif (secure_parameter and lowered in ("value", "defaultvalue")) or (
            secret_variable and lowered == "value"
        ):
            out[key] = REDACTED
        else:
            out[key] = _walk(value, secrets)
    return out


_DESCRIPTIVE = frozenset({"type", "name", "metadata", "description"})


def _redacted_like(value: Any) -> Any:
    """``REDACTED`` in the value's place; an object (a parameter named ``secret``) and a list of
    ``{name, value}`` keep what only describes them (``type``, ``name``)."""
    if isinstance(value, dict):
        return {
            k: (v if k.lower() in _DESCRIPTIVE and isinstance(v, str) else REDACTED) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redacted_like(item) if isinstance(item, dict) else REDACTED for item in value]
    return REDACTED


def _text(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _JWT.sub(REDACTED, text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:{REDACTED}@", text)
