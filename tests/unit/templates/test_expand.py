"""expand: copy loops, conditions, nested resources, ids, dependencies, cycles, lazy bodies,
runtime values and outputs."""

from __future__ import annotations

from typing import Any

import pytest

from moorage.deployments.templates import (
    CachedResolver,
    CopyPosition,
    Json,
    MissingRuntimeValue,
    OutputEvaluationError,
    RuntimeCall,
    TemplateError,
    TemplateFeatureNotSupported,
)
from tests.unit.templates.support import RG_ID, SUB, make_context, plan_of, rid, template

SA_TYPE = "Microsoft.Storage/storageAccounts"
UAMI_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"


def sa(name: Any, **extra: Any) -> dict[str, Any]:
    return {"type": SA_TYPE, "apiVersion": "2023-01-01", "name": name, "location": "westus", **extra}


def uami(name: Any, **extra: Any) -> dict[str, Any]:
    return {"type": UAMI_TYPE, "apiVersion": "2023-01-31", "name": name, "location": "westus", **extra}


def expand_error(doc: dict[str, Any], parameters: dict[str, Any] | None = None) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        plan_of(doc, parameters)
    assert caught.value.code == "InvalidTemplate"
    return caught.value


def test_single_resource() -> None:
    plan = plan_of(
        template([sa("sa1", sku={"name": "Standard_LRS"}, properties={"x": "[resourceGroup().location]"})])
    )
    (resource,) = plan.resources
    assert resource.id == rid(SA_TYPE, "sa1")
    assert (resource.type, resource.name, resource.api_version) == (SA_TYPE, "sa1", "2023-01-01")
    assert (resource.resource_type, resource.resource_name) == (SA_TYPE, "sa1")
    assert not resource.body.needs_runtime
    assert resource.body.evaluate() == {
        "location": "westus",
        "sku": {"name": "Standard_LRS"},
        "properties": {"x": "westeurope"},
    }
    assert resource.template_path == "properties.template.resources[0]"


def test_body_evaluations_return_fresh_copies() -> None:
    (resource,) = plan_of(template([sa("sa1", tags={"a": "b"})])).resources
    first = resource.body.evaluate()
    assert isinstance(first, dict)
    first["tags"] = None
    assert resource.body.evaluate() == {"location": "westus", "tags": {"a": "b"}}


def test_parallel_copy_loop() -> None:
    doc = template(
        [sa("[concat('sa', copyIndex(1))]", copy={"name": "storageLoop", "count": "[parameters('n')]"})],
        parameters={"n": {"type": "int"}},
    )
    plan = plan_of(doc, {"n": {"value": 3}})
    assert [r.name for r in plan.resources] == ["sa1", "sa2", "sa3"]
    assert plan.resources[1].copy == CopyPosition("storageLoop", 1, 3, "Parallel", 3)
    assert all(r.depends_on == () for r in plan.resources)
    assert len(plan.waves()) == 1


def test_copy_of_zero_deploys_nothing() -> None:
    plan = plan_of(template([sa("[concat('sa', copyIndex())]", copy={"name": "l", "count": 0})]))
    assert plan.resources == ()


def test_copy_index_in_properties_of_a_copied_resource() -> None:
    plan = plan_of(
        template(
            [
                sa(
                    "[concat('sa', copyIndex())]",
                    copy={"name": "l", "count": 2},
                    properties={"i": "[copyIndex()]"},
                )
            ]
        )
    )
    assert [r.body.evaluate() for r in plan.resources] == [
        {"location": "westus", "properties": {"i": 0}},
        {"location": "westus", "properties": {"i": 1}},
    ]


def test_serial_copy_deploys_in_batches() -> None:
    plan = plan_of(
        template(
            [
                sa(
                    "[concat('sa', copyIndex())]",
                    copy={"name": "l", "count": 5, "mode": "serial", "batchSize": 2},
                )
            ]
        )
    )
    waves = [[r.name for r in wave] for wave in plan.waves()]
    assert waves == [["sa0", "sa1"], ["sa2", "sa3"], ["sa4"]]
    assert plan.resource(rid(SA_TYPE, "sa2")).depends_on == (rid(SA_TYPE, "sa0"), rid(SA_TYPE, "sa1"))


