"""The same-run baseline of the program's evaluation (benchmarks/run_all.py, figure 4).

Issue 12 asks for "a baseline program that registers the same number of resources of the
same types and does nothing else". :func:`write` turns an evaluation of the real program
into such a program: one row per recorded resource, registered in the same order, with the
same name, parent and inputs (the values the real program's Outputs resolved to), and
nothing else - no packaging, no hashing, no config, no promotion gate, no policy building,
no exports.

Typed (the default, the figure's baseline): every resource goes through the same class the
real program uses, as any program using pulumi-aws would declare it - the type token
``aws:lambda/function:Function`` becomes ``pulumi_aws.lambda_.Function`` (``random:index/...``
a ``pulumi_random`` class), called with the recorded inputs as keyword arguments
(camelCase -> snake_case at the top level, checked against the class's signature; nested
dicts go as recorded; a secret goes as a secret Output, an archive as a ``FileArchive`` of
the same path). Components are ``pulumi.ComponentResource`` of the same type, and the
stack reference the promotion gate reads is a ``pulumi.StackReference`` of the same stack.
So the typed classes' own cost (an Output per property, the typed args converted and
serialised) is in the baseline as it is in every pulumi-aws program, and the ratio shows
only what this program adds: packaging, hashing, config, the gate, its own Outputs.

Untyped (``typed=False``, reported beside it, without a target): every custom resource as
a bare ``pulumi.CustomResource(type, name, inputs)`` - the floor of the SDK itself, so the
share of the typed classes stays visible.
"""

from __future__ import annotations

import inspect
import json
import keyword
import re
from pathlib import Path
from typing import Any

STACK_REFERENCE = "pulumi:pulumi:StackReference"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"     # pulumi.runtime.rpc._special_secret_sig

TYPED_PROGRAM = '''
import importlib
import json
from pathlib import Path

import pulumi


def value(v):
    """A recorded input back as the real program hands it over: secrets as secret Outputs,
    archives as FileArchives, everything else as it is."""
    if isinstance(v, dict):
        if "$secret" in v:
            return pulumi.Output.secret(value(v["$secret"]))
        if "$archive" in v:
            return pulumi.FileArchive(v["$archive"])
        return {k: value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [value(x) for x in v]
    return v


classes = {}
created = {}
for kind, typ, name, urn, parent, where, inputs in json.loads(
        (Path(__file__).parent / "resources.json").read_text()):
    opts = pulumi.ResourceOptions(parent=created[parent]) if parent in created else None
    if kind == "component":
        created[urn] = pulumi.ComponentResource(typ, name, None, opts)
    elif kind == "reference":
        created[urn] = pulumi.StackReference(name, opts=opts)
    else:
        cls = classes.get(typ)
        if cls is None:
            module, class_name = where
            cls = classes[typ] = getattr(importlib.import_module(module), class_name)
        created[urn] = cls(name, opts=opts, **{k: value(v) for k, v in inputs.items()})
'''

UNTYPED_PROGRAM = '''
import json
from pathlib import Path

import pulumi

for typ, name, inputs, custom in json.loads((Path(__file__).parent / "resources.json").read_text()):
    if custom:
        pulumi.CustomResource(typ, name, inputs)
    else:
        pulumi.ComponentResource(typ, name, inputs)
'''


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(getattr(value, "path", value))


def _recorded(value: Any) -> Any:
    """A recorded input as JSON: secrets and archives marked, whole floats as ints."""
    if isinstance(value, dict):
        if value.get("4dabf18193072939515e22adb298388d") == _SECRET_SIG:
            return {"$secret": _recorded(value.get("value"))}
        return {k: _recorded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_recorded(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "path"):          # pulumi.FileArchive / FileAsset
        return {"$archive": str(value.path)}
    raise TypeError(f"cannot record input {value!r}")


def typed_class(typ: str) -> tuple[str, str]:
    """The module and class name that declare resources of type ``typ``:
    ``aws:lambda/function:Function`` -> ``("pulumi_aws.lambda_", "Function")``."""
    package, module, class_name = typ.split(":")
    module = module.split("/")[0]
    if module == "index":
        return f"pulumi_{package}", class_name
    return f"pulumi_{package}.{module + '_' if keyword.iskeyword(module) else module}", class_name


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _keyword_arguments(typ: str, inputs: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    import importlib

    where = typed_class(typ)
    cls = getattr(importlib.import_module(where[0]), where[1])
    accepted = set(inspect.signature(cls._internal_init).parameters)
    kwargs = {}
    for key, value in inputs.items():
        name = _snake(key)
        if name not in accepted:
            raise ValueError(f"{typ}: input {key!r} is no keyword argument of {where[0]}.{where[1]}")
        kwargs[name] = _recorded(value)
    return list(where), kwargs


def write(evaluation, folder: Path, stack: str, *, typed: bool = True) -> Path:
    """The baseline program for ``evaluation``'s resources, written into ``folder``.

    Typed: every resource, the stack reference included (evaluate it with the same
    ``upstream``). Untyped: every resource but the stack reference."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Pulumi.yaml").write_text("name: baseline\nruntime: python\n")
    (folder / f"Pulumi.{stack}.yaml").write_text("config: {}\n")
    (folder / "__main__.py").write_text(TYPED_PROGRAM if typed else UNTYPED_PROGRAM)
    rows = []
    for n, r in enumerate(evaluation.resources):
        package = r.type.split(":")[0]
        if not typed:
            if r.type == STACK_REFERENCE:
                continue
            custom = package in ("aws", "random")
            rows.append([r.type, f"r{n}-{r.name}", _plain(r.inputs) if custom else {}, custom])
        elif r.type == STACK_REFERENCE:
            rows.append(["reference", r.type, r.name, r.urn, r.parent, None, {}])
        elif package in ("aws", "random"):
            where, kwargs = _keyword_arguments(r.type, r.inputs)
            rows.append(["custom", r.type, r.name, r.urn, r.parent, where, kwargs])
        else:
            rows.append(["component", r.type, r.name, r.urn, r.parent, None, {}])
    (folder / "resources.json").write_text(json.dumps(rows))
    return folder
