"""The rules themselves, as plain functions over plain values.

Nothing here imports Pulumi or pulumi-policy, so the rules can be read (and compared with
the program's own build-time checks in ``components/functions.py``) from any virtualenv.
The policy modules beside this one apply them to what the Pulumi engine hands a policy
pack.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Iterator, Mapping

# Actions for which AWS offers no resource narrower than "*": the one documented exception
# to "no wildcard resources". Keep in step with components/functions.py (a test compares).
ACTIONS_WITHOUT_RESOURCES = frozenset({
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "cloudwatch:PutMetricData",
    "ses:GetSendQuota", "ses:GetAccount",
})

# Environment names that look like secrets, unless they name where the secret lives
# (JWT_SECRET_PARAM holds an SSM parameter's name). Same rule as components/functions.py.
SECRET_LIKE = re.compile(r"SECRET|PASSWORD|PRIVATE|TOKEN|CREDENTIAL")
NAME_LIKE = ("_PARAM", "_PARAMETER", "_NAME", "_ARN", "_URL", "_PREFIX", "_TABLE", "_ID")

# Values that are credentials whatever their variable is called.
SECRET_VALUES = (
    ("a Stripe secret or restricted key", re.compile(r"^(sk|rk)_(live|test)_[0-9A-Za-z]{8,}")),
    ("a Stripe webhook signing secret", re.compile(r"^whsec_[0-9A-Za-z]{8,}")),
    ("an AWS access key id", re.compile(r"^(AKIA|ASIA)[0-9A-Z]{16}$")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("a JSON Web Token", re.compile(r"^eyJ[0-9A-Za-z_-]{8,}\.eyJ[0-9A-Za-z_-]{8,}\.")),
)

SSE_ALGORITHMS = frozenset({"AES256", "aws:kms", "aws:kms:dsse"})
PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                       "restrictPublicBuckets")

# Stages whose tables must have point-in-time recovery (policy config can replace it).
DEFAULT_RECOVERY_STAGES = ("main",)
APP = "listbackup"


# ---------------------------------------------------------------- names and stages

def stack_of(urn: str) -> str:
    """``urn:pulumi:<stack>::<project>::<type>::<name>`` -> ``<stack>``."""
    head = urn.split("::", 1)[0]
    return head.split(":", 2)[2] if head.count(":") >= 2 else ""


def table_stage(urn: str, table_name: Any, stages: Iterable[str]) -> str | None:
    """The stage among ``stages`` a table belongs to: by its physical name
    (``listbackup-<stage>-...``, DESIGN section 2) or, for a table without one, by the
    stack in its URN."""
    for stage in stages:
        if isinstance(table_name, str) and table_name.startswith(f"{APP}-{stage}-"):
            return stage
    stack = stack_of(urn)
    return stack if stack in set(stages) else None


# ---------------------------------------------------------------- environments

def secret_environment(variables: Mapping[str, Any]) -> list[str]:
    """Why each variable of ``variables`` looks like a secret value (empty when none)."""
    found = []
    for key in variables:
        if SECRET_LIKE.search(key) and not key.endswith(NAME_LIKE):
            found.append(f"{key} (its name says it holds a secret: pass the name of its SSM "
                         f"parameter instead, e.g. {key}_PARAM)")
            continue
        value = variables[key]
        if isinstance(value, str):
            for what, pattern in SECRET_VALUES:
                if pattern.search(value):
                    found.append(f"{key} (its value is {what})")
                    break
    return found


# ---------------------------------------------------------------- policy documents

def parse_document(document: Any) -> dict | None:
    """A policy document as a dict, from its JSON text or the dict itself."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return None
    return document if isinstance(document, Mapping) else None


def statements(document: Any) -> Iterator[Mapping]:
    doc = parse_document(document)
    if doc is None:
        return
    body = doc.get("Statement", [])
    for st in ([body] if isinstance(body, Mapping) else body):
        if isinstance(st, Mapping):
            yield st


def as_list(value: Any) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, (str, Mapping)) else list(value)


def is_wildcard_resource(resource: Any) -> bool:
    """``*``, or an ARN whose resource part is every resource (``arn:aws:s3:::*``) or
    every resource of a type (``...:table/*``, ``...:parameter/*``). A wildcard below a
    named resource (``table/x/index/*``, ``bucket/data/*``, ``log-group:x:*``) is scoped."""
    if not isinstance(resource, str):
        return False
    if resource == "*":
        return True
    parts = resource.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return False
    part = parts[5]
    return part.startswith("*") or re.fullmatch(r"[A-Za-z0-9-]+[/:]\*", part) is not None


def wildcard_actions(document: Any) -> list[str]:
    """The Allow statements' wildcard actions (``s3:*``, ``*``, ``dynamodb:Get*``) and
    ``NotAction`` grants, which allow everything but a list."""
    found = []
    for st in statements(document):
        if st.get("Effect") != "Allow":
            continue
        if "NotAction" in st:
            found.append(f"NotAction {as_list(st['NotAction'])}")
        found += [a for a in as_list(st.get("Action")) if isinstance(a, str) and "*" in a]
    return found


def wildcard_resources(document: Any) -> list[str]:
    """The Allow statements that reach every resource (``*``, a whole service or type, or
    ``NotResource``), except actions AWS offers no narrower resource for."""
    found = []
    for st in statements(document):
        if st.get("Effect") != "Allow":
            continue
        actions = [a for a in as_list(st.get("Action")) if isinstance(a, str)]
        if "NotResource" in st:
            found.append(f"NotResource {as_list(st['NotResource'])} for {sorted(actions)}")
        wild = [r for r in as_list(st.get("Resource")) if is_wildcard_resource(r)]
        if not wild:
            continue
        if wild == ["*"] and actions and set(actions) <= ACTIONS_WITHOUT_RESOURCES:
            continue
        found.append(f"{', '.join(wild)} for {sorted(actions)}")
    return found


def denies_insecure_transport(document: Any, bucket: str | None) -> bool:
    """Whether the bucket policy denies every S3 request that does not use TLS, on the
    bucket and on its objects."""
    for st in statements(document):
        if st.get("Effect") != "Deny" or not _everyone(st.get("Principal")):
            continue
        if not {"s3:*", "*"} & set(as_list(st.get("Action"))):
            continue
        if not _insecure_transport_condition(st.get("Condition")):
            continue
        resources = [r for r in as_list(st.get("Resource")) if isinstance(r, str)]
        if "*" in resources or bucket is None:
            return True
        if (any(r.endswith(f":::{bucket}") for r in resources)
                and any(r.endswith(f":::{bucket}/*") for r in resources)):
            return True
    return False


def _everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    return isinstance(principal, Mapping) and "*" in as_list(principal.get("AWS"))


def _insecure_transport_condition(condition: Any) -> bool:
    if not isinstance(condition, Mapping):
        return False
    for operator in ("Bool", "BoolIfExists"):
        test = condition.get(operator)
        if isinstance(test, Mapping) and "aws:SecureTransport" in test:
            values = [str(v).lower() for v in as_list(test["aws:SecureTransport"])]
            if values == ["false"]:
                return True
    return False


def dead_letter_target(redrive_policy: Any) -> str | None:
    """The dead-letter queue's ARN named by a queue's redrive policy."""
    doc = parse_document(redrive_policy)
    target = doc.get("deadLetterTargetArn") if doc else None
    return target if isinstance(target, str) and target else None