def test_serial_copy_defaults_to_one_at_a_time() -> None:
    plan = plan_of(
        template([sa("[concat('sa', copyIndex())]", copy={"name": "l", "count": 3, "mode": "Serial"})])
    )
    assert [[r.name for r in wave] for wave in plan.waves()] == [["sa0"], ["sa1"], ["sa2"]]


def test_copy_count_limit() -> None:
    error = expand_error(template([sa("[concat('sa', copyIndex())]", copy={"name": "l", "count": 801})]))
    assert "invalid copy count" in error.message


def test_condition_false_skips_the_resource() -> None:
    doc = template(
        [
            sa("sa1", condition="[parameters('create')]"),
            uami("id1", dependsOn=[f"[resourceId('{SA_TYPE}', 'sa1')]"]),
        ],
        parameters={"create": {"type": "bool"}},
    )
    plan = plan_of(doc, {"create": {"value": False}})
    assert [r.name for r in plan.resources] == ["id1"]
    assert plan.resources[0].depends_on == ()
    assert plan.skipped == (rid(SA_TYPE, "sa1"),)
    plan = plan_of(doc, {"create": {"value": True}})
    assert plan.resource(rid(UAMI_TYPE, "id1")).depends_on == (rid(SA_TYPE, "sa1"),)


def test_condition_per_copy_instance() -> None:
    plan = plan_of(
        template(
            [
                sa(
                    "[concat('sa', copyIndex())]",
                    copy={"name": "l", "count": 4},
                    condition="[equals(mod(copyIndex(), 2), 0)]",
                )
            ]
        )
    )
    assert [r.name for r in plan.resources] == ["sa0", "sa2"]


def test_condition_must_be_boolean() -> None:
    error = expand_error(
        template(
            [sa("sa1", condition="[parameters('c')]")],
            parameters={"c": {"type": "string", "defaultValue": "true"}},
        )
    )
    assert "the condition must evaluate to a boolean" in error.message


def test_skipped_resource_name_need_not_evaluate() -> None:
    plan = plan_of(template([sa("[createArray()[3]]", condition=False), uami("id1")]))
    assert [r.name for r in plan.resources] == ["id1"]


def test_nested_child_resources() -> None:
    doc = template(
        [
            {
                "type": "Microsoft.Network/virtualNetworks",
                "apiVersion": "2023-04-01",
                "name": "vnet",
                "location": "westus",
                "resources": [
                    {"type": "subnets", "apiVersion": "2023-04-01", "name": "s1", "properties": {}},
                    {
                        "type": "Microsoft.Network/virtualNetworks/subnets",
                        "apiVersion": "2023-04-01",
                        "name": "vnet/s2",
                    },
                ],
            }
        ]
    )
    plan = plan_of(doc)
    vnet = rid("Microsoft.Network/virtualNetworks", "vnet")
    s1, s2 = plan.resources[1:]
    assert (s1.name, s1.id) == ("vnet/s1", f"{vnet}/subnets/s1")
    assert s2.name == "vnet/s2"
    assert s1.depends_on == (vnet,)
    assert s2.depends_on == (vnet,)


def test_nested_children_of_a_copied_parent() -> None:
    doc = template(
        [
            sa(
                "[concat('sa', copyIndex())]",
                copy={"name": "l", "count": 2},
                resources=[
                    {
                        "type": "blobServices",
                        "apiVersion": "2023-01-01",
                        "name": "default",
                        "properties": {"i": "[copyIndex()]"},
                    }
                ],
            )
        ]
    )
    plan = plan_of(doc)
    children = [r for r in plan.resources if r.type.endswith("blobServices")]
    assert [c.name for c in children] == ["sa0/default", "sa1/default"]
    assert [c.body.evaluate() for c in children] == [{"properties": {"i": 0}}, {"properties": {"i": 1}}]
    assert children[1].depends_on == (rid(SA_TYPE, "sa1"),)


def test_children_of_a_skipped_parent_are_skipped() -> None:
    doc = template(
        [
            sa(
                "sa1",
                condition=False,
                resources=[{"type": "blobServices", "apiVersion": "1", "name": "default"}],
            )
        ]
    )
    assert plan_of(doc).resources == ()


def test_name_segments_must_match_the_type() -> None:
    error = expand_error(
        template(
            [{"type": "Microsoft.Network/virtualNetworks/subnets", "apiVersion": "1", "name": "onlyone"}]
        )
    )
    assert (
        "has incorrect segment lengths. A nested resource type must have identical number of segments"
        in error.message
    )
    assert error.path == "properties.template.resources[0].name"


