"""``{placeholder}`` templates of the catalog, filled from a source's settings and credentials,
a parent record (``{parent.<field>}``) or a file entry (``{entry.<field>}``).

Only ``{name}`` and ``{dotted.name}`` are placeholders; any other brace (a JSON literal)
is left alone. A value that is missing is a :class:`ConnectorError`: ``config`` for a
setting or credential, ``malformed`` for a field of a parent record or file entry (the
platform's data lacks it).
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping
from urllib.parse import quote

from handlers.shared.connectors.errors import ConnectorError

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*)\}")
RECORD_SCOPES = ("parent", "entry")
MISSING = object()


def names(template: str) -> list[str]:
    return PLACEHOLDER.findall(template)


def lookup(data: Any, path: str) -> Any:
    """The value at a dot path (``"paging.next.after"``; list indexes as digits), or
    :data:`MISSING`. The empty path is ``data`` itself."""
    if path == "":
        return data
    value = data
    for part in path.split("."):
        if isinstance(value, Mapping):
            if part not in value:
                return MISSING
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TypeError


def resolve(name: str, values: Mapping[str, Any], what: str) -> str:
    """The text of placeholder ``name``. ``what`` names the platform in messages."""
    scope, _, rest = name.partition(".")
    if scope in RECORD_SCOPES and rest:
        record = values.get(scope)
        value = lookup(record, rest) if record is not None else MISSING
        if value is MISSING or value is None:
            raise ConnectorError("malformed", f"{what}: a {scope} record has no {rest!r}")
        kind = "malformed"
    else:
        value = values.get(name, MISSING)
        if (value is MISSING or value is None or value == "") and "entry" in values:
            # Download templates may name an entry's field directly ("{id}").
            value = lookup(values["entry"], name)
        if value is MISSING or value is None or value == "":
            raise ConnectorError("config", f"{what}: the setting or credential {name!r} is missing")
        kind = "config"
    try:
        return _text(value)
    except TypeError:
        raise ConnectorError(kind, f"{what}: {name!r} is not a text value") from None


def fill(template: str, values: Mapping[str, Any], what: str, *, encode: bool = False) -> str:
    """``template`` with every placeholder replaced; ``encode`` percent-encodes each value
    (for a URL path: a value can never add a path segment, a query or a host)."""
    def replace(match: re.Match) -> str:
        text = resolve(match.group(1), values, what)
        return quote(text, safe="") if encode else text
    return PLACEHOLDER.sub(replace, template)


def fill_data(data: Any, values: Mapping[str, Any], what: str) -> Any:
    """A JSON-like structure with every string filled."""
    if isinstance(data, str):
        return fill(data, values, what)
    if isinstance(data, Mapping):
        return {key: fill_data(value, values, what) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [fill_data(value, values, what) for value in data]
    return data


def fill_header(template: Any, values: Mapping[str, Any], what: str) -> str:
    """A header value: a string template, or a mapping sent as ASCII JSON (Dropbox-API-Arg).
    A value with a line break is refused (no header injection)."""
    if isinstance(template, Mapping):
        text = json.dumps(fill_data(template, values, what), ensure_ascii=True, separators=(",", ":"))
    else:
        text = fill(str(template), values, what)
    if "\r" in text or "\n" in text:
        raise ConnectorError("config", f"{what}: a header value holds a line break")
    return text


def split_basic(template: str) -> tuple[str, str] | None:
    """``"basic:{user}:{password}"`` -> the user and password templates (the first colon
    outside braces separates them), or None when the header is not of that form."""
    if not template.startswith("basic:"):
        return None
    rest, depth = template[len("basic:"):], 0
    for index, char in enumerate(rest):
        if char == "{":
            depth += 1
        elif char == "}":
            depth = max(0, depth - 1)
        elif char == ":" and depth == 0:
            return rest[:index], rest[index + 1:]
    return rest, ""
