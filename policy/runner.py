"""Run the policy pack over resources given as JSON, without the Pulumi CLI.

    .venv-policy/bin/python policy/runner.py resources.json      (or the JSON on stdin)

The input lists resources as ``pulumi stack export`` shapes them: ``{"resources": [{"urn",
"type", "inputs", "outputs", "parent", "dependencies", "propertyDependencies",
"protect"}], "config": {<policy>: {...}}}``, property values in the engine's wire format
(secrets and archives as signature objects). The runner does what the CLI does with a
policy pack: it runs ``__main__.py`` (with ``PolicyPack`` replaced by a recorder, since the
real one starts a server and blocks), hands every resource's inputs to each resource
policy (as ``Analyze`` does before a resource is created) and every resource's outputs to
each stack policy (as ``AnalyzeStack`` does at the end), through pulumi-policy's own
argument types and unknown-value proxies. It prints JSON: the pack, its violations, the
policies that were not applicable and those that could not run because a value was
unknown.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import runpy
import sys
from pathlib import Path
from typing import Any

import pulumi_policy
from pulumi_policy import (EnforcementLevel, Policy, PolicyCustomTimeouts, PolicyResource,
                           PolicyResourceOptions, ResourceValidationArgs,
                           ResourceValidationPolicy, StackValidationArgs, StackValidationPolicy)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.policy import _NotApplicableError  # what Policy.not_applicable raises
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

PACK_DIR = Path(__file__).resolve().parent
_PACK_NAME = re.compile(r"^[a-zA-Z0-9-_.]{1,100}$")


class RecordedPack:
    """Stands in for ``PolicyPack`` while ``__main__.py`` runs: checks and keeps what the
    real one would serve."""
    last: "RecordedPack | None" = None

    def __init__(self, name: str, policies: list, enforcement_level=None, initial_config=None,
                 description=None, **_: Any) -> None:
        if not isinstance(name, str) or not _PACK_NAME.match(name):
            raise TypeError(f"invalid policy pack name {name!r}")
        if not policies or not all(isinstance(p, Policy) for p in policies):
            raise TypeError("a policy pack needs a list of Policy objects")
        names = [p.name for p in policies]
        if len(names) != len(set(names)):
            raise TypeError(f"policy names must be unique: {names}")
        self.name = name
        self.policies = policies
        self.enforcement_level = enforcement_level or EnforcementLevel.ADVISORY
        self.initial_config = initial_config or {}
        self.description = description
        RecordedPack.last = self


def load_pack() -> RecordedPack:
    """Run ``__main__.py`` the way the CLI's analyzer shim does (``runpy`` on the pack's
    folder) with ``PolicyPack`` recorded instead of served."""
    real = pulumi_policy.PolicyPack
    pulumi_policy.PolicyPack = RecordedPack  # type: ignore[misc]
    RecordedPack.last = None
    try:
        runpy.run_path(str(PACK_DIR), run_name="__main__")
    finally:
        pulumi_policy.PolicyPack = real  # type: ignore[misc]
    if RecordedPack.last is None:
        raise RuntimeError(f"{PACK_DIR / '__main__.py'} constructed no PolicyPack")
    return RecordedPack.last


def _name_of(entry: dict) -> str:
    return entry.get("name") or entry["urn"].rsplit("::", 1)[-1]


def _options(entry: dict) -> PolicyResourceOptions:
    return PolicyResourceOptions(bool(entry.get("protect")), [], None, [],
                                 PolicyCustomTimeouts(0, 0, 0), [], entry.get("parent") or None)


_SIG, _SECRET = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"


def _readable(value: Any) -> Any:
    """``pulumi stack export`` (without --show-secrets) gives a secret as ciphertext; the
    policies see it as an opaque placeholder instead."""
    if isinstance(value, dict):
        if value.get(_SIG) == _SECRET and "value" not in value:
            return {_SIG: _SECRET, "value": "[secret]"}
        return {k: _readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_readable(v) for v in value]
    return value


def _props(values: dict | None):
    return unknown_checking_proxy(deserialize_properties(_readable(values or {})))


def _settle(result: Any) -> None:
    if result is not None and inspect.isawaitable(result):
        asyncio.run(_await(result))


async def _await(result):
    await result


def evaluate(entries: list[dict], config: dict | None = None,
             pack: RecordedPack | None = None) -> dict:
    pack = pack or load_pack()
    config = {**pack.initial_config, **(config or {})}
    out: dict[str, list] = {"violations": [], "notApplicable": [], "unknown": []}

    def level(policy: Policy) -> EnforcementLevel:
        # Policy config is a level ("advisory") or an object that may hold "enforcementLevel".
        value = config.get(policy.name)
        own = value.get("enforcementLevel") if isinstance(value, dict) else value
        if own:
            return own if isinstance(own, EnforcementLevel) else EnforcementLevel(own)
        return policy.enforcement_level or pack.enforcement_level

    def policy_config(policy: Policy) -> dict:
        value = config.get(policy.name)
        if not isinstance(value, dict):
            return {}
        return {k: v for k, v in value.items() if k != "enforcementLevel"}

    def run(policy: Policy, call, subject_urn: str) -> None:
        def report(message: str, urn: str | None = None) -> None:
            out["violations"].append({
                "policy": policy.name, "description": policy.description, "message": message,
                "urn": urn or subject_urn, "enforcementLevel": level(policy).value})
        try:
            _settle(call(report))
        except UnknownValueError as e:
            out["unknown"].append({"policy": policy.name, "urn": subject_urn, "message": e.message})
        except _NotApplicableError as e:
            out["notApplicable"].append({"policy": policy.name, "urn": subject_urn,
                                         "reason": e.reason or ""})

    active = [p for p in pack.policies if level(p) != EnforcementLevel.DISABLED]

    # Analyze: each resource's inputs, one resource at a time.
    for entry in entries:
        for policy in active:
            if not isinstance(policy, ResourceValidationPolicy):
                continue
            args = ResourceValidationArgs(entry["type"], _props(entry.get("inputs")),
                                          entry["urn"], _name_of(entry), _options(entry), None,
                                          policy_config(policy))
            run(policy, lambda report, a=args, p=policy: p.validate(a, report), entry["urn"])

    # AnalyzeStack: every resource's outputs, linked to its parent and dependencies.
    for policy in active:
        if not isinstance(policy, StackValidationPolicy):
            continue
        resources = {e["urn"]: PolicyResource(e["type"], _props(e.get("outputs", e.get("inputs"))),
                                              e["urn"], _name_of(e), _options(e), None, None,
                                              [], {}) for e in entries}
        for e in entries:
            resource = resources[e["urn"]]
            resource.parent = resources.get(e.get("parent") or "")
            resource.dependencies = [resources[u] for u in e.get("dependencies") or ()
                                     if u in resources]
            resource.property_dependencies = {
                k: [resources[u] for u in urns if u in resources]
                for k, urns in (e.get("propertyDependencies") or {}).items()}
        args = StackValidationArgs(list(resources.values()), policy_config(policy))
        run(policy, lambda report, a=args, p=policy: p.validate(a, report), "")

    out["pack"] = {
        "name": pack.name, "description": pack.description,
        "enforcementLevel": pack.enforcement_level.value,
        "policies": [{"name": p.name, "description": p.description,
                      "kind": "stack" if isinstance(p, StackValidationPolicy) else "resource",
                      "enforcementLevel": level(p).value} for p in pack.policies],
    }
    return out


def main(argv: list[str]) -> int:
    source = Path(argv[1]).read_text() if len(argv) > 1 else sys.stdin.read()
    data = json.loads(source)
    if isinstance(data, list):
        data = {"resources": data}
    if "deployment" in data:  # `pulumi stack export` output
        data = {"resources": data["deployment"].get("resources") or []}
    result = evaluate(data.get("resources") or [], data.get("config"))
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 1 if any(v["enforcementLevel"] == "mandatory" for v in result["violations"]) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