def test_duplicate_resources() -> None:
    error = expand_error(template([sa("sa1"), sa("SA1")]))
    assert "is defined multiple times in a template" in error.message


@pytest.mark.parametrize(
    "entry",
    [
        f"[resourceId('{UAMI_TYPE}', 'id1')]",
        "id1",
        f"{UAMI_TYPE}/id1",
        rid(UAMI_TYPE, "id1").upper(),
    ],
)
def test_depends_on_forms(entry: str) -> None:
    plan = plan_of(template([sa("sa1", dependsOn=[entry]), uami("id1")]))
    assert [r.name for r in plan.resources] == ["id1", "sa1"]
    assert plan.resource(rid(SA_TYPE, "sa1")).explicit_depends_on == (rid(UAMI_TYPE, "id1"),)


def test_depends_on_a_copy_loop_waits_for_every_instance() -> None:
    plan = plan_of(
        template(
            [
                uami("last", dependsOn=["loop"]),
                sa("[concat('sa', copyIndex())]", copy={"name": "loop", "count": 2}),
            ]
        )
    )
    assert plan.resources[-1].name == "last"
    assert plan.resources[-1].depends_on == (rid(SA_TYPE, "sa0"), rid(SA_TYPE, "sa1"))


def test_depends_on_a_symbolic_name() -> None:
    doc = {
        "languageVersion": "2.0",
        "contentVersion": "1.0.0.0",
        "resources": {"storage": sa("sa1", dependsOn=["identity"]), "identity": uami("id1")},
    }
    plan = plan_of(doc)
    assert plan.resources[1].depends_on == (rid(UAMI_TYPE, "id1"),)
    assert plan.resources[1].symbolic_name == "storage"


def test_depends_on_something_not_in_the_template() -> None:
    error = expand_error(template([sa("sa1", dependsOn=["nothere"])]))
    assert "The resource 'nothere' is not defined in the template." in error.message
    assert error.path == "properties.template.resources[0].dependsOn[0]"


def test_cycle_is_refused_and_named() -> None:
    doc = template(
        [
            sa("sa1", dependsOn=["id1"]),
            uami("id1", dependsOn=["sa2"]),
            sa("sa2", dependsOn=["sa1"]),
            uami("free"),
        ]
    )
    error = expand_error(doc)
    assert "Circular dependency detected on resource:" in error.message
    for name in (rid(SA_TYPE, "sa1"), rid(UAMI_TYPE, "id1"), rid(SA_TYPE, "sa2")):
        assert name in error.message
    assert rid(UAMI_TYPE, "free") not in error.message
    assert " -> " in error.message


def test_self_dependency_is_a_cycle() -> None:
    error = expand_error(template([sa("sa1", dependsOn=["sa1"])]))
    assert "Circular dependency detected" in error.message


def test_implicit_dependency_from_reference_and_list() -> None:
    doc = template(
        [
            sa(
                "sa1",
                properties={
                    "a": f"[reference(resourceId('{UAMI_TYPE}', 'id1')).principalId]",
                    "b": "[listKeys('id2', '2023-01-31').keys]",
                    "c": "[reference('/subscriptions/x/resourceGroups/y/providers/A.B/c/outside', '1').v]",
                },
            ),
            uami("id1"),
            uami("id2"),
        ]
    )
    plan = plan_of(doc)
    storage = plan.resource(rid(SA_TYPE, "sa1"))
    assert storage.depends_on == (rid(UAMI_TYPE, "id1"), rid(UAMI_TYPE, "id2"))
    assert storage.explicit_depends_on == ()
    assert storage.body.needs_runtime
    assert storage.body.runtime_calls() == (
        RuntimeCall("reference", rid(UAMI_TYPE, "id1"), "2023-01-31"),
        RuntimeCall("listKeys", rid(UAMI_TYPE, "id2"), "2023-01-31"),
        RuntimeCall("reference", "/subscriptions/x/resourceGroups/y/providers/A.B/c/outside", "1"),
    )


def test_implicit_dependency_through_a_variable() -> None:
    doc = template(
        [sa("sa1", properties={"p": "[variables('principal')]"}), uami("id1")],
        variables={"principal": "[reference('id1').principalId]"},
    )
    plan = plan_of(doc)
    assert plan.resource(rid(SA_TYPE, "sa1")).depends_on == (rid(UAMI_TYPE, "id1"),)


