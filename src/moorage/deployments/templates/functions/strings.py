"""String functions (https://learn.microsoft.com/azure/azure-resource-manager/templates/template-functions-string).

Case rules follow ARM: ``startsWith``, ``endsWith``, ``indexOf`` and ``lastIndexOf`` ignore case;
``replace``, ``contains`` and ``equals`` do not. Error messages never quote argument values (they
may come from secure parameters): they name types, indexes and lengths only.
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from typing import TYPE_CHECKING

from moorage.deployments.templates.function_registry import (
    all_strings,
    function,
    int_arg,
    string_arg,
    type_error,
)
from moorage.deployments.templates.hashing import deterministic_guid, unique_string
from moorage.deployments.templates.netformat import CompositeFormatError, composite_format
from moorage.deployments.templates.values import (
    Json,
    LenientJsonError,
    as_text,
    deep_equal,
    is_int,
    parse_lenient_json,
)

if TYPE_CHECKING:
    from moorage.deployments.templates.evaluator import Invocation


def _decode_base64(inv: Invocation, text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise inv.fail("the provided value is not a valid base64 string") from None


def _utf8(inv: Invocation, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise inv.fail("the decoded value is not valid UTF-8 text") from None


@function("base64", min_args=1, max_args=1)
def _base64(inv: Invocation, args: list[Json]) -> Json:
    return base64.b64encode(string_arg(inv, args, 0).encode("utf-8")).decode("ascii")


@function("base64ToString", min_args=1, max_args=1)
def _base64_to_string(inv: Invocation, args: list[Json]) -> Json:
    return _utf8(inv, _decode_base64(inv, string_arg(inv, args, 0)))


@function("base64ToJson", min_args=1, max_args=1)
def _base64_to_json(inv: Invocation, args: list[Json]) -> Json:
    return parse_json_text(inv, _utf8(inv, _decode_base64(inv, string_arg(inv, args, 0))))


def parse_json_text(inv: Invocation, text: str) -> Json:
    if not text.strip():
        return None
    try:
        return parse_lenient_json(text)
    except LenientJsonError as exc:
        raise inv.fail(
            f"the provided string is not valid JSON ({exc.reason} at position {exc.position})"
        ) from None


@function("dataUri", min_args=1, max_args=1)
def _data_uri(inv: Invocation, args: list[Json]) -> Json:
    payload = base64.b64encode(string_arg(inv, args, 0).encode("utf-8")).decode("ascii")
    return f"data:text/plain;charset=utf8;base64,{payload}"


_DATA_URI = re.compile(r"^data:(?P<meta>[^,]*),(?P<data>.*)$", re.DOTALL)


@function("dataUriToString", min_args=1, max_args=1)
def _data_uri_to_string(inv: Invocation, args: list[Json]) -> Json:
    match = _DATA_URI.match(string_arg(inv, args, 0))
    if not match:
        raise inv.fail("the provided value is not a valid data URI")
    meta, data = match.group("meta"), match.group("data")
    if meta.casefold().endswith(";base64"):
        return _utf8(inv, _decode_base64(inv, data))
    return urllib.parse.unquote(data)


@function("startsWith", min_args=2, max_args=2)
def _starts_with(inv: Invocation, args: list[Json]) -> Json:
    text, prefix = string_arg(inv, args, 0), string_arg(inv, args, 1)
    return text.lower().startswith(prefix.lower())


@function("endsWith", min_args=2, max_args=2)
def _ends_with(inv: Invocation, args: list[Json]) -> Json:
    text, suffix = string_arg(inv, args, 0), string_arg(inv, args, 1)
    return text.lower().endswith(suffix.lower())


@function("format", min_args=1)
def _format(inv: Invocation, args: list[Json]) -> Json:
    try:
        return composite_format(string_arg(inv, args, 0), args[1:])
    except CompositeFormatError as exc:
        raise inv.fail(str(exc).rstrip(".")) from None


@function("guid", min_args=1)
def _guid(inv: Invocation, args: list[Json]) -> Json:
    return deterministic_guid(*all_strings(inv, args))


@function("uniqueString", min_args=1)
def _unique_string(inv: Invocation, args: list[Json]) -> Json:
    return unique_string(*all_strings(inv, args))


@function("newGuid", max_args=0)
def _new_guid(inv: Invocation, args: list[Json]) -> Json:
    if not inv.scope.permissions.nondeterministic:
        raise inv.not_expected("The function can only be used with parameter default values.")
    return inv.scope.shared.context.new_guid()


@function("padLeft", min_args=2, max_args=3)
def _pad_left(inv: Invocation, args: list[Json]) -> Json:
    value = args[0]
    if not (isinstance(value, str) or is_int(value)):
        raise type_error(inv, 0, "String", value)
    width = int_arg(inv, args, 1)
    fill = string_arg(inv, args, 2) if len(args) > 2 else " "
    if len(fill) != 1:
        raise inv.fail("the padding character must be a single character")
    if width > 16 * 1024:
        raise inv.fail("the total length must not exceed 16384")
    return as_text(value).rjust(width, fill)


@function("replace", min_args=3, max_args=3)
def _replace(inv: Invocation, args: list[Json]) -> Json:
    text, old, new = string_arg(inv, args, 0), string_arg(inv, args, 1), string_arg(inv, args, 2)
    if not old:
        raise inv.fail("the string to replace must not be empty")
    return text.replace(old, new)


@function("split", min_args=2, max_args=2)
def _split(inv: Invocation, args: list[Json]) -> Json:
    text = string_arg(inv, args, 0)
    delimiter = args[1]
    if isinstance(delimiter, str):
        separators = [delimiter]
    elif isinstance(delimiter, list) and all(isinstance(d, str) for d in delimiter):
        separators = [d for d in delimiter if isinstance(d, str)]
    else:
        raise type_error(inv, 1, "String", delimiter)
    separators = [s for s in separators if s]
    if not separators:
        return [text]
    # .NET tries the separators in order at each position: so does a regex alternation.
    parts: list[Json] = list(re.split("|".join(re.escape(s) for s in separators), text))
    return parts


@function("string", min_args=1, max_args=1)
def _string(inv: Invocation, args: list[Json]) -> Json:
    return as_text(args[0])


@function("substring", min_args=1, max_args=3)
def _substring(inv: Invocation, args: list[Json]) -> Json:
    text = string_arg(inv, args, 0)
    start = int_arg(inv, args, 1) if len(args) > 1 else 0
    length = int_arg(inv, args, 2) if len(args) > 2 else len(text) - start
    if start < 0 or length < 0 or start + length > len(text):
        raise inv.fail(
            "The index and length parameters must refer to a location within the string. The index "
            f"parameter: '{start}', the length parameter: '{length}', the length of the string parameter: "
            f"'{len(text)}'"
        )
    return text[start : start + length]


@function("toLower", min_args=1, max_args=1)
def _to_lower(inv: Invocation, args: list[Json]) -> Json:
    return string_arg(inv, args, 0).lower()


@function("toUpper", min_args=1, max_args=1)
def _to_upper(inv: Invocation, args: list[Json]) -> Json:
    return string_arg(inv, args, 0).upper()


@function("trim", min_args=1, max_args=1)
def _trim(inv: Invocation, args: list[Json]) -> Json:
    return string_arg(inv, args, 0).strip()


@function("uri", min_args=2, max_args=2)
def _uri(inv: Invocation, args: list[Json]) -> Json:
    base, relative = string_arg(inv, args, 0), string_arg(inv, args, 1)
    if not urllib.parse.urlsplit(base).scheme:
        raise inv.fail("the base URI must be an absolute URI")
    return urllib.parse.urljoin(base, relative)


@function("uriComponent", min_args=1, max_args=1)
def _uri_component(inv: Invocation, args: list[Json]) -> Json:
    # .NET Uri.EscapeDataString: everything but RFC 3986 unreserved characters is escaped.
    return urllib.parse.quote(string_arg(inv, args, 0), safe="-_.~")


@function("uriComponentToString", min_args=1, max_args=1)
def _uri_component_to_string(inv: Invocation, args: list[Json]) -> Json:
    return urllib.parse.unquote(string_arg(inv, args, 0))


@function("indexOf", min_args=2, max_args=2)
def _index_of(inv: Invocation, args: list[Json]) -> Json:
    container = args[0]
    if isinstance(container, list):
        return next((i for i, item in enumerate(container) if deep_equal(item, args[1])), -1)
    text, needle = string_arg(inv, args, 0), string_arg(inv, args, 1)
    return text.lower().find(needle.lower())


@function("lastIndexOf", min_args=2, max_args=2)
def _last_index_of(inv: Invocation, args: list[Json]) -> Json:
    container = args[0]
    if isinstance(container, list):
        matches = [i for i, item in enumerate(container) if deep_equal(item, args[1])]
        return matches[-1] if matches else -1
    text, needle = string_arg(inv, args, 0), string_arg(inv, args, 1)
    if not needle:
        return len(text) - 1 if text else 0
    return text.lower().rfind(needle.lower())
