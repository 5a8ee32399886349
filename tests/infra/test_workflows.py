"""The GitHub Actions workflows cannot run here: these tests keep them valid and make sure
they do what the runbook says. Pull requests: `make test` and a preview of every stack
posted on the pull request. Merges to main: tests, `pulumi up` of staging, then of main
behind the "main" environment's approval. Credentials only from secrets (AWS through
OIDC), every action pinned to a release, the policy pack in every preview and update."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml

from tests.conftest import ROOT, STACKS

WORKFLOWS = ROOT / ".github" / "workflows"
PULUMI_ACTION = "pulumi/actions"
AWS_ACTION = "aws-actions/configure-aws-credentials"
PYTHON_ACTION = "actions/setup-python"
CHECKOUT_ACTION = "actions/checkout"
# owner/repo[/path]@<full commit sha | vMAJOR.MINOR.PATCH>: a moving major tag or a branch
# would let a new release of an action run with the deploy role's credentials unreviewed.
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@([0-9a-f]{40}|v\d+\.\d+\.\d+)$")
EXPRESSION = re.compile(r"^\$\{\{\s*(secrets\.[A-Z][A-Z0-9_]*|github\.token)\s*\}\}$")
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSPHRASE|CREDENTIAL|ACCESS_KEY|PRIVATE", re.I)
# What a leaked credential looks like: AWS access key ids, Pulumi tokens, Stripe keys,
# webhook secrets, PEM blocks, GitHub tokens.
LEAKS = re.compile(r"AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|pul-[0-9a-f]{40}|sk_(live|test)_\w+|"
                   r"rk_(live|test)_\w+|whsec_\w+|-----BEGIN [A-Z ]*PRIVATE KEY|gh[pousr]_\w{20,}")


def load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as the boolean True.
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


def all_workflows() -> dict[str, dict]:
    return {path.name: load(path.name) for path in sorted(WORKFLOWS.glob("*.y*ml"))}


def steps_using(job: dict, action: str) -> list[dict]:
    return [s for s in job["steps"] if s.get("uses", "").split("@")[0] == action]


def step_index(job: dict, predicate) -> int:
    for i, step in enumerate(job["steps"]):
        if predicate(step):
            return i
    raise AssertionError(f"no such step in {[s.get('uses') or s.get('run') for s in job['steps']]}")


def runs(job: dict, command: str) -> bool:
    return any(line.strip() == command
               for step in job["steps"] for line in (step.get("run") or "").splitlines())


def pulumi_step(job: dict) -> dict:
    [step] = steps_using(job, PULUMI_ACTION)
    return step


def needs(job: dict) -> list[str]:
    value = job.get("needs") or []
    return [value] if isinstance(value, str) else list(value)


def environment_name(job: dict) -> str | None:
    env = job.get("environment")
    return env.get("name") if isinstance(env, dict) else env


def requirement_pin(name: str) -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith(f"{name}=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{name} is not pinned in requirements.txt")


def stack_region(stack: str) -> str:
    return yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]["aws:region"]


@pytest.fixture(scope="module")
def pull_request() -> dict:
    return load("pull-request.yml")


@pytest.fixture(scope="module")
def deploy() -> dict:
    return load("deploy.yml")


# ---------------------------------------------------------------- every workflow

def test_the_two_workflows_exist_and_parse():
    found = all_workflows()
    assert {"pull-request.yml", "deploy.yml"} <= set(found)
    for name, workflow in found.items():
        assert workflow.get("name"), name
        assert workflow.get("on"), name
        assert workflow.get("jobs"), name
        for job_id, job in workflow["jobs"].items():
            assert job.get("runs-on") == "ubuntu-latest", (name, job_id)
            assert isinstance(job.get("timeout-minutes"), int), (name, job_id)
            for need in needs(job):
                assert need in workflow["jobs"], (name, job_id, need)
            assert job.get("steps"), (name, job_id)
            for step in job["steps"]:
                assert ("uses" in step) != ("run" in step), (name, job_id, step)


def test_every_action_is_pinned_to_a_release_or_commit():
    for name, workflow in all_workflows().items():
        for job_id, job in workflow["jobs"].items():
            for step in job["steps"]:
                if "uses" in step:
                    assert PINNED.match(step["uses"]), (name, job_id, step["uses"])


def test_checkouts_leave_no_token_behind():
    """`make setup` installs packages after the checkout: the job's GitHub token must not be
    left in .git/config for them."""
    for name, workflow in all_workflows().items():
        for job_id, job in workflow["jobs"].items():
            for checkout in steps_using(job, CHECKOUT_ACTION):
                assert checkout["with"]["persist-credentials"] is False, (name, job_id)


def test_default_token_permissions_are_read_only():
    for name, workflow in all_workflows().items():
        assert workflow.get("permissions") == {"contents": "read"}, name


def inputs_and_environments(workflow: dict):
    """Every (where, mapping) that hands a value to a step: env at each level, `with`."""
    yield ("env",), workflow.get("env") or {}
    for job_id, job in workflow["jobs"].items():
        yield (job_id, "env"), job.get("env") or {}
        for i, step in enumerate(job["steps"]):
            yield (job_id, i, "env"), step.get("env") or {}
            yield (job_id, i, "with"), step.get("with") or {}


def test_no_plaintext_secrets():
    for path in sorted(WORKFLOWS.glob("*.y*ml")):
        assert not LEAKS.search(path.read_text()), path.name
    for name, workflow in all_workflows().items():
        for where, mapping in inputs_and_environments(workflow):
            for key, value in mapping.items():
                if SECRET_NAME.search(key) and not isinstance(value, bool):
                    assert EXPRESSION.match(str(value)), (name, where, key, value)
                # Static AWS keys are not used at all: roles are assumed through OIDC.
                assert key not in ("aws-access-key-id", "aws-secret-access-key",
                                   "aws-session-token", "AWS_ACCESS_KEY_ID",
                                   "AWS_SECRET_ACCESS_KEY"), (name, where)


def test_secrets_reach_only_the_steps_that_need_them():
    """The Pulumi token is given to the Pulumi step alone, never to a whole job (so `make
    setup` - which installs packages - and the tests never see it); no `run:` step reads a
    secret."""
    for name, workflow in all_workflows().items():
        assert "env" not in workflow or not any("secrets." in str(v) for v in workflow["env"].values())
        for job_id, job in workflow["jobs"].items():
            assert not any("secrets." in str(v) for v in (job.get("env") or {}).values()), (name, job_id)
            for step in job["steps"]:
                if "run" in step:
                    assert "secrets." not in str(step), (name, job_id, step["run"])
                if "PULUMI_ACCESS_TOKEN" in (step.get("env") or {}):
                    assert step["uses"].startswith(PULUMI_ACTION + "@"), (name, job_id)


def test_no_script_injection_from_event_data():
    """Untrusted text (titles, branch names, inputs) reaches a script only through env."""
    for name, workflow in all_workflows().items():
        for job_id, job in workflow["jobs"].items():
            for step in job["steps"]:
                script = step.get("run") or ""
                assert not re.search(r"\$\{\{\s*(github\.event|inputs|github\.head_ref)", script), \
                    (name, job_id, script)


def test_python_312_and_the_programs_venv_from_make():
    for name, workflow in all_workflows().items():
        for job_id, job in workflow["jobs"].items():
            [python] = steps_using(job, PYTHON_ACTION)
            assert str(python["with"]["python-version"]) == "3.12", (name, job_id)
            checkout = step_index(job, lambda s: s.get("uses", "").startswith(CHECKOUT_ACTION + "@"))
            setup_python = job["steps"].index(python)
            make = step_index(job, lambda s: (s.get("run") or "").startswith("make "))
            assert checkout < setup_python < make, (name, job_id)


def test_every_pulumi_operation_runs_the_policy_pack_with_the_pinned_cli():
    """The CLI matches the SDK pinned in requirements.txt; the policy pack (policy/) runs in
    every preview and update; credentials come before and `make setup` (the program's
    .venv named in Pulumi.yaml, the layer's wheels) before that."""
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["runtime"]["options"]["virtualenv"] == ".venv"
    cli = requirement_pin("pulumi")
    operations = 0
    for name, workflow in all_workflows().items():
        for job_id, job in workflow["jobs"].items():
            if not steps_using(job, PULUMI_ACTION):
                continue
            operations += 1
            step = pulumi_step(job)
            assert step["with"]["command"] in ("preview", "up"), (name, job_id)
            assert str(step["with"]["pulumi-version"]) == cli, (name, job_id)
            assert step["with"]["policyPacks"] == "policy", (name, job_id)
            assert EXPRESSION.match(step["env"]["PULUMI_ACCESS_TOKEN"]), (name, job_id)
            pulumi_at = job["steps"].index(step)
            setup_at = step_index(job, lambda s: (s.get("run") or "").strip() == "make setup")
            [aws] = steps_using(job, AWS_ACTION)
            assert setup_at < job["steps"].index(aws) < pulumi_at, (name, job_id)
    assert operations == 3   # one preview job (a matrix over the stacks) and two updates


def test_make_setup_creates_the_virtualenvs_pulumi_runs_in():
    """The workflows run `make setup` and nothing else before Pulumi: it must create the
    program's virtualenv (Pulumi.yaml) and the policy pack's (policy/PulumiPolicy.yaml)."""
    program = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["runtime"]["options"]["virtualenv"]
    pack = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    pack_venv = os.path.normpath(os.path.join("policy", pack["runtime"]["options"]["virtualenv"]))
    dry_run = subprocess.run(["make", "-n", "-B", "setup"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
    created = set(re.findall(r"-m venv (\S+)", dry_run))
    assert {program, pack_venv} <= created, created


def test_aws_credentials_come_from_an_oidc_role():
    for name, workflow in all_workflows().items():
        for job_id, job in workflow["jobs"].items():
            for aws in steps_using(job, AWS_ACTION):
                assert job["permissions"]["id-token"] == "write", (name, job_id)
                assert re.fullmatch(r"\$\{\{\s*secrets\.AWS_[A-Z_]*ROLE_ARN\s*\}\}",
                                    aws["with"]["role-to-assume"]), (name, job_id)
                assert set(aws["with"]) <= {"role-to-assume", "role-session-name", "aws-region",
                                            "role-duration-seconds"}, (name, job_id)


# ---------------------------------------------------------------- pull requests

def test_pull_requests_run_make_test(pull_request):
    assert "main" in pull_request["on"]["pull_request"]["branches"]
    assert list(pull_request["on"]) == ["pull_request"]
    assert any(runs(job, "make test") for job in pull_request["jobs"].values())


def test_pull_requests_preview_every_stack_and_post_the_diff(pull_request):
    stacks_on_disk = {p.name[len("Pulumi."):-len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml")}
    assert stacks_on_disk == set(STACKS)
    [job] = [j for j in pull_request["jobs"].values() if steps_using(j, PULUMI_ACTION)]
    assert set(job["strategy"]["matrix"]["stack"]) == set(STACKS)
    assert job["strategy"]["fail-fast"] is False      # one stack's failure hides no other diff
    step = pulumi_step(job)
    assert step["with"]["command"] == "preview"
    assert re.fullmatch(r"\$\{\{\s*matrix\.stack\s*\}\}", step["with"]["stack-name"])
    assert step["with"]["comment-on-pr"] is True
    assert step["with"]["diff"] is True
    assert job["permissions"]["pull-requests"] == "write"
    # Forks get no secrets: their pull requests run the tests and skip the previews.
    assert "head.repo.full_name == github.repository" in job["if"]
    for stack in STACKS:
        [aws] = steps_using(job, AWS_ACTION)
        assert aws["with"]["aws-region"] == stack_region(stack)


def test_previews_are_serialised_per_stack_and_pull_request(pull_request):
    [job] = [j for j in pull_request["jobs"].values() if steps_using(j, PULUMI_ACTION)]
    group = job["concurrency"]["group"]
    assert "matrix.stack" in group and "pull_request.number" in group
    assert "pull_request.number" in pull_request["concurrency"]["group"]


# ---------------------------------------------------------------- merges to main

def deploy_jobs(deploy: dict) -> dict[str, dict]:
    """stack -> the job that runs `pulumi up` on it."""
    out = {}
    for job in deploy["jobs"].values():
        for step in steps_using(job, PULUMI_ACTION):
            assert step["with"]["command"] == "up"
            out[step["with"]["stack-name"]] = job
    return out


def ancestors(workflow: dict, job_id: str) -> set[str]:
    seen: set[str] = set()
    todo = needs(workflow["jobs"][job_id])
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo += needs(workflow["jobs"][current])
    return seen


def test_merges_to_main_deploy(deploy):
    assert deploy["on"]["push"]["branches"] == ["main"]
    assert set(deploy["on"]) <= {"push", "workflow_dispatch"}


def test_merges_update_staging_then_main_after_the_tests(deploy):
    jobs = deploy_jobs(deploy)
    assert set(jobs) == {"staging", "main"}    # dev is deployed by hand (docs/runbook.md)
    ids = {stack: next(k for k, v in deploy["jobs"].items() if v is job) for stack, job in jobs.items()}
    [tests] = [k for k, job in deploy["jobs"].items() if runs(job, "make test")]
    assert tests in ancestors(deploy, ids["staging"])
    assert ids["staging"] in needs(deploy["jobs"][ids["main"]])
    assert {tests, ids["staging"]} <= ancestors(deploy, ids["main"])
    for stack, job in jobs.items():
        assert "refs/heads/main" in job["if"], stack
        [aws] = steps_using(job, AWS_ACTION)
        assert aws["with"]["aws-region"] == stack_region(stack)


def test_main_waits_for_approval_in_its_environment(deploy):
    """Required reviewers are a setting of the "main" environment (docs/runbook.md): only
    the job that updates main runs in it, so only that job waits for the approval."""
    jobs = deploy_jobs(deploy)
    assert environment_name(jobs["main"]) == "main"
    in_main = [(name, job_id) for name, workflow in all_workflows().items()
               for job_id, job in workflow["jobs"].items() if environment_name(job) == "main"]
    assert in_main == [("deploy.yml", next(k for k, v in deploy["jobs"].items() if v is jobs["main"]))]


def test_one_update_per_stack_at_a_time_never_cancelled(deploy):
    groups = set()
    for stack, job in deploy_jobs(deploy).items():
        assert stack in job["concurrency"]["group"]
        assert job["concurrency"]["cancel-in-progress"] is False
        groups.add(job["concurrency"]["group"])
    assert len(groups) == 2


def test_staging_and_main_deploy_the_tested_commit(deploy):
    """A hand-run deploy (rollback) names a commit; it is resolved once by the tests job,
    refused unless it is on main, and both updates check out exactly that commit."""
    [tests_id] = [k for k, job in deploy["jobs"].items() if runs(job, "make test")]
    tests = deploy["jobs"][tests_id]
    checkout = steps_using(tests, CHECKOUT_ACTION)[0]
    assert "inputs.ref" in checkout["with"]["ref"] and checkout["with"]["fetch-depth"] == 0
    resolve = next(s for s in tests["steps"] if "GITHUB_OUTPUT" in (s.get("run") or ""))
    assert "merge-base --is-ancestor" in resolve["run"] and "origin/main" in resolve["run"]
    assert tests["outputs"]["sha"] == "${{ steps.%s.outputs.sha }}" % resolve["id"]
    for stack, job in deploy_jobs(deploy).items():
        ref = steps_using(job, CHECKOUT_ACTION)[0]["with"]["ref"]
        assert re.fullmatch(r"\$\{\{\s*needs\.\w+\.outputs\.sha\s*\}\}", ref), stack
        assert "outputs.sha" in pulumi_step(job)["with"]["message"], stack


def test_ci_runs_exactly_the_readme_test_command():
    script = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in script.splitlines()
                if line.strip() and not line.strip().startswith("#")]
    assert commands[-1] == "exec make test"
    assert "make test" in (ROOT / "README.md").read_text()
