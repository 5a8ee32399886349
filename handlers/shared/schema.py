"""Request validation with fastjsonschema (pure Python, so the layer stays compiled-free).

Schemas are JSON Schema draft 7 within what OpenAPI 3.0.3 can express; ``nullable: true``
becomes ``type: [T, "null"]`` before a validator is compiled.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

import fastjsonschema

from handlers.shared.http import ApiError
from handlers.shared.routing import Route

_validators: dict[str, Any] = {}


def to_json_schema(schema: Any) -> Any:
    """OpenAPI 3.0 flavour -> plain draft 7 (``nullable`` folded into ``type``)."""
    if isinstance(schema, list):
        return [to_json_schema(s) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {k: to_json_schema(v) for k, v in schema.items() if k != "nullable"}
    if schema.get("nullable") and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
    return out


def validate(route: Route, body: Any) -> None:
    validator = _validators.get(route.route_key)
    if validator is None:
        validator = fastjsonschema.compile(to_json_schema(copy.deepcopy(dict(route.body))))
        _validators[route.route_key] = validator
    try:
        validator(body)
    except fastjsonschema.JsonSchemaValueException as exc:
        field = exc.path[1:] if exc.path and exc.path[0] == "data" else []
        name = ".".join(str(p) for p in field) or _missing_field(exc) or "body"
        raise ApiError("validation_failed", f"Invalid {name}: {_reason(exc)}",
                       fields=[name]) from None


def _missing_field(exc) -> str | None:
    if exc.rule == "required" and isinstance(exc.rule_definition, list):
        value = exc.value if isinstance(exc.value, Mapping) else {}
        missing = [f for f in exc.rule_definition if f not in value]
        return missing[0] if missing else None
    return None


def _reason(exc) -> str:
    return exc.message.replace("data.", "").replace("data ", "")
