"""Request validation with fastjsonschema (pure Python, so the layer stays compiled-free).

Schemas are JSON Schema draft 7 within what OpenAPI 3.0.3 can express; ``nullable: true``
becomes ``type: [T, "null"]`` before a validator is compiled. The same schemas are the
OpenAPI document's (``handlers.openapi``).

A query string arrives as strings: ``validate_query`` converts the values of properties
typed integer or boolean first (a value that does not convert stays a string, so the
schema refuses it naming the parameter). An empty value is a value: ``?limit=`` is
refused like ``?limit=ten``, as the published document says.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Mapping

import fastjsonschema

from handlers.shared.http import ApiError
from handlers.shared.routing import Route

_validators: dict[str, Any] = {}


def to_json_schema(schema: Any) -> Any:
    """OpenAPI 3.0 flavour -> plain draft 7 (``nullable`` folded into ``type`` and ``enum``)."""
    if isinstance(schema, list):
        return [to_json_schema(s) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "nullable":
            continue
        if key in ("properties", "patternProperties", "definitions") and isinstance(value, Mapping):
            # keys here are property names, not keywords: a property may be called "nullable"
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        else:
            out[key] = to_json_schema(value)
    if schema.get("nullable") is True:
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"] if "null" not in types else types
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def _compiled(key: str, schema: Mapping[str, Any]):
    validator = _validators.get(key)
    if validator is None:
        validator = fastjsonschema.compile(to_json_schema(copy.deepcopy(dict(schema))))
        _validators[key] = validator
    return validator


def validate(route: Route, body: Any) -> None:
    _check(_compiled(route.route_key, route.body), body, "body")


def validate_query(route: Route, query: Mapping[str, str]) -> None:
    """400 ``validation_failed`` naming the parameter when ``query`` breaks ``route.query``."""
    schema = route.query
    _check(_compiled(f"{route.route_key}?", schema), typed_query(schema, query), "query")


def typed_query(schema: Mapping[str, Any], query: Mapping[str, str]) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    return {name: _converted(properties.get(name) or {}, value) for name, value in query.items()}


_INTEGER = re.compile(r"-?[0-9]{1,18}")


def _converted(schema: Mapping[str, Any], value: Any) -> Any:
    if not isinstance(value, str):
        return value
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "integer" in kinds and _INTEGER.fullmatch(value):
        return int(value)
    if "boolean" in kinds and value in ("true", "false"):
        return value == "true"
    return value


def _check(validator, value: Any, what: str) -> None:
    try:
        validator(value)
    except fastjsonschema.JsonSchemaValueException as exc:
        path = [str(p) for p in (exc.path[1:] if exc.path and exc.path[0] == "data" else [])]
        names = [".".join([*path, key]) for key in _offending_keys(exc)]
        names = names or [".".join(path) or what]
        raise ApiError("validation_failed", f"Invalid {', '.join(names)}: {_reason(exc)}",
                       fields=names) from None


def _offending_keys(exc) -> list[str]:
    """The keys an object-level failure is about: missing required ones, or unexpected ones."""
    value = exc.value if isinstance(exc.value, Mapping) else {}
    if exc.rule == "required" and isinstance(exc.rule_definition, list):
        return [str(f) for f in exc.rule_definition if f not in value]
    if exc.rule == "additionalProperties" and exc.rule_definition is False:
        definition = exc.definition if isinstance(exc.definition, Mapping) else {}
        known = definition.get("properties") or {}
        patterns = [re.compile(p) for p in definition.get("patternProperties") or {}]
        return sorted(str(k) for k in value
                      if k not in known and not any(p.search(str(k)) for p in patterns))
    return []


def _reason(exc) -> str:
    return exc.message.replace("data.", "").replace("data ", "")