def test_reference_is_refused_in_names_and_conditions() -> None:
    assert (
        "The template function 'reference' is not expected"
        in expand_error(template([sa("[reference('x').name]")])).message
    )
    error = expand_error(template([sa("sa1", condition="[reference('x').ok]")]))
    assert "The template function 'reference' is not expected" in error.message


def test_utc_now_is_refused_outside_parameter_defaults() -> None:
    error = expand_error(template([sa("[concat('sa', utcNow())]")]))
    assert (
        "The template resource '[concat('sa', utcNow())]' at path 'properties.template.resources[0]' is "
        "not valid" in error.message
    )
    assert error.position == len("[concat('sa', ")


def test_body_errors_surface_at_expansion() -> None:
    error = expand_error(template([sa("sa1", properties={"x": "[int('NaN')]"})]))
    assert error.message.startswith("Deployment template validation failed: 'The template resource 'sa1'")
    assert error.position == 1
    assert error.path == "properties.template.resources[0].properties.x"


def test_lazy_body_evaluated_with_a_resolver() -> None:
    doc = template([sa("sa1", properties={"pid": "[reference('id1').principalId]"}), uami("id1")])
    body = plan_of(doc).resource(rid(SA_TYPE, "sa1")).body
    with pytest.raises(MissingRuntimeValue):
        body.evaluate()
    resolver = CachedResolver()
    resolver.add(RuntimeCall("reference", rid(UAMI_TYPE, "id1"), "2023-01-31"), {"principalId": "p-1"})
    assert body.evaluate(resolver) == {"location": "westus", "properties": {"pid": "p-1"}}


def test_runtime_faults_name_the_resource() -> None:
    doc = template([sa("sa1", properties={"pid": "[reference('id1').nothing]"}), uami("id1")])
    body = plan_of(doc).resource(rid(SA_TYPE, "sa1")).body
    resolver = CachedResolver()
    resolver.add(RuntimeCall("reference", rid(UAMI_TYPE, "id1"), "2023-01-31"), {"principalId": "p"})
    with pytest.raises(TemplateError) as caught:
        body.evaluate(resolver)
    assert caught.value.message.startswith(
        f"Unable to process template language expressions for resource '{rid(SA_TYPE, 'sa1')}' at path "
        "'properties.template.resources[0]'. 'The language expression property 'nothing' doesn't exist, "
        "available properties are 'principalId'.'"
    )


class CountingResolver:
    def __init__(self, answers: dict[str, Json]) -> None:
        self.answers = answers
        self.calls: list[RuntimeCall] = []

    async def resolve(self, call: RuntimeCall) -> Json:
        self.calls.append(call)
        return self.answers[call.resource_id.rsplit("/", 1)[-1]]


async def test_async_resolution_fetches_each_value_once() -> None:
    doc = template(
        [
            sa("sa1", properties={"a": "[reference('id1').principalId]", "b": "[reference('id1').clientId]"}),
            uami("id1"),
        ]
    )
    body = plan_of(doc).resource(rid(SA_TYPE, "sa1")).body
    resolver = CountingResolver({"id1": {"principalId": "p", "clientId": "c"}})
    assert await body.resolve(resolver) == {"location": "westus", "properties": {"a": "p", "b": "c"}}
    assert len(resolver.calls) == 1


async def test_async_resolution_of_values_not_found_statically() -> None:
    # The second reference's target is only known once the first one is answered.
    doc = template([sa("sa1", properties={"p": "[reference(reference('id1').other).value]"}), uami("id1")])
    body = plan_of(doc).resource(rid(SA_TYPE, "sa1")).body
    other = rid(UAMI_TYPE, "id2")
    resolver = CountingResolver({"id1": {"other": other}, "id2": {"value": 42}})
    assert await body.resolve(resolver) == {"location": "westus", "properties": {"p": 42}}
    assert [c.resource_id for c in resolver.calls] == [rid(UAMI_TYPE, "id1"), other]


