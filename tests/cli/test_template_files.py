"""Reading --template-file and --parameters (pure): Json.NET leniency and az's typing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moorage.cli.command import UsageError
from moorage.cli.template_files import parameters, read_template

TEMPLATE = {
    "parameters": {
        "name": {"type": "string"},
        "count": {"type": "int"},
        "on": {"type": "bool"},
        "tags": {"type": "object"},
        "zones": {"type": "array"},
    }
}


def test_template_with_comments_and_trailing_commas(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(
        "\ufeff{\n  // a comment\n  \"resources\": [ /* none */ ],\n  contentVersion: '1.0.0.0',\n}\n"
    )
    assert read_template(path) == {"resources": [], "contentVersion": "1.0.0.0"}


def test_unreadable_or_malformed_template_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        read_template(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"resources": [}')
    with pytest.raises(UsageError, match=r"not valid JSON.*line 1"):
        read_template(bad)
    bad.write_text("[]")
    with pytest.raises(UsageError, match="JSON object"):
        read_template(bad)


def test_name_value_pairs_are_typed_by_the_template() -> None:
    got = parameters(
        ["name=a b", "count=3", "on=true", 'tags={"k": "v"}', "zones=[1,2]", "other=7"], TEMPLATE
    )
    assert got == {
        "name": {"value": "a b"},
        "count": {"value": 3},
        "on": {"value": True},
        "tags": {"value": {"k": "v"}},
        "zones": {"value": [1, 2]},
        "other": {"value": "7"},
    }


def test_parameter_files_inline_objects_and_later_values_win(tmp_path: Path) -> None:
    file = tmp_path / "p.json"
    file.write_text(
        json.dumps(
            {
                "$schema": "x",
                "contentVersion": "1.0.0.0",
                "parameters": {"name": {"value": "f"}, "count": {"value": 1}},
            }
        )
    )
    got = parameters([f"@{file}", '{"count": {"value": 2}}', "name=last"], TEMPLATE)
    assert got == {"name": {"value": "last"}, "count": {"value": 2}}


def test_bad_parameter_values_are_usage_errors(tmp_path: Path) -> None:
    for value in ("count=x", "on=maybe", "tags={", "noequals", f"@{tmp_path / 'none.json'}"):
        with pytest.raises(UsageError):
            parameters([value], TEMPLATE)
