"""Pulumi.yaml and the stack files follow the project's config rules."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import ROOT, STACKS

PROJECT = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
DECLARED = PROJECT["config"]
# Pulumi's project schema knows only these (objects go in as JSON strings)
TYPES = {"string": str, "integer": int, "boolean": bool, "array": list}


def stack_config(stack: str) -> dict:
    return yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]


def test_project_runs_python_in_a_virtualenv_from_requirements():
    assert PROJECT["name"] == "listbackup"
    runtime = PROJECT["runtime"]
    assert runtime["name"] == "python"
    assert runtime["options"]["virtualenv"]
    requirements = (ROOT / "requirements.txt").read_text()
    for package in ("pulumi==", "pulumi-aws==7.", "pulumi-random=="):
        assert package in requirements
    # the program builds the layer from the Lambda pins, so a deploy installs them too
    assert "-r requirements-lambda.txt" in requirements


@pytest.mark.parametrize("key", sorted(DECLARED))
def test_every_project_key_has_type_description_and_default(key):
    decl = DECLARED[key]
    assert ":" not in key or key.startswith("listbackup:"), "provider keys are not declared here"
    assert decl["type"] in TYPES
    assert decl.get("description")
    assert "default" in decl, "a key without a default would have to be set in every stack"
    assert isinstance(decl["default"], TYPES[decl["type"]])
    if decl["type"] == "array":
        assert decl["items"]["type"] in TYPES
    if decl.get("secret"):
        assert decl["default"] == "", "an optional secret defaults to '' (generate)"


def test_every_pin_is_exact():
    for name in ("requirements.txt", "requirements-lambda.txt", "requirements-dev.txt"):
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r "):
                assert re.fullmatch(r"[A-Za-z0-9._\[\]-]+==[A-Za-z0-9.+-]+", line), (name, line)


@pytest.mark.parametrize("stack", STACKS)
def test_stack_file_sets_only_declared_keys_with_their_types(stack):
    for key, value in stack_config(stack).items():
        namespace, _, name = key.partition(":")
        if namespace != "listbackup":
            assert namespace == "aws" and not isinstance(value, (dict, list)), \
                f"{key}: provider keys take a plain value"
            continue
        assert name in DECLARED, f"{stack}: {key} is not declared in Pulumi.yaml"
        decl = DECLARED[name]
        if decl.get("secret"):
            assert isinstance(value, dict) and set(value) == {"secure"}, \
                f"{stack}: secret {key} must be `pulumi config set --secret` ciphertext"
        else:
            assert isinstance(value, TYPES[decl["type"]]), f"{stack}: {key} type"


@pytest.mark.parametrize("stack", STACKS)
def test_stack_file_holds_every_stage_specific_value(stack):
    config = stack_config(stack)
    assert config["aws:region"] == "us-east-1"
    for key in ("domain", "certificateArn", "corsOrigins", "sesFromEmail", "logRetentionDays",
                "dataProtection", "pointInTimeRecovery", "lambdaMemory", "authorizerCacheTtl",
                "authorizerProvisionedConcurrency", "forceDestroy", "alarmEmail"):
        assert f"listbackup:{key}" in config, f"{stack} must say {key}"


def test_stages_differ_as_designed():
    dev, staging, main = (stack_config(s) for s in STACKS)
    assert main["listbackup:domain"] == "api.listbackup.ai"
    assert staging["listbackup:domain"] == "staging-api.listbackup.ai"
    assert dev["listbackup:domain"] == ""
    assert dev["listbackup:authorizerCacheTtl"] == 0
    assert 0 < main["listbackup:authorizerCacheTtl"] <= 60
    assert main["listbackup:authorizerProvisionedConcurrency"] > 0
    assert main["listbackup:dataProtection"] is True and main["listbackup:forceDestroy"] is False
    assert dev["listbackup:dataProtection"] is False and dev["listbackup:forceDestroy"] is True
    assert main["listbackup:pointInTimeRecovery"] is True


@pytest.mark.parametrize("stack", STACKS)
def test_no_plaintext_secret_in_stack_files(stack):
    text = (ROOT / f"Pulumi.{stack}.yaml").read_text()
    assert not re.search(r"(?i)(secret|password|sk_live|sk_test|whsec_)\w*:\s*['\"]?[^\s'\"{]", text)
