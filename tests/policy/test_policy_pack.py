"""The policy pack (policy/): every stack of the program meets every policy, and each
policy reports a bad example of its kind, naming the resource.

The program and the examples (tests/policy/examples) are evaluated under Pulumi's mocks
here; the pack runs over their resources in its own virtualenv (see pack_support)."""

from __future__ import annotations

import importlib.util
import json
import subprocess

from components import functions as program_functions
from tests.conftest import evaluated
from tests.policy.pack_support import EXAMPLE_VIOLATIONS as EXPECTED
from tests.policy.pack_support import (EXAMPLES, POLICY_PYTHON, ROOT, RUNNER, as_first_preview,
                                       by_policy, evaluate_with_dependencies, run_pack,
                                       serialise)

STACK_POLICIES = {"s3-bucket-encrypted", "s3-bucket-public-access-blocked", "s3-bucket-tls-only",
                  "sqs-dead-letter-queue", "lambda-log-group-retention"}


def examples(stack: str) -> list[dict]:
    return evaluate_with_dependencies(stack, EXAMPLES)


def describe(report: dict) -> str:
    return "\n".join(f"{v['policy']}: {v['message']}" for v in report["violations"])


def test_pack_is_mandatory_and_holds_every_policy():
    pack = run_pack([])["pack"]
    assert pack["name"] == "listbackup"
    assert pack["enforcementLevel"] == "mandatory"
    assert {p["name"]: p["enforcementLevel"] for p in pack["policies"]} == {
        name: "mandatory" for name in EXPECTED}
    assert {p["name"] for p in pack["policies"] if p["kind"] == "stack"} == STACK_POLICIES


def test_program_meets_every_policy(stack):
    report = run_pack(serialise(evaluated(stack)))
    assert report["violations"] == [], describe(report)
    assert report["unknown"] == []


def test_each_policy_reports_its_bad_example_by_name():
    resources = examples("main")
    report = run_pack(resources)
    assert by_policy(report) == EXPECTED, describe(report)
    urns = {r["name"]: r["urn"] for r in resources}
    for violation in report["violations"]:
        name = violation["urn"].rsplit("::", 1)[-1]
        assert violation["urn"] == urns[name]
        assert f"'{name}'" in violation["message"], violation["message"]
        assert violation["enforcementLevel"] == "mandatory"
    # the documented exception (X-Ray on "*") and an asymmetric key pass
    assert {(n["policy"], n["urn"].rsplit("::", 1)[-1]) for n in report["notApplicable"]} == {
        ("kms-key-rotation", "signing-key")}


def test_point_in_time_recovery_is_required_in_main_only():
    report = run_pack(examples("dev"))
    assert by_policy(report) == {k: v for k, v in EXPECTED.items() if k != "dynamodb-pitr-in-main"}


def test_policy_config_names_the_stages_that_need_recovery():
    report = run_pack(examples("dev"), config={"dynamodb-pitr-in-main": {"stages": ["dev"]},
                                               "lambda-arm64": {"enforcementLevel": "advisory"}})
    found = by_policy(report)
    assert found["dynamodb-pitr-in-main"] == ["unrecoverable-table"]
    assert {v["enforcementLevel"] for v in report["violations"] if v["policy"] == "lambda-arm64"} == {
        "advisory"}


def test_first_preview_of_main_raises_no_false_violation():
    """Before a stack exists, ARNs and ids are unknown: stack policies link resources
    through the engine's property dependencies, and a document that cannot be read yet is
    read again before the update (pulumi-policy reports it as an advisory note)."""
    report = run_pack(as_first_preview(evaluate_with_dependencies("main")))
    assert report["violations"] == [], describe(report)
    assert {u["policy"] for u in report["unknown"]} <= {"iam-no-wildcard-actions",
                                                        "iam-no-wildcard-resources"}


def test_first_preview_still_catches_what_it_can_see():
    found = by_policy(run_pack(as_first_preview(examples("main"))))
    # plain-http-bucket's policy names the bucket's ARN, unknown until the bucket exists
    assert found == {**EXPECTED, "s3-bucket-tls-only": ["policyless-bucket"]}


def test_runner_reads_a_stack_export(tmp_path):
    """An operator can check a deployed stack: `pulumi stack export > export.json`, whose
    secrets are ciphertext."""
    resources = examples("main")
    for entry in resources:
        for props in (entry["inputs"], entry["outputs"]):
            for key, value in props.items():
                if isinstance(value, dict) and "value" in value and len(value) == 2:
                    props[key] = {k: v for k, v in value.items() if k != "value"} | {
                        "ciphertext": "v1:abc"}
    exported = tmp_path / "export.json"
    exported.write_text(json.dumps({"version": 3, "deployment": {"resources": resources}}))
    done = subprocess.run([str(POLICY_PYTHON), str(RUNNER), str(exported)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 1, done.stderr
    # secret-name-function's environment holds a secret, so the export encrypts all of it:
    # only `pulumi stack export --show-secrets` lets the pack read it
    assert by_policy(json.loads(done.stdout)) == {
        **EXPECTED, "lambda-no-secret-environment": ["secret-value-function"]}


def test_rules_are_the_programs_own_build_checks():
    """The pack repeats components/functions.py's checks for any program; they agree."""
    spec = importlib.util.spec_from_file_location(
        "listbackup_policy_rules", ROOT / "policy" / "listbackup_policy" / "rules.py")
    rules = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rules)
    assert rules.ACTIONS_WITHOUT_RESOURCES == program_functions.ACTIONS_WITHOUT_RESOURCES
    assert rules.SECRET_LIKE.pattern == program_functions._SECRET_LIKE.pattern
    assert rules.NAME_LIKE == program_functions._NAME_LIKE
    for key in ("JWT_SECRET", "JWT_SECRET_PARAM", "DB_PASSWORD", "STRIPE_TOKEN_ARN", "STAGE"):
        try:
            program_functions.check_environment("f", {key: "x"})
            refused = False
        except ValueError:
            refused = True
        assert bool(rules.secret_environment({key: "x"})) == refused, key
