"""Strict mode (``python -m offline --strict``): least privilege, proven at runtime.

Two checks, because moto's IAM matches actions but not resource ARNs (a statement limited
to ARNs does not match there; see ../shared/NOTES.md):

1. Actions, by moto. Every function gets its own moto IAM role, named after the function,
   allowed the actions of its declared policy on every resource, and its processes run with
   that role's temporary keys instead of the shared ones; moto's IAM enforcement is on. A
   call whose action the function was not granted is refused (AccessDenied, naming it).
2. Resources, by ``offline/strict_hook.py`` inside each function process: every AWS call is
   recorded with the action(s) and resource ARN(s) IAM would check, and each is matched
   against the function's declared policy, resources (IAM wildcards) and the conditions it
   can evaluate included. A call outside the policy is logged loudly and listed at
   ``/_offline/violations``; ``/_offline/strict`` has the figures per function.

The declared policy is the program's own: the inline policy (``aws:iam/rolePolicy``) of the
role each function runs as, read off the evaluation under mocks. Offline mode also checks,
once at start, what Lambda itself does with a function's role: write its logs, and poll its
queue for an event source mapping.

Provisioning runs before enforcement starts. The shared keys ``offline``/``offline`` (offline
mode itself, its queue pollers, the tests' clients) are an administrator identity; only the
functions are held to their policies.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable

from offline import strict_hook
from offline.evaluate import ACCOUNT, Evaluation
from offline.model import Deployment, _plain

HOOK = Path(__file__).resolve().with_name("strict_hook.py")
ADMIN_KEY = "offline"               # the shared keys: offline mode and the tests
_LAMBDA_TRUST = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                   "Action": "sts:AssumeRole"}]})

# moto names a few requests after the API operation where IAM checks other actions: the
# moto identity is also allowed these when the declared policy allows any action beside
# them. The resource check (strict_hook) checks what IAM really checks.
MOTO_ALIASES = {
    "dynamodb:TransactWriteItems": {"dynamodb:PutItem", "dynamodb:UpdateItem",
                                    "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"},
    "dynamodb:TransactGetItems": {"dynamodb:GetItem"},
    "sqs:SendMessageBatch": {"sqs:SendMessage"},
    "sqs:DeleteMessageBatch": {"sqs:DeleteMessage"},
    "sqs:ChangeMessageVisibilityBatch": {"sqs:ChangeMessageVisibility"},
    "s3:HeadBucket": {"s3:ListBucket"},                        # IAM: s3:ListBucket
    "s3:GetObject": {"s3:GetObjectVersion"},                   # moto: HEAD ?versionId
    "s3:GetObjectVersion": {"s3:GetObjectVersionTagging"},     # moto: GET ?tagging&versionId
    "s3:PutObjectTagging": {"s3:PutObjectVersionTagging"},     # moto: PUT ?tagging&versionId
    "s3:DeleteObject": {"s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging"},
}
# What Lambda does with a function's role, outside the function's code.
LOG_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")
QUEUE_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


class StrictError(Exception):
    """Strict mode cannot start as asked (e.g. revoking an action the function lacks)."""


# ---------------------------------------------------------------- declared policies

def declared_policies(evaluation: Evaluation) -> dict[str, dict]:
    """Function name -> the policy document its role holds in the program (its inline role
    policies, merged)."""
    roles = {r.state.get("arn"): r for r in evaluation.of_type("aws:iam/role:Role")}
    by_role: dict[str, list[dict]] = {}
    for attached in evaluation.of_type("aws:iam/rolePolicy:RolePolicy"):
        document = _plain(attached.inputs.get("policy"))
        if isinstance(document, str):
            document = json.loads(document)
        by_role.setdefault(str(_plain(attached.inputs.get("role"))), []).append(document or {})
    policies = {}
    for function in evaluation.of_type("aws:lambda/function:Function"):
        inputs = _plain(function.inputs)
        role = roles.get(inputs.get("role"))
        names = {role.id, role.state.get("name"), role.name} if role is not None else set()
        statements = [s for name in names if name for doc in by_role.get(str(name), [])
                      for s in strict_hook._listed(doc.get("Statement"))]
        policies[inputs.get("name") or function.name] = {"Version": "2012-10-17",
                                                         "Statement": statements}
    return policies


def revoke(policies: dict[str, dict], revocations: Iterable[tuple[str, str]]) -> None:
    """Take ``action`` away from ``function``'s declared policy, before anything is
    provisioned: strict mode then runs as if the program had never granted it."""
    for function, action in revocations:
        if function not in policies:
            raise StrictError(f"--strict-revoke: no function named {function!r}")
        found = False
        kept = []
        for statement in policies[function]["Statement"]:
            actions = strict_hook._listed(statement.get("Action"))
            remaining = [a for a in actions if a.lower() != action.lower()]
            found = found or len(remaining) != len(actions)
            if remaining or "Action" not in statement:
                kept.append({**statement, "Action": remaining} if "Action" in statement else statement)
        if not found:
            raise StrictError(f"--strict-revoke: {function} is not granted {action!r}")
        policies[function]["Statement"] = kept


def moto_actions(policy: dict) -> set[str]:
    """The actions of the function's moto identity: what its policy allows, plus moto's names
    for requests IAM checks under those actions."""
    allowed = {a for s in strict_hook._listed(policy.get("Statement")) if s.get("Effect") == "Allow"
               for a in strict_hook._listed(s.get("Action"))}
    lowered = {a.lower() for a in allowed}
    return allowed | {alias for alias, implied in MOTO_ALIASES.items()
                      if any(a.lower() in lowered for a in implied)}


def _substitute(text: str, substitutions: dict[str, str]) -> str:
    for mock, real in sorted(substitutions.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(mock, real)
    return text


def _role_name(function: str) -> str:
    return function[:64]


# ---------------------------------------------------------------- strict mode

class Strict:
    def __init__(self, deployment: Deployment, policies: dict[str, dict], *,
                 log: Callable[[str], None], region: str = "us-east-1"):
        self.deployment = deployment
        self.policies = policies
        self.log = log
        self.region = region
        self.records = Path(tempfile.mkdtemp(prefix="offline-strict-"))
        self.identities: dict[str, dict[str, str]] = {}
        self.context: dict[str, Any] = {"account": ACCOUNT, "region": region}
        self.platform: list[dict] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------ start-up

    def add_hook(self, base_env: dict[str, str]) -> None:
        """List the hook in ``OFFLINE_PROCESS_HOOKS`` (a JSON list other hooks share)."""
        hooks = json.loads(base_env.get("OFFLINE_PROCESS_HOOKS") or "[]")
        if str(HOOK) not in hooks:
            hooks.append(str(HOOK))
        base_env["OFFLINE_PROCESS_HOOKS"] = json.dumps(hooks)

    def provision(self, session, substitutions: dict[str, str]) -> None:
        """Create each function's moto identity and the administrator identity, then turn on
        moto's IAM enforcement. ``substitutions``: mock values -> what moto created (a KMS
        key's ARN), applied to the declared policies as to the functions' environment."""
        self.policies = {name: json.loads(_substitute(json.dumps(doc), substitutions))
                         for name, doc in self.policies.items()}
        self.context["kmsAliases"] = {alias: substitutions.get(key.arn, key.arn)
                                      for key in self.deployment.keys for alias in key.aliases}
        self.context["sesIdentities"] = list(self.deployment.email_identities)
        iam, sts = session.client("iam"), session.client("sts")
        for name in self.deployment.functions:
            policy = self.policies.setdefault(name, {"Version": "2012-10-17", "Statement": []})
            role = iam.create_role(RoleName=_role_name(name), AssumeRolePolicyDocument=_LAMBDA_TRUST,
                                   Description=f"offline strict mode: runs {name}")["Role"]
            actions = moto_actions(policy)
            if actions:
                iam.put_role_policy(RoleName=role["RoleName"], PolicyName="declared-actions",
                                    PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                                        {"Effect": "Allow", "Action": sorted(actions), "Resource": "*"}]}))
            credentials = sts.assume_role(RoleArn=role["Arn"], RoleSessionName=_role_name(name),
                                          DurationSeconds=43200)["Credentials"]
            self.identities[name] = {"AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
                                     "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
                                     "AWS_SESSION_TOKEN": credentials["SessionToken"]}
        self._administrator(iam, sts)
        self._platform_checks()
        self._enforce()
        self.log(f"strict: {len(self.identities)} functions, each with its own IAM identity; moto's "
                 "IAM enforcement is on; every AWS call is checked against its function's policy "
                 "(/_offline/strict, /_offline/violations); the shared keys offline/offline are "
                 "an administrator")

    def _administrator(self, iam, sts) -> None:
        """The shared keys become an administrator: as a user (no session token: the tests'
        clients) and as an assumed role (with the token offline mode's own clients send)."""
        from moto.iam.models import iam_backends
        from moto.sts.models import sts_backends

        allow_all = json.dumps({"Version": "2012-10-17",
                                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
        iam.create_user(UserName="offline-admin")
        iam.put_user_policy(UserName="offline-admin", PolicyName="admin", PolicyDocument=allow_all)
        created = iam.create_access_key(UserName="offline-admin")["AccessKey"]["AccessKeyId"]
        for key in iam_backends[ACCOUNT]["aws"].get_user("offline-admin").access_keys:
            if key.access_key_id == created:
                key.access_key_id = key.secret_access_key = ADMIN_KEY
        role = iam.create_role(RoleName="offline-admin", AssumeRolePolicyDocument=_LAMBDA_TRUST)["Role"]
        iam.put_role_policy(RoleName="offline-admin", PolicyName="admin", PolicyDocument=allow_all)
        assumed = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="offline",
                                  DurationSeconds=43200)["Credentials"]
        for session in sts_backends[ACCOUNT]["aws"].assumed_roles:
            if session.access_key_id == assumed["AccessKeyId"]:
                session.access_key_id = session.secret_access_key = session.session_token = ADMIN_KEY

    def _enforce(self) -> None:
        from moto import settings
        from moto.core.authorization import ActionAuthenticatorMixin

        _check_presigned_requests()
        settings.INITIAL_NO_AUTH_ACTION_COUNT = ActionAuthenticatorMixin.request_count

    def _platform_checks(self) -> None:
        """What Lambda does with each function's role: write its logs, and poll the queue of
        its event source mapping."""
        needs: list[tuple[str, str, str]] = []
        for name in self.deployment.functions:
            stream = (f"arn:aws:logs:{self.region}:{ACCOUNT}:log-group:/aws/lambda/{name}"
                      ":log-stream:offline")
            needs += [(name, action, stream) for action in LOG_ACTIONS]
        for mapping in self.deployment.mappings:
            queue = self.deployment.queues[mapping.queue]
            needs += [(mapping.function, action, queue.arn) for action in QUEUE_ACTIONS]
        for function, action, resource in needs:
            verdict = strict_hook.decide(self.policies.get(function, {}),
                                         strict_hook.Need(action, resource))
            record = {"kind": "platform", "function": function, "service": action.split(":")[0],
                      "operation": "(lambda)", "violation": not verdict["allowed"],
                      "checks": [{"action": action, "resource": resource, "allowed": verdict["allowed"]}]}
            self.platform.append(record)
            if not verdict["allowed"]:
                self.log(f"STRICT VIOLATION: {function} lacks {action} on {resource}, which "
                         "Lambda needs for it")

    def attach(self, pool) -> None:
        """Give each function process its own identity, policy and the records folder."""
        original = pool.environment

        def environment(function):
            env = original(function)
            env.update(self.identities.get(function.name) or {})
            env.update(OFFLINE_STRICT_POLICY=json.dumps(self.policies.get(function.name) or {}),
                       OFFLINE_STRICT_RECORDS=str(self.records),
                       OFFLINE_STRICT_CONTEXT=json.dumps(self.context))
            return env

        pool.environment = environment

    # ------------------------------------------------------------ what was seen

    def calls(self) -> list[dict]:
        """Every record the function processes wrote, oldest first per process."""
        found = list(self.platform)
        for path in sorted(self.records.glob("*.jsonl")):
            try:
                text = path.read_text()
            except OSError:
                continue
            for line in text.splitlines():
                try:
                    found.append(json.loads(line))
                except ValueError:      # a line being written
                    continue
        return found

    def violations(self) -> list[dict]:
        """Calls outside their function's policy, calls moto refused, and hook failures."""
        out = []
        for record in self.calls():
            kind = record.get("kind")
            if kind in ("call", "platform") and record.get("violation"):
                for check in record["checks"]:
                    if not check["allowed"]:
                        out.append({"kind": "outside-policy" if kind == "call" else "platform",
                                    "function": record["function"], "service": record["service"],
                                    "operation": record["operation"], "action": check["action"],
                                    "resource": check["resource"]})
            elif kind == "denied":
                out.append({"kind": "denied", "function": record["function"],
                            "service": record["service"], "operation": record["operation"],
                            "code": record["code"], "message": record["message"]})
            elif kind == "hookError":
                out.append({"kind": "hookError", "function": record.get("function"),
                            "message": record.get("error")})
        return out

    def report(self) -> dict:
        """Per function: calls checked, checks made, violations, refusals, conditions that
        could not be evaluated, actions used, and the declared actions and grants (action on
        resource) no call needed: candidates for a closer look, not proof of excess."""
        per: dict[str, dict] = {}
        for name in sorted(self.deployment.functions):
            per[name] = {"calls": 0, "checks": 0, "violations": 0, "denied": 0,
                         "operations": Counter(), "actionsUsed": set(), "ignoredConditions": set()}
        for record in self.calls():
            entry = per.get(record.get("function"))
            if entry is None or record.get("kind") == "platform":
                continue
            if record.get("kind") == "denied":
                entry["denied"] += 1
            elif record.get("kind") == "call":
                entry["calls"] += 1
                entry["operations"][f"{record['service']}.{record['operation']}"] += 1
                for check in record["checks"]:
                    entry["checks"] += 1
                    entry["violations"] += 0 if check["allowed"] else 1
                    entry["actionsUsed"].add(check["action"])
                    entry.setdefault("needs", set()).add((check["action"], check["resource"]))
                    entry["ignoredConditions"].update(check.get("ignoredConditions") or [])
        functions = {}
        for name, entry in per.items():
            declared = {a for s in strict_hook._listed(self.policies.get(name, {}).get("Statement"))
                        for a in strict_hook._listed(s.get("Action"))}
            used = {a.lower() for a in entry["actionsUsed"]}
            grants = [(a, r) for s in strict_hook._listed(self.policies.get(name, {}).get("Statement"))
                      if s.get("Effect") == "Allow" for a in strict_hook._listed(s.get("Action"))
                      for r in strict_hook._listed(s.get("Resource")) if a not in LOG_ACTIONS + QUEUE_ACTIONS]
            unused_grants = sorted(f"{a} {r}" for a, r in grants if not any(
                strict_hook.action_matches(a, action) and (resource is None or strict_hook.resource_matches(r, resource))
                for action, resource in entry.get("needs", ())))
            functions[name] = {
                "calls": entry["calls"], "checks": entry["checks"],
                "violations": entry["violations"], "denied": entry["denied"],
                "operations": dict(sorted(entry["operations"].items())),
                "actionsUsed": sorted(entry["actionsUsed"]),
                "declaredNotUsed": sorted(a for a in declared if a.lower() not in used
                                          and a not in LOG_ACTIONS + QUEUE_ACTIONS),
                "grantsNotUsed": unused_grants,
                "ignoredConditions": sorted(entry["ignoredConditions"]),
            }
        platform_violations = sum(1 for r in self.platform if r["violation"])
        return {
            "enforcement": True,
            "totals": {"functions": len(functions),
                       "functionsCalled": sum(1 for f in functions.values() if f["calls"]),
                       "calls": sum(f["calls"] for f in functions.values()),
                       "checks": sum(f["checks"] for f in functions.values()),
                       "violations": sum(f["violations"] for f in functions.values()) + platform_violations,
                       "denied": sum(f["denied"] for f in functions.values()),
                       "platformChecks": len(self.platform)},
            "functions": functions,
        }

    def helpers(self) -> dict[str, Callable[[], Any]]:
        return {"violations": self.violations, "strict": self.report}

    def close(self) -> None:
        try:
            totals = self.report()["totals"]
            self.log(f"strict: {totals['calls']} AWS calls checked in {totals['functionsCalled']} "
                     f"functions; {totals['violations']} outside a policy, {totals['denied']} "
                     "refused by moto")
        except Exception as exc:  # noqa: BLE001 - stopping must not fail on a summary
            self.log(f"strict: no summary ({type(exc).__name__})")
        shutil.rmtree(self.records, ignore_errors=True)


def _check_presigned_requests() -> None:
    """moto's IAM check reads the Authorization header, which a presigned URL does not
    carry (moto answers 500). Check such a request's action against the identity that
    signed it (the credential in its query), as S3 does; moto itself still serves it."""
    from urllib.parse import parse_qs, urlparse

    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    original = ActionAuthenticatorMixin._authenticate_and_authorize_action
    if getattr(original, "_offline_strict", False):
        return

    def authorize(self, iam_request_cls, resource: str = "*") -> None:
        if (ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT
                and "Authorization" not in self.headers):
            query = parse_qs(urlparse(self.uri).query)
            credential = (query.get("X-Amz-Credential") or [""])[0]
            if credential:
                headers = {k: v for k, v in self.headers.items()}
                headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={credential}, "
                                            "SignedHeaders=host, Signature=presigned")
                token = (query.get("X-Amz-Security-Token") or [""])[0]
                if token:
                    headers["X-Amz-Security-Token"] = token
                iam_request_cls(account_id=self.current_account, method=self.method,
                                path=self.raw_path, data=self.data, body=self.raw_body,
                                headers=headers, action=self._get_action(),
                                ).check_action_permitted(resource)
                return
        return original(self, iam_request_cls, resource)

    authorize._offline_strict = True
    ActionAuthenticatorMixin._authenticate_and_authorize_action = authorize
