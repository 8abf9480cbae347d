"""Output formats (pure): az's tsv and table rules, and the YAML emitter."""

from __future__ import annotations

from moorage.cli.output import Column, OutputFormat, Table, render, to_table, to_tsv, to_yaml


def test_json_keeps_the_server_s_key_order() -> None:
    assert (
        render({"b": 1, "a": [True, None]}, OutputFormat.JSON)
        == '{\n  "b": 1,\n  "a": [\n    true,\n    null\n  ]\n}\n'
    )


def test_nothing_renders_as_nothing() -> None:
    assert render(None, OutputFormat.TABLE) == ""


def test_tsv_is_az_s_rows_of_sorted_scalars() -> None:
    data = [{"name": "r1", "admin": True, "tags": {}, "rules": [1, 2], "missing": None}]
    assert to_tsv(data) == "True\tNone\tr1\t2\t\n"


def test_tsv_of_a_top_level_boolean_is_lowercase() -> None:
    assert to_tsv(True) == "true\n"
    assert to_tsv("text") == "text\n"


def test_table_with_columns_and_paths() -> None:
    table = Table([Column("Name", "name"), Column("Login", "properties.loginServer"), Column("N", len)])
    out = to_table([{"name": "reg1", "properties": {"loginServer": "127.0.0.1:5000"}}], table)
    assert out.splitlines() == [
        "Name  Login           N",
        "----  --------------  -",
        "reg1  127.0.0.1:5000  2",
    ]


def test_automatic_table_skips_ids_types_and_nested_values() -> None:
    out = to_table({"id": "/x", "type": "t", "name": "a", "location": "westus", "properties": {}})
    assert out.splitlines() == ["Location  Name", "--------  ----", "westus    a"]


def test_yaml_block_style() -> None:
    data = {
        "name": "reg1",
        "tags": {},
        "ports": [],
        "sku": {"name": "Premium"},
        "ipRules": [{"action": "Allow", "value": "10.0.0.1"}, "x"],
        "nested": [[1, 2]],
        "enabled": False,
        "count": 3,
        "ratio": 0.5,
        "big": 1e20,
        "none": None,
    }
    assert to_yaml(data) == (
        "name: reg1\n"
        "tags: {}\n"
        "ports: []\n"
        "sku:\n"
        "  name: Premium\n"
        "ipRules:\n"
        "- action: Allow\n"
        '  value: "10.0.0.1"\n'
        "- x\n"
        "nested:\n"
        "- - 1\n"
        "  - 2\n"
        "enabled: false\n"
        "count: 3\n"
        "ratio: 0.5\n"
        "big: 1.0e+20\n"
        "none: null\n"
    )


def test_yaml_quotes_what_would_read_as_something_else() -> None:
    for text in (
        "true",
        "No",
        "null",
        "~",
        "123",
        "2024-01-01",
        "127.0.0.1:80",
        "a: b",
        "#x",
        "",
        " x",
        "-",
        "$schema",
    ):
        assert to_yaml(text).startswith('"'), text
    assert to_yaml("line1\nline2") == '"line1\\nline2"\n'
    assert to_yaml("/subscriptions/s/resourceGroups/rg") == "/subscriptions/s/resourceGroups/rg\n"
    assert to_yaml("Microsoft.ContainerRegistry/registries") == "Microsoft.ContainerRegistry/registries\n"
