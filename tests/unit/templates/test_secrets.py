"""Values of secure parameters never appear in error messages or reprs, wherever the fault is."""

from __future__ import annotations

from typing import Any

import pytest

from moorage.deployments.templates import CachedResolver, RuntimeCall, TemplateError
from tests.unit.templates.support import plan_of, rid, template

SECRET = "correct-horse-battery-staple"
PARAMETERS = {"pw": {"type": "securestring"}, "cfg": {"type": "secureObject"}}
VALUES = {"pw": {"value": SECRET}, "cfg": {"value": {"token": SECRET}}}
SA = "Microsoft.Storage/storageAccounts"


def sa(**extra: Any) -> dict[str, Any]:
    return {"type": SA, "apiVersion": "2023-01-01", "name": "sa1", "location": "westus", **extra}


def assert_clean(error: TemplateError) -> None:
    texts = [error.message, str(error), repr(error), str(error.target), repr(error.additional_info)]
    texts += [d.message for d in error.details]
    for text in texts:
        assert SECRET not in text


@pytest.mark.parametrize(
    "resources",
    [
        [sa(name="[concat(parameters('pw'), '/x')]")],
        [sa(dependsOn=["[parameters('pw')]"])],
        [sa(properties={"x": "[createObject('a', 1)[parameters('pw')]]"})],
        [sa(properties={"x": "[parameters('cfg').missing]"})],
        [sa(properties={"x": "[int(parameters('pw'))]"})],
        [sa(properties={"x": "[json(parameters('pw'))]"})],
        [sa(properties={"x": "[base64ToString(parameters('pw'))]"})],
        [sa(properties={"x": "[dateTimeToEpoch(parameters('pw'))]"})],
        [sa(condition="[equals(createObject(parameters('pw'), 1).other, 1)]")],
    ],
)
def test_expansion_errors_are_clean(resources: list[Any]) -> None:
    with pytest.raises(TemplateError) as caught:
        plan_of(template(resources, parameters=PARAMETERS), VALUES)
    assert_clean(caught.value)


def test_runtime_errors_are_clean() -> None:
    doc = template(
        [
            sa(properties={"x": "[reference('id1')[parameters('pw')]]"}),
            {"type": "A.B/c", "apiVersion": "1", "name": "id1"},
        ],
        parameters=PARAMETERS,
    )
    plan = plan_of(doc, VALUES)
    resolver = CachedResolver()
    resolver.add(RuntimeCall("reference", rid("A.B/c", "id1"), "1"), {"a": 1})
    with pytest.raises(TemplateError) as caught:
        plan.resource(rid(SA, "sa1")).body.evaluate(resolver)
    assert_clean(caught.value)


def test_output_errors_are_clean() -> None:
    doc = template(
        parameters=PARAMETERS,
        outputs={"o": {"type": "string", "value": "[parameters('cfg')[parameters('pw')]]"}},
    )
    with pytest.raises(TemplateError) as caught:
        plan_of(doc, VALUES).evaluate_outputs()
    assert_clean(caught.value)


def test_reprs_are_clean() -> None:
    doc = template([sa(properties={"password": "[parameters('pw')]"})], parameters=PARAMETERS)
    plan = plan_of(doc, VALUES)
    assert SECRET not in repr(plan)
    assert SECRET not in repr(plan.resources[0])
    assert SECRET not in repr(plan.resources[0].body)
    assert plan.resources[0].body.evaluate() == {"location": "westus", "properties": {"password": SECRET}}
