"""The two deterministic hashes of the template language, bit-compatible with Azure.

``uniqueString(a, b, ...)``: the arguments joined with ``-``, UTF-8 encoded, hashed with the
64-bit MurmurHash variant of Azure Resource Manager (two 32-bit lanes, Murmur3-style mixing, the
constants below), then written as 13 characters of base32 (alphabet ``a-z2-7``), taking five bits
at a time from the most significant end (the 13th character holds the last four bits).

``guid(a, b, ...)``: a name-based version-5 UUID (RFC 4122 §4.3: SHA-1 over the namespace's 16
bytes in network order followed by the name) of the arguments joined with ``-``, in ARM's fixed
namespace ``11fb06fb-712d-4ddd-98c7-e71bbd588830``; lower-case, hyphenated.

Both were checked against values produced by Azure; see tests/unit/templates/test_hashing.py.
"""

from __future__ import annotations

import uuid

_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF
_C1 = 0x239B961B
_C2 = 0xAB0E9789
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
_GUID_NAMESPACE = uuid.UUID("11fb06fb-712d-4ddd-98c7-e71bbd588830")


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (32 - bits))) & _MASK32


def _fmix(value: int) -> int:
    value ^= value >> 16
    value = (value * 0x85EBCA6B) & _MASK32
    value ^= value >> 13
    value = (value * 0xC2B2AE35) & _MASK32
    return value ^ (value >> 16)


def _mix_lane1(word: int) -> int:
    return (_rotl((word * _C1) & _MASK32, 15) * _C2) & _MASK32


def _mix_lane2(word: int) -> int:
    return (_rotl((word * _C2) & _MASK32, 17) * _C1) & _MASK32


def murmur_hash64(data: bytes) -> int:
    """ARM's 64-bit MurmurHash of ``data`` (seed 0), as an unsigned integer."""
    h1 = h2 = 0
    length = len(data)
    whole = length - length % 8
    for offset in range(0, whole, 8):
        k1 = int.from_bytes(data[offset : offset + 4], "little")
        k2 = int.from_bytes(data[offset + 4 : offset + 8], "little")
        h1 = (_rotl(h1 ^ _mix_lane1(k1), 19) + h2) & _MASK32
        h1 = (h1 * 5 + 0x561CCD1B) & _MASK32
        h2 = (_rotl(h2 ^ _mix_lane2(k2), 13) + h1) & _MASK32
        h2 = (h2 * 5 + 0x0BCAA747) & _MASK32
    tail = data[whole:]
    if tail:
        h1 ^= _mix_lane1(int.from_bytes(tail[:4], "little"))
        if len(tail) > 4:
            h2 ^= _mix_lane2(int.from_bytes(tail[4:], "little"))
    h1 ^= length
    h2 ^= length
    h1 = (h1 + h2) & _MASK32
    h2 = (h2 + h1) & _MASK32
    h1 = _fmix(h1)
    h2 = _fmix(h2)
    h1 = (h1 + h2) & _MASK32
    h2 = (h2 + h1) & _MASK32
    return (h2 << 32) | h1


def unique_string(*values: str) -> str:
    """``uniqueString(values...)``: 13 deterministic characters from ``[a-z2-7]``."""
    digest = murmur_hash64("-".join(values).encode("utf-8"))
    chars: list[str] = []
    for _ in range(13):
        chars.append(_BASE32[digest >> 59])
        digest = (digest << 5) & _MASK64
    return "".join(chars)


def deterministic_guid(*values: str) -> str:
    """``guid(values...)``: a version-5 UUID in ARM's namespace."""
    return str(uuid.uuid5(_GUID_NAMESPACE, "-".join(values)))