def test_extension_resource_with_scope() -> None:
    doc = template(
        [
            {
                "type": "Microsoft.Authorization/roleAssignments",
                "apiVersion": "2022-04-01",
                "name": "[guid('ra')]",
                "scope": f"[concat('{SA_TYPE}/', 'sa1')]",
                "properties": {"principalId": "p"},
            },
            sa("sa1"),
        ]
    )
    plan = plan_of(doc)
    assignment = plan.resources[1]
    assert assignment.scope == rid(SA_TYPE, "sa1")
    assert (
        assignment.id
        == f"{rid(SA_TYPE, 'sa1')}/providers/Microsoft.Authorization/roleAssignments/{assignment.name}"
    )
    assert assignment.resource_type == "Microsoft.Authorization/roleAssignments"
    assert assignment.depends_on == (rid(SA_TYPE, "sa1"),)


def test_extension_resource_with_an_absolute_scope_outside_the_template() -> None:
    scope = f"/subscriptions/{SUB}/resourceGroups/other/providers/{SA_TYPE}/x"
    doc = template(
        [{"type": "Microsoft.Authorization/locks", "apiVersion": "2020-05-01", "name": "lk", "scope": scope}]
    )
    (lock,) = plan_of(doc).resources
    assert lock.id == f"{scope}/providers/Microsoft.Authorization/locks/lk"
    assert lock.depends_on == ()


def test_legacy_extension_resource_type() -> None:
    doc = template(
        [
            {
                "type": "Microsoft.ContainerRegistry/registries/providers/roleAssignments",
                "apiVersion": "2022-04-01",
                "name": "acr1/Microsoft.Authorization/ra1",
                "properties": {},
            }
        ]
    )
    (assignment,) = plan_of(doc).resources
    registry = rid("Microsoft.ContainerRegistry/registries", "acr1")
    assert assignment.id == f"{registry}/providers/Microsoft.Authorization/roleAssignments/ra1"
    assert (assignment.resource_type, assignment.resource_name) == (
        "Microsoft.Authorization/roleAssignments",
        "ra1",
    )
    assert assignment.scope == registry


def test_subscription_scope_deployment_of_a_resource_group() -> None:
    context = make_context(resource_group=None, location="westus")
    doc = template(
        [
            {
                "type": "Microsoft.Resources/resourceGroups",
                "apiVersion": "2022-09-01",
                "name": "rg2",
                "location": "westus",
            }
        ]
    )
    (group,) = plan_of(doc, context=context).resources
    assert group.id == f"/subscriptions/{SUB}/resourceGroups/rg2"


def test_nested_deployments_are_not_supported() -> None:
    with pytest.raises(TemplateFeatureNotSupported):
        plan_of(
            template(
                [
                    {
                        "type": "Microsoft.Resources/deployments",
                        "apiVersion": "2022-09-01",
                        "name": "inner",
                        "properties": {},
                    }
                ]
            )
        )


def test_existing_resources_are_referenced_not_deployed() -> None:
    doc = {
        "languageVersion": "2.0",
        "contentVersion": "1.0.0.0",
        "resources": {
            "id": {**uami("id0"), "existing": True},
            "storage": sa("sa1", properties={"p": "[reference('id', '2023-01-31').principalId]"}),
        },
    }
    plan = plan_of(doc)
    assert [r.name for r in plan.resources] == ["sa1"]
    assert plan.resources[0].depends_on == ()
    assert plan.resources[0].body.runtime_calls() == (
        RuntimeCall("reference", rid(UAMI_TYPE, "id0"), "2023-01-31"),
    )


def test_property_copy_in_resource_properties() -> None:
    doc = template(
        [
            sa(
                "sa1",
                properties={
                    "copy": [
                        {"name": "rules", "count": 2, "input": {"port": "[add(80, copyIndex('rules'))]"}}
                    ],
                    "other": 1,
                },
            )
        ]
    )
    (resource,) = plan_of(doc).resources
    assert resource.body.evaluate() == {
        "location": "westus",
        "properties": {"other": 1, "rules": [{"port": 80}, {"port": 81}]},
    }


