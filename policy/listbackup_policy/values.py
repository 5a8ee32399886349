"""Reading what the engine hands a policy: resource properties behind pulumi-policy's
proxies, where a value may be unknown during a preview (an ARN AWS has not assigned yet)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from pulumi_policy import PolicyResource
from pulumi_policy.proxy import UnknownValueError


class _Unknown:
    """A value the engine cannot know before the update (returned, never raised)."""

    def __repr__(self) -> str:
        return "<unknown until the update>"

    def __bool__(self) -> bool:
        return False


UNKNOWN: Any = _Unknown()


def get(props: Any, *path: Any, default: Any = None) -> Any:
    """``props[path[0]][path[1]]...``; ``default`` when a step is missing, ``UNKNOWN``
    when a step is not known yet."""
    value = props
    for key in path:
        try:
            if isinstance(key, int):
                if not isinstance(value, Sequence) or isinstance(value, str) or key >= len(value):
                    return default
            elif not isinstance(value, Mapping) or key not in value:
                return default
            value = value[key]
        except UnknownValueError:
            return UNKNOWN
    return default if value is None else value


def known_items(value: Any) -> list:
    """A list property's elements, ``UNKNOWN`` for each element not known yet."""
    if value is UNKNOWN or value is None or isinstance(value, (str, Mapping)):
        return []
    out = []
    for i in range(len(value)):
        try:
            out.append(value[i])
        except UnknownValueError:
            out.append(UNKNOWN)
    return out


def known_mapping(value: Any) -> dict:
    """A map property as a plain dict, ``UNKNOWN`` for each value not known yet."""
    if not isinstance(value, Mapping):
        return {}
    out = {}
    for key in value:
        try:
            out[key] = value[key]
        except UnknownValueError:
            out[key] = UNKNOWN
    return out


def label(resource_type: str, name: str, physical: Any = None) -> str:
    """How a message names a resource: its type, its Pulumi name, its AWS name."""
    kind = resource_type.rsplit(":", 1)[-1]
    text = f"{kind} '{name}'"
    if isinstance(physical, str) and physical and physical != name:
        text += f" ({physical})"
    return text


def of_type(resources: Iterable[PolicyResource], *types: str) -> list[PolicyResource]:
    return [r for r in resources if r.resource_type in types]


def refers_to(resource: PolicyResource, prop: str, target: PolicyResource, value: Any) -> bool:
    """Whether ``resource.<prop>`` points at ``target``: through the engine's property
    dependencies (known even in a preview, when the value itself may not be) or by
    ``value`` (the target's name, URL...)."""
    if any(dep.urn == target.urn for dep in resource.property_dependencies.get(prop, [])):
        return True
    own = get(resource.props, prop)
    return own is not UNKNOWN and own is not None and value is not UNKNOWN and own == value
