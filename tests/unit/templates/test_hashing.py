"""uniqueString() and guid(): Azure's values.

uniqueString: every expected value below was produced by Azure Resource Manager itself (a
deployment output, or Microsoft's Azure.Deployments.Expression library); the sources are named
per case. guid: Azure publishes the algorithm (RFC 4122 §4.3 name-based UUID, "with some
modifications", learn.microsoft.com .../bicep/bicep-functions-string#guid) but no input/output
pair could be found in Microsoft's docs or samples; the cases pin the version-5 layout in ARM's
namespace and agree with independent reimplementations (see test docstrings).
"""

from __future__ import annotations

import uuid

import pytest

from moorage.deployments.templates import deterministic_guid, unique_string
from moorage.deployments.templates.hashing import murmur_hash64
from tests.unit.templates.support import ev


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        # github.com/JasonWhall/go-azure-uniquestring README: "hello","world" -> a7wkljktk6wne.
        (("hello", "world"), "a7wkljktk6wne"),
        # stackoverflow.com/questions/43295720 (answer by Alex KeySmith): the value returned by
        # Azure.Deployments.Expression's ExpressionBuiltInFunctions for uniqueString("tyeth").
        (("tyeth",), "zcztcwvu6iyg6"),
        # Azure/terraform-provider-azapi internal/services/functions/unique_string_function_test.go
        # (Microsoft's provider, documented to match ARM's uniqueString).
        (("/subscriptions/00000000-0000-0000-0000-000000000000", "resource-id"), "cwvxuqg24sifi"),
        # microsoft/commercial-marketplace-offer-deploy test/UnitTests ArmFunctionsTests.cs:
        # "UniqueStringShouldEqualValueCreatedFromArmTemplate" (a value taken from an ARM output).
        (
            (
                "/subscriptions/31e9f9a0-9fd2-4294-a0a3-0101246d9700/resourceGroups/rg-modm201-20230913120256/providers/Microsoft.Compute/virtualMachines/bobjacmodm201",
            ),
            "yvjxno3je5on2",
        ),
    ],
)
def test_unique_string_matches_azure(arguments: tuple[str, ...], expected: str) -> None:
    assert unique_string(*arguments) == expected


def test_unique_string_hash_matches_the_published_intermediate_value() -> None:
    # go-azure-uniquestring README: "hello-world" hashes to 571013382255652050.
    assert murmur_hash64(b"hello-world") == 571013382255652050


def test_unique_string_function_joins_its_arguments_with_a_dash() -> None:
    assert ev("[uniqueString('hello', 'world')]") == "a7wkljktk6wne"
    assert ev("[uniqueString('hello-world')]") == "a7wkljktk6wne"


@pytest.mark.parametrize("length", range(17))
def test_unique_string_is_13_base32_characters_for_every_tail_length(length: int) -> None:
    value = unique_string("x" * length)
    assert len(value) == 13
    assert set(value) <= set("abcdefghijklmnopqrstuvwxyz234567")


def test_unique_string_is_case_sensitive_and_order_sensitive() -> None:
    assert unique_string("ABC") != unique_string("abc")
    assert unique_string("a", "b") != unique_string("b", "a")


def test_unique_string_hashes_utf8() -> None:
    assert unique_string("é") != unique_string("e")
    assert murmur_hash64("é".encode()) == murmur_hash64(b"\xc3\xa9")


def test_guid_is_a_version5_uuid_in_arms_namespace_over_the_dashed_arguments() -> None:
    expected = uuid.uuid5(uuid.UUID("11fb06fb-712d-4ddd-98c7-e71bbd588830"), "hello-world")
    value = deterministic_guid("hello", "world")
    assert value == str(expected)
    assert uuid.UUID(value).version == 5
    assert uuid.UUID(value).variant == uuid.RFC_4122


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        # Values agreed by two independent reimplementations of ARM's guid() (UUIDv5, namespace
        # 11fb06fb-..., arguments joined with '-'); not values published by Microsoft.
        (("hello",), "520f8434-fe3a-5d99-888d-450a827486a1"),
        (("hello", "world"), "a5b868f8-11fe-567a-ace0-e77cc87f104e"),
        (("world", "hello"), "b1db13b3-4ca6-5782-bf9e-8495c3532f9d"),
    ],
)
def test_guid_values(arguments: tuple[str, ...], expected: str) -> None:
    assert deterministic_guid(*arguments) == expected


def test_guid_function_depends_on_argument_order() -> None:
    # learn.microsoft.com bicep-functions-string#guid: guid('hello', 'world') and
    # guid('world', 'hello') don't return the same value.
    assert ev("[guid('hello', 'world')]") != ev("[guid('world', 'hello')]")
    assert ev("[guid('hello', 'world')]") == "a5b868f8-11fe-567a-ace0-e77cc87f104e"