def test_computed_property_names() -> None:
    doc = template(
        [
            sa(
                "sa1",
                identity={
                    "type": "UserAssigned",
                    "userAssignedIdentities": {f"[resourceId('{UAMI_TYPE}', 'id1')]": {}},
                },
            )
        ]
    )
    (resource,) = plan_of(doc).resources
    body = resource.body.evaluate()
    assert isinstance(body, dict)
    assert body["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {rid(UAMI_TYPE, "id1"): {}}}


def test_outputs() -> None:
    doc = template(
        [uami("id1")],
        parameters={"pw": {"type": "securestring", "defaultValue": "s3cret-value"}},
        outputs={
            "name": {"type": "string", "value": "[resourceGroup().name]"},
            "list": {"type": "array", "copy": {"count": 3, "input": "[mul(copyIndex(), 2)]"}},
            "skipped": {"type": "string", "condition": "[equals(1, 2)]", "value": "x"},
            "principal": {"type": "string", "value": "[reference('id1').principalId]"},
            "secret": {"type": "securestring", "value": "[parameters('pw')]"},
        },
    )
    plan = plan_of(doc)
    resolver = CachedResolver()
    resolver.add(RuntimeCall("reference", rid(UAMI_TYPE, "id1"), "2023-01-31"), {"principalId": "p-1"})
    assert plan.evaluate_outputs(resolver) == {
        "name": {"type": "String", "value": "rg-templates"},
        "list": {"type": "Array", "value": [0, 2, 4]},
        "principal": {"type": "String", "value": "p-1"},
        "secret": {"type": "SecureString"},
    }


async def test_outputs_resolved_asynchronously() -> None:
    doc = template(
        [uami("id1")], outputs={"clientId": {"type": "string", "value": "[reference('id1').clientId]"}}
    )
    plan = plan_of(doc)
    assert await plan.resolve_outputs(CountingResolver({"id1": {"clientId": "c-1"}})) == {
        "clientId": {"type": "String", "value": "c-1"}
    }


def test_failed_outputs_are_reported_together() -> None:
    doc = template(
        outputs={
            "wrongType": {"type": "int", "value": "text"},
            "broken": {"type": "string", "value": "[createArray()[1]]"},
            "fine": {"type": "bool", "value": True},
        }
    )
    with pytest.raises(OutputEvaluationError) as caught:
        plan_of(doc).evaluate_outputs()
    error = caught.value
    assert error.code == "DeploymentOutputEvaluationFailed"
    assert error.message.startswith("Unable to evaluate template outputs: 'wrongType,broken'.")
    assert [d.target for d in error.details] == ["wrongType", "broken"]
    assert all(d.code == "DeploymentOutputEvaluationFailed" for d in error.details)
    assert "Expected 'Integer'. Actual 'String'." in error.details[0].message
    assert error.details[1].message.startswith("The template output 'broken' is not valid:")


def test_resource_group_and_deployment_in_ids_use_the_context() -> None:
    plan = plan_of(template([sa("[concat('st', uniqueString(resourceGroup().id))]")]))
    assert plan.resources[0].id.startswith(f"{RG_ID}/providers/{SA_TYPE}/st")


def test_preview_leaves_runtime_expressions_as_text() -> None:
    doc = template(
        [
            sa(
                "sa1",
                tags={"rg": "[resourceGroup().name]"},
                properties={"pid": "[reference('id1').principalId]", "items": ["[reference('id1').a]", 1]},
            ),
            uami("id1"),
        ]
    )
    body = plan_of(doc).resource(rid(SA_TYPE, "sa1")).body
    assert body.preview() == {
        "location": "westus",
        "tags": {"rg": "rg-templates"},
        "properties": {"pid": "[reference('id1').principalId]", "items": ["[reference('id1').a]", 1]},
    }


def test_preview_of_a_known_value_is_the_value() -> None:
    (resource,) = plan_of(template([sa("sa1")])).resources
    assert resource.body.preview() == {"location": "westus"}


def test_reference_by_an_ambiguous_name_is_refused() -> None:
    doc = template(
        [
            sa("[concat('sa', copyIndex())]", copy={"name": "loop", "count": 2}),
            uami("id1", properties={"x": "[reference('loop').a]"}),
        ]
    )
    error = expand_error(doc)
    assert "The resource name 'loop' designates 2 resources of the template." in error.message


def test_resource_count_limit_counts_copy_instances() -> None:
    doc = template(
        [
            sa("[concat('a', copyIndex())]", copy={"name": "a", "count": 500}),
            uami("[concat('b', copyIndex())]", copy={"name": "b", "count": 301}),
        ]
    )
    error = expand_error(doc)
    assert "The number of template resources limit exceeded. Limit: '800' and actual: '801'." in error.message
