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
        import fastjsonschema  # deferred: a request without a body or query does not load it

        validator = fastjsonschema.compile(to_json_schema(copy.deepcopy(dict(schema))))
        _validators[key] = validator
    return validator


def validate(route: Route, body: Any) -> None:
    _check(_compiled(route.route_key, route.body), body, "body")


def validate_query(route: Route, query: Mapping[str, str]) -> None:
    """400 ``validation_failed`` naming the parameter when ``query`` breaks ``route.query``.

    Query schemas are flat (one level of scalar properties), so they are checked here
    with the same rules and messages as fastjsonschema's, without loading it: a GET serves
    its first request without compiling a validator (benchmarks/cold_start.py). A query
    schema using a keyword not below goes to fastjsonschema."""
    schema = route.query
    values = typed_query(schema, query)
    if not _flat_query(schema):
        _check(_compiled(f"{route.route_key}?", schema), values, "query")
        return
    # fastjsonschema's order: required, then each property in the schema's order, then
    # additionalProperties; within a property: type, enum, lengths, pattern, format, bounds
    properties = schema.get("properties") or {}
    missing = [name for name in schema.get("required") or () if name not in values]
    if missing:
        raise ApiError("validation_failed", _keys_message("required", missing, "query"), fields=missing)
    for name, definition in properties.items():
        if name in values:
            problem = _scalar_problem(to_json_schema(dict(definition)), values[name])
            if problem:
                raise ApiError("validation_failed", f"Invalid {name}: {name} must {problem}",
                               fields=[name])
    if schema.get("additionalProperties") is False:
        extra = sorted(name for name in values if name not in properties)
        if extra:
            raise ApiError("validation_failed", _keys_message("additionalProperties", extra, "query"),
                           fields=extra)


_FLAT_KEYWORDS = frozenset({"type", "description", "default", "minLength", "maxLength", "minimum",
                            "maximum", "pattern", "format", "enum", "nullable", "example"})
_JSON_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
               "null": (type(None),)}
# fastjsonschema's (draft04.py): the formats query strings use
_DATE = (r"\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)|"
         r"02-(?:0[1-9]|1\d|2[0-8]))|(?:\d\d(?:0[48]|[2468][048]|[13579][26])|"
         r"(?:[02468][048]|[13579][26])00)-02-29")
_FORMATS = {"date-time": re.compile(
    r"^(?:" + _DATE + r")(t|T)(?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60)(?:\.\d+)?"
    r"(?:[+-](?:[01]\d|2[0-3]):[0-5]\d|[+-](?:[01]\d|2[0-3])[0-5]\d|z|Z)\Z")}
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")
_patterns: dict[str, re.Pattern] = {}


def _flat_query(schema: Mapping[str, Any]) -> bool:
    if set(schema) - {"type", "properties", "additionalProperties", "required", "description"}:
        return False
    return all(isinstance(p, Mapping) and set(p) <= _FLAT_KEYWORDS
               and p.get("format") in (None, *_FORMATS)
               and all(t in _JSON_TYPES for t in (p.get("type") if isinstance(p.get("type"), list)
                                                  else [p.get("type", "string")]))
               for p in (schema.get("properties") or {}).values())


def _scalar_problem(schema: Mapping[str, Any], value: Any) -> str | None:
    """What ``value`` breaks of a flat ``schema`` (fastjsonschema's wording), or None."""
    types = schema.get("type")
    if types is not None:
        types = types if isinstance(types, list) else [types]
        allowed = tuple(t for name in types for t in _JSON_TYPES[name])
        numeric = ("number" in types or "integer" in types) and "boolean" not in types
        if not isinstance(value, allowed) or (numeric and isinstance(value, bool)):
            return f"be {' or '.join(types)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"be one of {schema['enum']}"
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            return f"be longer than or equal to {schema['minLength']} characters"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"be shorter than or equal to {schema['maxLength']} characters"
        if "pattern" in schema:
            pattern = _patterns.get(schema["pattern"])
            if pattern is None:
                pattern = _patterns[schema["pattern"]] = re.compile(
                    _UNESCAPED_DOLLAR.sub(r"\\Z", schema["pattern"]))
            if not pattern.search(value):
                return f"match pattern {schema['pattern']}"
        if schema.get("format") in _FORMATS and not _FORMATS[schema["format"]].match(value):
            return f"be {schema['format']}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"be bigger than or equal to {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"be smaller than or equal to {schema['maximum']}"
    return None


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
    import fastjsonschema

    try:
        validator(value)
    except fastjsonschema.JsonSchemaValueException as exc:
        path = [str(p) for p in (exc.path[1:] if exc.path and exc.path[0] == "data" else [])]
        names = [".".join([*path, key]) for key in _offending_keys(exc)]
        if names:
            raise ApiError("validation_failed", _keys_message(exc.rule, names, what),
                           fields=names) from None
        names = [".".join(path) or what]
        raise ApiError("validation_failed", f"Invalid {', '.join(names)}: {_reason(exc)}",
                       fields=names) from None


def _keys_message(rule: str, names: list[str], what: str) -> str:
    """What a caller reads when fields are missing or not known (``rule`` is the JSON
    Schema keyword that failed: ``required`` or ``additionalProperties``)."""
    noun = "parameter" if what == "query" else "field"
    noun += "s" if len(names) > 1 else ""
    if rule == "required":
        return f"Missing required {noun}: {', '.join(names)}"
    return f"Unknown {noun}: {', '.join(names)} (not accepted here)"


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
