"""Running the policy pack over what a program declares, across two virtualenvs.

The program is evaluated under Pulumi's mocks in the main virtualenv; its resources are
written out as JSON in the engine's wire format (``pulumi stack export`` shapes); the pack
runs in its own virtualenv (``.venv-policy``: pulumi-policy pins an older protobuf than the
program's pulumi) through ``policy/runner.py``, which hands them to the policies through
pulumi-policy's own argument types.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path
from typing import Any, Iterator

from offline import evaluate as evaluation_module
from offline.evaluate import Evaluation, evaluate

ROOT = Path(__file__).resolve().parents[2]
POLICY_PYTHON = ROOT / ".venv-policy" / "bin" / "python"
RUNNER = ROOT / "policy" / "runner.py"
EXAMPLES = Path(__file__).resolve().parent / "examples"

# policy -> the Pulumi names of the examples it must report (tests/policy/examples, stack main)
EXAMPLE_VIOLATIONS = {
    "s3-bucket-encrypted": ["unencrypted-bucket"],
    "s3-bucket-public-access-blocked": ["half-public-bucket", "unblocked-bucket"],
    "s3-bucket-tls-only": ["plain-http-bucket", "policyless-bucket"],
    "dynamodb-pitr-in-main": ["unrecoverable-table"],
    "sqs-dead-letter-queue": ["undead-queue"],
    "lambda-log-group-retention": ["forever-function", "unlogged-function"],
    "lambda-arm64": ["default-arch-function", "x86-function"],
    "lambda-no-secret-environment": ["secret-name-function", "secret-value-function"],
    "iam-no-wildcard-actions": ["wildcard-action-policy"],
    "iam-no-wildcard-resources": ["managed-policy-attachment", "wildcard-resource-policy"],
    "kms-key-rotation": ["static-key"],
}

# The engine's wire format (pulumi/sdk/python/lib/pulumi/runtime/rpc.py).
SIG = "4dabf18193072939515e22adb298388d"
ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17"
ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"   # an unknown string; any kind is refused alike


def wire(value: Any) -> Any:
    """A recorded property value as the engine sends it to a policy pack."""
    import pulumi

    if isinstance(value, dict):        # secrets already arrive as {SIG: secret, value}
        return {k: wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [wire(v) for v in value]
    if isinstance(value, pulumi.FileArchive):
        return {SIG: ARCHIVE_SIG, "path": value.path}
    if isinstance(value, pulumi.AssetArchive):
        return {SIG: ARCHIVE_SIG, "assets": {k: wire(v) for k, v in value.assets.items()}}
    if isinstance(value, pulumi.RemoteArchive):
        return {SIG: ARCHIVE_SIG, "uri": value.uri}
    if isinstance(value, pulumi.FileAsset):
        return {SIG: ASSET_SIG, "path": value.path}
    if isinstance(value, pulumi.StringAsset):
        return {SIG: ASSET_SIG, "text": value.text}
    if isinstance(value, pulumi.RemoteAsset):
        return {SIG: ASSET_SIG, "uri": value.uri}
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(f"no wire format for {type(value).__name__}: {value!r}")


def serialise(program: Evaluation,
              property_dependencies: dict[str, dict[str, list[str]]] | None = None) -> list[dict]:
    """Every registered resource: type, name, urn, parent, inputs and outputs (the mocks'
    state: inputs plus what AWS computes), dependencies."""
    deps = property_dependencies or {}
    return [{"type": r.type, "name": r.name, "urn": r.urn, "parent": r.parent,
             "protect": r.protect, "inputs": wire(r.inputs), "outputs": wire(r.state or r.inputs),
             "dependencies": list(r.dependencies), "propertyDependencies": deps.get(r.urn, {})}
            for r in program.resources]


@contextlib.contextmanager
def recording_property_dependencies() -> Iterator[dict[str, dict[str, list[str]]]]:
    """Record which properties of each resource depend on which resources (the engine
    passes these to stack policies); ``offline.evaluate`` keeps only the dependencies."""
    recorded: dict[str, dict[str, list[str]]] = {}
    make_monitor = evaluation_module._make_monitor

    def capturing(mocks, records):
        monitor = make_monitor(mocks, records)
        register = monitor.RegisterResource

        def register_resource(request):
            result = register(request)
            recorded[result.urn] = {k: list(v.urns) for k, v in request.propertyDependencies.items()
                                    if v.urns}
            return result

        monitor.RegisterResource = register_resource
        return monitor

    evaluation_module._make_monitor = capturing
    try:
        yield recorded
    finally:
        evaluation_module._make_monitor = make_monitor


def evaluate_with_dependencies(stack: str, root: Path = ROOT) -> list[dict]:
    with recording_property_dependencies() as deps:
        program = evaluate(stack, root)
    return serialise(program, deps)


# Outputs pulumi-aws computes when the program leaves them unset (non-Optional outputs in
# its SDK), which a preview of a new resource therefore shows as unknown. The mocks do not
# return them at all; as_first_preview adds them.
COMPUTED_OUTPUTS = {
    "aws:s3/bucket:Bucket": ("policy", "serverSideEncryptionConfiguration"),
    "aws:sqs/queue:Queue": ("redrivePolicy", "redriveAllowPolicy"),
    "aws:lambda/function:Function": ("loggingConfig", "architectures"),
}


def as_first_preview(entries: list[dict]) -> list[dict]:
    """The same resources as a preview of a stack that does not exist yet shows them:
    every property computed from another resource is unknown (inputs and outputs), and so
    is every output AWS computes (ARNs, URLs, ids, COMPUTED_OUTPUTS). Pessimistic: a real
    preview knows an output that merely echoes an input."""
    out = []
    for entry in entries:
        pending = set(entry["propertyDependencies"])
        inputs = {k: UNKNOWN if k in pending else v for k, v in entry["inputs"].items()}
        outputs = {k: UNKNOWN if k in pending or k not in entry["inputs"] else v
                   for k, v in entry["outputs"].items()}
        for key in COMPUTED_OUTPUTS.get(entry["type"], ()):
            outputs.setdefault(key, UNKNOWN)
        out.append({**entry, "inputs": inputs, "outputs": outputs})
    return out


def run_pack(resources: list[dict], config: dict | None = None) -> dict:
    """The runner's report: ``pack``, ``violations``, ``notApplicable``, ``unknown``."""
    if not POLICY_PYTHON.exists():
        raise RuntimeError(f"{POLICY_PYTHON} is missing: run `make setup` (it creates the "
                           "policy pack's virtualenv from policy/requirements.txt)")
    payload = json.dumps({"resources": resources, "config": config or {}})
    done = subprocess.run([str(POLICY_PYTHON), str(RUNNER)], input=payload, text=True,
                          capture_output=True, timeout=120, cwd=ROOT)
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise RuntimeError(f"policy runner failed ({done.returncode}):\n{done.stderr}")
    report = json.loads(done.stdout)
    mandatory = any(v["enforcementLevel"] == "mandatory" for v in report["violations"])
    assert done.returncode == (1 if mandatory else 0), "exit status must say if a mandatory policy failed"
    return report


def by_policy(report: dict) -> dict[str, list[str]]:
    """policy -> sorted Pulumi names of the resources it reported."""
    found: dict[str, list[str]] = {}
    for v in report["violations"]:
        found.setdefault(v["policy"], []).append(v["urn"].rsplit("::", 1)[-1])
    return {k: sorted(v) for k, v in found.items()}
