"""Faults injected into offline mode's function processes (offline tests only).

    python -m offline --faults PLAN.json ...

Never a production code path: nothing under ``handlers/`` or ``components/`` knows of it.
Offline mode adds ``offline/faults_hook.py`` to every function process's
``OFFLINE_PROCESS_HOOKS``; the hook makes the process's AWS calls fail as the plan says
(see that module for how). The plan is JSON:

.. code-block:: json

    {
      "seed": 7,
      "settings": {
        "queues": {"listbackup-job-queue-*": {"visibilityTimeout": 10}},
        "functions": {"listbackup-jobs-*-worker": {"environment": {"LEASE_SECONDS": "2"}}}
      },
      "faults": [
        {"id": "runs-throttled", "function": "listbackup-jobs-*-worker",
         "service": "dynamodb", "operation": ["UpdateItem", "GetItem"],
         "error": "ProvisionedThroughputExceededException", "every": 3, "times": 4},
        {"id": "slow-s3", "service": "s3", "operation": "UploadPart", "error": "SlowDown",
         "probability": 0.3},
        {"id": "die", "function": "*-worker", "service": "s3", "operation": "UploadPart",
         "action": "kill", "after": 1, "times": 1}
      ]
    }

``faults``: each rule selects calls by ``function`` (the Lambda function's name),
``service`` (botocore's name: ``dynamodb``, ``s3``, ``sqs``, ``kms``, ``ssm``, ``ses``) and
``operation`` (``PutItem``...), each a name, a glob or a list (absent: any), and optionally
``match``: text (or a list of texts, all required) that must appear in the call's
parameters as JSON (a table name, an account id, a key prefix). Of the selected calls,
counted across every process of the function from 1, the first ``after`` pass; then every
``every``-th one fails (absent: each one), or each with ``probability`` drawn from the
plan's ``seed``, the rule and the call's number (so a replay draws the same numbers); at
most ``times`` faults in all. A fault is ``error`` (a service error code, see
:data:`offline.faults_hook.ERRORS`; ``status``/``message`` override the defaults) or
``"action": "kill"``: the process exits at once (code 137) without answering, as a Lambda
environment that dies mid-invocation. The first rule that fires wins. The file is
re-read whenever it changes, so a test can switch faults on and off while offline mode
runs; counters start afresh for a rule whose text changed.

``settings`` (read once, at start): shorter queue visibility timeouts and function
timeouts and environment variables (LEASE_SECONDS...), keyed by physical name or glob, so
that what would take SQS an hour to retry takes seconds on a test machine. They change the
deployment offline mode provisions, not the program.

Every injected fault is one line of ``injected.jsonl`` in the plan's state folder
(``<plan>.state/`` beside the plan; :func:`injected` reads it), and one log line.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offline import faults_hook
from offline.faults_hook import ERRORS, INJECTED_LOG, KILL, PLAN_ENV, STATE_ENV

HOOK = Path(faults_hook.__file__).resolve()
HOOKS_ENV = "OFFLINE_PROCESS_HOOKS"
SERVICES = ("dynamodb", "s3", "sqs", "kms", "ssm", "ses", "sts", "iam", "cloudwatch", "events",
            "scheduler", "lambda", "secretsmanager", "sns", "logs")
RULE_KEYS = {"id", "function", "service", "operation", "match", "error", "status", "message",
             "action", "every", "after", "times", "probability", "enabled", "exitCode", "note"}
QUEUE_SETTINGS = {"visibilityTimeout": "visibility_timeout"}
FUNCTION_SETTINGS = {"environment", "timeout"}


class PlanError(ValueError):
    """The fault plan cannot be used; the message says where."""


@dataclass
class Plan:
    path: Path
    seed: Any = 0
    faults: list[dict] = field(default_factory=list)
    queues: dict[str, dict] = field(default_factory=dict)
    functions: dict[str, dict] = field(default_factory=dict)

    @property
    def state(self) -> Path:
        return state_folder(self.path)


def state_folder(path: Path) -> Path:
    return path.with_name(path.name + ".state")


# --------------------------------------------------------------------------- reading

def check_rule(rule: Any, where: str) -> None:
    if not isinstance(rule, dict):
        raise PlanError(f"{where}: a rule is a JSON object")
    unknown = set(rule) - RULE_KEYS
    if unknown:
        raise PlanError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("function", "service", "operation", "match"):
        value = rule.get(key)
        if value is not None and not (isinstance(value, str) or (
                isinstance(value, list) and value and all(isinstance(v, str) for v in value))):
            raise PlanError(f"{where}: {key} must be a name, a glob or a list of them")
    services = rule.get("service")
    for name in ([services] if isinstance(services, str) else services or []):
        if not any(fnmatch.fnmatchcase(s, name) for s in SERVICES):
            raise PlanError(f"{where}: no AWS service matches {name!r}")
    action = rule.get("action")
    if action is not None and action != KILL:
        raise PlanError(f"{where}: action must be {KILL!r}")
    if action is None:
        code = rule.get("error")
        if not isinstance(code, str) or not code:
            raise PlanError(f"{where}: say which error (\"error\": one of {', '.join(ERRORS)}) "
                            f"or \"action\": \"kill\"")
        if code not in ERRORS and rule.get("status") is None:
            raise PlanError(f"{where}: unknown error {code!r}: give its HTTP \"status\" too, "
                            f"or use one of {', '.join(ERRORS)}")
    elif rule.get("error") is not None:
        raise PlanError(f"{where}: a kill rule has no error")
    for key in ("every", "times", "status", "exitCode"):
        value = rule.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise PlanError(f"{where}: {key} must be a positive whole number")
    after = rule.get("after")
    if after is not None and (not isinstance(after, int) or isinstance(after, bool) or after < 0):
        raise PlanError(f"{where}: after must be a whole number, 0 or more")
    probability = rule.get("probability")
    if probability is not None and (isinstance(probability, bool) or not isinstance(probability, (int, float))
                                    or not 0 <= probability <= 1):
        raise PlanError(f"{where}: probability must be between 0 and 1")


def parse(data: Any, path: Path) -> Plan:
    if not isinstance(data, dict):
        raise PlanError(f"{path}: the plan is a JSON object")
    unknown = set(data) - {"seed", "faults", "settings", "note"}
    if unknown:
        raise PlanError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    faults = data.get("faults") or []
    if not isinstance(faults, list):
        raise PlanError(f"{path}: faults is a list of rules")
    for n, rule in enumerate(faults):
        check_rule(rule, f"{path}: faults[{n}]")
    settings = data.get("settings") or {}
    if not isinstance(settings, dict) or set(settings) - {"queues", "functions"}:
        raise PlanError(f"{path}: settings holds only \"queues\" and \"functions\"")
    queues = settings.get("queues") or {}
    for name, values in queues.items():
        if not isinstance(values, dict) or set(values) - set(QUEUE_SETTINGS):
            raise PlanError(f"{path}: settings.queues[{name!r}] may set only "
                            f"{', '.join(QUEUE_SETTINGS)}")
        timeout = values.get("visibilityTimeout")
        if timeout is not None and (not isinstance(timeout, int) or not 0 <= timeout <= 43200):
            raise PlanError(f"{path}: settings.queues[{name!r}].visibilityTimeout must be 0-43200")
    functions = settings.get("functions") or {}
    for name, values in functions.items():
        if not isinstance(values, dict) or set(values) - FUNCTION_SETTINGS:
            raise PlanError(f"{path}: settings.functions[{name!r}] may set only "
                            f"{', '.join(sorted(FUNCTION_SETTINGS))}")
        environment = values.get("environment") or {}
        if not isinstance(environment, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in environment.items()):
            raise PlanError(f"{path}: settings.functions[{name!r}].environment maps names to strings")
        timeout = values.get("timeout")
        if timeout is not None and (not isinstance(timeout, int) or not 1 <= timeout <= 900):
            raise PlanError(f"{path}: settings.functions[{name!r}].timeout must be 1-900 seconds")
    return Plan(path=path, seed=data.get("seed") or 0, faults=faults, queues=dict(queues),
                functions=dict(functions))


def load(path: Path | str) -> Plan:
    path = Path(path).resolve()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanError(f"cannot read the fault plan {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise PlanError(f"{path} is not JSON: {exc}") from None
    return parse(data, path)


def write(path: Path | str, plan: dict) -> None:
    """Replace a plan file in one step (a running offline mode never reads half of it)."""
    path = Path(path)
    parse(plan, path)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(plan, indent=2), encoding="utf-8")
    temporary.replace(path)


# --------------------------------------------------------------------------- applying

def _select(patterns: dict[str, dict], name: str) -> list[dict]:
    return [values for pattern, values in patterns.items() if fnmatch.fnmatchcase(name, pattern)]


def prepare(plan: Plan, deployment: Any) -> list[str]:
    """Apply the plan's settings to the deployment before it is provisioned; answers one
    line per change, for the log."""
    changes = []
    for queue in deployment.queues.values():
        for values in _select(plan.queues, queue.name):
            for key, attribute in QUEUE_SETTINGS.items():
                if key in values:
                    setattr(queue, attribute, int(values[key]))
                    changes.append(f"queue {queue.name}: {key} {values[key]}")
    for function in deployment.functions.values():
        for values in _select(plan.functions, function.name):
            if "timeout" in values:
                function.timeout = int(values["timeout"])
                changes.append(f"function {function.name}: timeout {values['timeout']} s")
            for key, value in (values.get("environment") or {}).items():
                function.environment[key] = value
                changes.append(f"function {function.name}: {key}={value}")
    return changes


def process_env(plan: Plan, base_env: dict[str, str]) -> dict[str, str]:
    """``base_env`` plus what each function process needs to load the hook: the hook is
    appended to ``OFFLINE_PROCESS_HOOKS`` (other hooks, strict mode's, stay)."""
    hooks = json.loads(base_env.get(HOOKS_ENV) or "[]")
    if str(HOOK) not in hooks:
        hooks.append(str(HOOK))
    plan.state.mkdir(parents=True, exist_ok=True)
    return {**base_env, HOOKS_ENV: json.dumps(hooks), PLAN_ENV: str(plan.path),
            STATE_ENV: str(plan.state)}


def reset_state(path: Path | str) -> None:
    """Forget the counters and the log of injected faults."""
    folder = state_folder(Path(path).resolve())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)


def injected(path: Path | str) -> list[dict]:
    """Every fault injected so far under the plan at ``path``, oldest first."""
    log = state_folder(Path(path).resolve()) / INJECTED_LOG
    try:
        lines = log.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
