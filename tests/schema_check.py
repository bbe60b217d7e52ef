"""result.json against the JSON Schema shipped in the package (report/result.schema.json)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema


def shipped_schema() -> dict[str, Any]:
    text = resources.files("failover_drill.report").joinpath("result.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def assert_valid_result(result: dict[str, Any]) -> None:
    """Raises jsonschema.ValidationError naming the first key that breaks the contract."""
    schema = shipped_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(result)
