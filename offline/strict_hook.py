"""Strict mode's half inside one function process (offline mode only; see offline/strict.py).

offline/worker.py loads this file (listed in ``OFFLINE_PROCESS_HOOKS``) and calls
:func:`install` before it imports the handler. From then on every botocore session the
function creates reports each AWS call to :func:`check`, which works out what IAM would
authorise for it - the action(s) and the resource ARN(s) derived from the call's parameters
(a DynamoDB table or index, each table of a transaction or a batch, an S3 bucket or object,
an SQS queue, a KMS key, an SSM parameter, an SES identity) - and checks each against the
function's declared policy: actions, resources (IAM wildcards) and the conditions it can
evaluate (the others are treated as met and reported). Every call is appended to a JSON
lines file that offline mode reads (``/_offline/strict``, ``/_offline/violations``); a call
outside the policy, or one that moto's IAM enforcement refused, is also printed loudly on
stderr, which offline mode's runtime forwards to its log.

Checking never changes what the call does: moto enforces the actions, this file the
resources. Self-contained on purpose: the function's ``sys.path`` holds only its bundle and
the layer, so only the standard library and botocore are used. Production code knows
nothing of it.

Environment (set per function by offline/strict.py):
``OFFLINE_STRICT_POLICY``  the function's declared policy document (JSON)
``OFFLINE_STRICT_RECORDS`` the folder of the call records
``OFFLINE_STRICT_CONTEXT`` ``{"account", "region", "kmsAliases": {alias: key ARN},
                           "sesIdentities": [...]}``
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import threading
import time
from email.utils import parseaddr
from urllib.parse import unquote, urlparse

# Error codes with which AWS (and moto) refuse a caller.
DENIED_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError",
    "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
    "InvalidToken", "ExpiredToken", "ExpiredTokenException", "403",
})

# Operations IAM authorises without a permission.
NO_PERMISSION = frozenset({("sts", "GetCallerIdentity")})


# ------------------------------------------------------------------ what a call needs

class Need:
    """One thing IAM checks for a call: ``action`` on ``resource`` (None: not derivable, the
    action alone is checked), with the condition keys the request carries."""

    __slots__ = ("action", "resource", "keys")

    def __init__(self, action: str, resource: str | None, keys: dict | None = None):
        self.action, self.resource, self.keys = action, resource, keys or {}

    def __repr__(self) -> str:
        return f"Need({self.action!r}, {self.resource!r})"


def needs(service: str, operation: str, params: dict, ctx: dict, prefix: str | None = None) -> list[Need]:
    """What IAM checks for ``operation`` of ``service`` (botocore's service name) called with
    ``params`` (the API parameters); ``prefix`` is the IAM action prefix (signing name)."""
    prefix = prefix or service
    derive = _DERIVE.get(service)
    found = derive(operation, params or {}, ctx, prefix) if derive else None
    if found is None:
        found = [Need(f"{prefix}:{operation}", None)]
    unique, seen = [], set()
    for need in found:
        key = (need.action, need.resource)
        if key not in seen:
            seen.add(key)
            unique.append(need)
    return unique


def _region(ctx: dict) -> str:
    return ctx.get("region") or os.environ.get("AWS_REGION") or "us-east-1"


def _account(ctx: dict) -> str:
    return ctx.get("account") or "123456789012"


def _dynamodb(op: str, p: dict, ctx: dict, prefix: str) -> list[Need]:
    def table(name: str) -> str:
        if str(name).startswith("arn:"):
            return name
        return f"arn:aws:dynamodb:{_region(ctx)}:{_account(ctx)}:table/{name}"

    if op == "TransactWriteItems":   # IAM checks each item's own action, not the transaction
        kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                 "ConditionCheck": "ConditionCheckItem"}
        return [Need(f"dynamodb:{action}", table(item[kind]["TableName"]))
                for item in p.get("TransactItems") or [] for kind, action in kinds.items()
                if kind in item]
    if op == "TransactGetItems":
        return [Need("dynamodb:GetItem", table(item["Get"]["TableName"]))
                for item in p.get("TransactItems") or [] if "Get" in item]
    if op in ("BatchGetItem", "BatchWriteItem"):
        return [Need(f"dynamodb:{op}", table(name)) for name in p.get("RequestItems") or {}]
    if "TableName" in p:
        arn = table(p["TableName"])
        if p.get("IndexName"):
            arn += f"/index/{p['IndexName']}"
        return [Need(f"dynamodb:{op}", arn)]
    return None


def _s3(op: str, p: dict, ctx: dict, prefix: str) -> list[Need]:
    bucket = p.get("Bucket")
    if not bucket:
        return None
    bucket_arn = f"arn:aws:s3:::{bucket}"
    obj = f"{bucket_arn}/{p['Key']}" if "Key" in p else None
    versioned = bool(p.get("VersionId"))
    keys = {"s3:VersionId": p["VersionId"]} if versioned else {}

    def on_object(action: str, version_action: str | None = None) -> Need:
        return Need(f"s3:{version_action if versioned and version_action else action}", obj, keys)

    if op in ("ListObjects", "ListObjectsV2", "ListObjectVersions", "ListMultipartUploads"):
        action = {"ListObjectVersions": "ListBucketVersions",
                  "ListMultipartUploads": "ListBucketMultipartUploads"}.get(op, "ListBucket")
        list_keys = {"s3:prefix": p["Prefix"]} if "Prefix" in p else {}
        if "Delimiter" in p:
            list_keys["s3:delimiter"] = p["Delimiter"]
        return [Need(f"s3:{action}", bucket_arn, list_keys)]
    if op == "HeadBucket":
        return [Need("s3:ListBucket", bucket_arn)]
    if op == "DeleteObjects":
        out = []
        for item in (p.get("Delete") or {}).get("Objects") or []:
            action = "DeleteObjectVersion" if item.get("VersionId") else "DeleteObject"
            out.append(Need(f"s3:{action}", f"{bucket_arn}/{item['Key']}"))
        return out
    if obj is None:
        return [Need(f"s3:{op}", bucket_arn)]
    if op in ("GetObject", "HeadObject"):
        return [on_object("GetObject", "GetObjectVersion")]
    if op in ("PutObject", "CreateMultipartUpload"):
        out = [Need("s3:PutObject", obj)]
        if p.get("Tagging"):                 # tags set with the object need their own permission
            out.append(Need("s3:PutObjectTagging", obj))
        return out
    if op in ("UploadPart", "CompleteMultipartUpload"):
        return [Need("s3:PutObject", obj)]
    if op == "AbortMultipartUpload":
        return [Need("s3:AbortMultipartUpload", obj)]
    if op == "ListParts":
        return [Need("s3:ListMultipartUploadParts", obj)]
    if op == "DeleteObject":
        return [on_object("DeleteObject", "DeleteObjectVersion")]
    if op in ("GetObjectTagging", "PutObjectTagging", "DeleteObjectTagging"):
        return [on_object(op, op.replace("Object", "ObjectVersion", 1))]
    if op in ("CopyObject", "UploadPartCopy"):
        source = _copy_source(p.get("CopySource"))
        out = []
        if source is not None:
            src_bucket, src_key, src_version = source
            src = f"arn:aws:s3:::{src_bucket}/{src_key}"
            src_keys = {"s3:VersionId": src_version} if src_version else {}
            out.append(Need("s3:GetObjectVersion" if src_version else "s3:GetObject", src, src_keys))
            if op == "CopyObject" and (p.get("TaggingDirective") or "COPY") == "COPY":
                # COPY (the default) reads the source's tags and writes them on the copy
                out.append(Need("s3:GetObjectVersionTagging" if src_version else "s3:GetObjectTagging",
                                src, src_keys))
                out.append(Need("s3:PutObjectTagging", obj))
        out.insert(0, Need("s3:PutObject", obj))
        if op == "CopyObject" and p.get("TaggingDirective") == "REPLACE" and p.get("Tagging"):
            out.append(Need("s3:PutObjectTagging", obj))
        return out
    return [Need(f"s3:{op}", obj, keys)]


def _copy_source(value) -> tuple[str, str, str | None] | None:
    if isinstance(value, dict):
        return value.get("Bucket"), value.get("Key"), value.get("VersionId")
    if isinstance(value, str):
        path, _, query = value.lstrip("/").partition("?versionId=")
        bucket, _, key = path.partition("/")
        return bucket, unquote(key), query or None
    return None


def _sqs(op: str, p: dict, ctx: dict, prefix: str) -> list[Need]:
    base = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
            "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}.get(op, op)
    if p.get("QueueUrl"):
        parts = [x for x in urlparse(p["QueueUrl"]).path.split("/") if x]
        if len(parts) >= 2:
            account, name = parts[-2], parts[-1]
            return [Need(f"sqs:{base}", f"arn:aws:sqs:{_region(ctx)}:{account}:{name}")]
    if p.get("QueueName"):
        account = p.get("QueueOwnerAWSAccountId") or _account(ctx)
        return [Need(f"sqs:{base}", f"arn:aws:sqs:{_region(ctx)}:{account}:{p['QueueName']}")]
    return None


def _kms(op: str, p: dict, ctx: dict, prefix: str) -> list[Need]:
    key = p.get("KeyId") or p.get("DestinationKeyId")
    if not key and p.get("CiphertextBlob"):
        key = _moto_ciphertext_key(p["CiphertextBlob"])
    keys: dict = {}
    context = p.get("EncryptionContext")
    if isinstance(context, dict):
        keys = {f"kms:EncryptionContext:{k}": v for k, v in context.items()}
        keys["kms:EncryptionContextKeys"] = sorted(context)
    if not key:
        return [Need(f"kms:{op}", None, keys)]
    return [Need(f"kms:{op}", _kms_key_arn(key, ctx), keys)]


def _kms_key_arn(key: str, ctx: dict) -> str:
    aliases = ctx.get("kmsAliases") or {}
    region, account = _region(ctx), _account(ctx)
    if key.startswith("arn:"):
        if ":alias/" in key:
            return aliases.get("alias/" + key.split(":alias/", 1)[1], key)
        return key
    if key.startswith("alias/"):
        return aliases.get(key, f"arn:aws:kms:{region}:{account}:{key}")
    return f"arn:aws:kms:{region}:{account}:key/{key}"


def _moto_ciphertext_key(blob) -> str | None:
    """moto's ciphertext starts with the 36-character key id (a stand-in for KMS's own
    format, which also names the key)."""
    try:
        raw = blob if isinstance(blob, (bytes, bytearray)) else base64.b64decode(blob)
        text = bytes(raw[:36]).decode("ascii")
    except Exception:   # noqa: BLE001 - not moto's format: the key stays unknown
        return None
    return text if re.fullmatch(r"[0-9a-f-]{36}", text) else None


def _ssm(op: str, p: dict, ctx: dict, prefix: str) -> list[Need]:
    def arn(name: str) -> str:
        if name.startswith("arn:"):
            return name
        return f"arn:aws:ssm:{_region(ctx)}:{_account(ctx)}:parameter{'' if name.startswith('/') else '/'}{name}"

    if "Name" in p:
        return [Need(f"ssm:{op}", arn(p["Name"]))]
    if "Names" in p:
        return [Need(f"ssm:{op}", arn(n)) for n in p["Names"]]
    if "Path" in p:
        return [Need(f"ssm:{op}", arn(p["Path"].rstrip("/") or "/"))]
    return None


def _ses(op: str, p: dict, ctx: dict, prefix: str) -> list[Need]:
    sender = p.get("FromEmailAddress") or p.get("Source")
    if not sender:
        return None
    address = parseaddr(sender)[1] or sender
    identities = set(ctx.get("sesIdentities") or [])
    domain = address.rpartition("@")[2]
    identity = address if address in identities or domain not in identities else domain
    base = f"arn:aws:ses:{_region(ctx)}:{_account(ctx)}"
    out = [Need(f"ses:{op}", f"{base}:identity/{identity}", {"ses:FromAddress": address})]
    if p.get("ConfigurationSetName"):
        out.append(Need(f"ses:{op}", f"{base}:configuration-set/{p['ConfigurationSetName']}",
                        {"ses:FromAddress": address}))
    return out


_DERIVE = {"dynamodb": _dynamodb, "s3": _s3, "sqs": _sqs, "kms": _kms, "ssm": _ssm,
           "sesv2": _ses, "ses": _ses}


# ------------------------------------------------------------------ IAM evaluation

def _listed(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def action_matches(pattern: str, action: str) -> bool:
    return pattern == "*" or _glob(pattern, action, ignore_case=True)


def resource_matches(pattern: str, arn: str) -> bool:
    """IAM's ARN matching: ``*`` and ``?`` within each of the first five segments, and
    anywhere in the resource part (``table/x/index/*``, ``bucket/data/*``)."""
    if pattern == "*":
        return True
    want, have = pattern.split(":", 5), arn.split(":", 5)
    if len(want) != 6 or len(have) != 6:
        return _glob(pattern, arn)
    return all(_glob(w, h) for w, h in zip(want, have))


# Condition keys the hook derives from a call (a key listed here but absent from the call
# is evaluated as absent); any other key cannot be evaluated here.
KNOWN_KEY_PREFIXES = ("s3:prefix", "s3:delimiter", "s3:versionid", "kms:encryptioncontext:",
                      "kms:encryptioncontextkeys", "ses:fromaddress", "aws:securetransport",
                      "aws:requestedregion")

_STRING_TESTS = {
    "StringEquals": lambda want, have: want == have,
    "StringEqualsIgnoreCase": lambda want, have: want.lower() == have.lower(),
    "StringLike": lambda want, have: _glob(want, have),
    "ArnEquals": lambda want, have: want == have,
    "ArnLike": resource_matches,
    "Bool": lambda want, have: want.lower() == have.lower(),
}
_NEGATED = {"StringNotEquals": "StringEquals", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
            "StringNotLike": "StringLike", "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike"}


def conditions_met(condition: dict | None, keys: dict) -> tuple[bool, list[str]]:
    """(met, ignored): whether a statement's Condition block holds for a call carrying
    condition ``keys``; ``ignored`` lists the "Operator key" pairs that cannot be evaluated
    here and were treated as met."""
    ignored: list[str] = []
    lowered = {k.lower(): v for k, v in (keys or {}).items()}
    for operator, block in (condition or {}).items():
        name = operator
        if_exists = name.endswith("IfExists")
        if if_exists:
            name = name[: -len("IfExists")]
        qualifier = None
        if ":" in name:
            qualifier, name = name.split(":", 1)
        for key, expected in (block or {}).items():
            known = key.lower().startswith(KNOWN_KEY_PREFIXES)
            if not known or (name not in _STRING_TESTS and name not in _NEGATED and name != "Null"):
                ignored.append(f"{operator} {key}")
                continue
            present = key.lower() in lowered
            if name == "Null":
                if present == (str(_listed(expected)[0]).lower() == "true"):
                    return False, ignored
                continue
            if not present:
                if if_exists or qualifier == "ForAllValues" or name in _NEGATED:
                    continue
                return False, ignored
            values = [str(v).lower() if isinstance(v, bool) else str(v)
                      for v in _listed(lowered[key.lower()])]
            wanted = [str(v).lower() if isinstance(v, bool) else str(v) for v in _listed(expected)]
            test = _STRING_TESTS[_NEGATED.get(name, name)]
            hits = [any(test(w, v) for w in wanted) for v in values]
            if name in _NEGATED:
                hits = [not h for h in hits]
            held = all(hits) if qualifier == "ForAllValues" else any(hits)
            if not held:
                return False, ignored
    return True, ignored


def decide(policy: dict, need: Need) -> dict:
    """IAM's verdict for one need under ``policy``: an explicit Deny wins, else any Allow."""
    allowed_by, ignored_by = None, []
    for index, statement in enumerate(_listed((policy or {}).get("Statement"))):
        if "Action" in statement:
            if not any(action_matches(a, need.action) for a in _listed(statement["Action"])):
                continue
        elif any(action_matches(a, need.action) for a in _listed(statement.get("NotAction"))):
            continue
        if need.resource is not None:
            if "Resource" in statement:
                if not any(resource_matches(r, need.resource) for r in _listed(statement["Resource"])):
                    continue
            elif any(resource_matches(r, need.resource) for r in _listed(statement.get("NotResource"))):
                continue
        met, ignored = conditions_met(statement.get("Condition"), need.keys)
        if not met:
            continue
        if statement.get("Effect") == "Deny":
            return {"allowed": False, "statement": index, "deniedExplicitly": True,
                    "ignoredConditions": ignored}
        if allowed_by is None or (ignored_by and not ignored):
            allowed_by, ignored_by = index, ignored
    return {"allowed": allowed_by is not None, "statement": allowed_by,
            "ignoredConditions": ignored_by}


def check(policy: dict, service: str, operation: str, params: dict, ctx: dict,
          prefix: str | None = None) -> dict:
    """The record of one call: what it needed and whether the policy allows each."""
    if (service, operation) in NO_PERMISSION:
        found = []
    else:
        found = needs(service, operation, params, ctx, prefix)
    checks = []
    for need in found:
        # keys every request carries: AWS's endpoints are TLS-only
        need.keys = {"aws:SecureTransport": "true", "aws:RequestedRegion": _region(ctx), **need.keys}
        verdict = decide(policy, need)
        item = {"action": need.action, "resource": need.resource, "allowed": verdict["allowed"]}
        if verdict["ignoredConditions"]:
            item["ignoredConditions"] = verdict["ignoredConditions"]
        if need.resource is None:
            item["note"] = "resource not derived from the parameters: the action alone was checked"
        checks.append(item)
    return {"service": service, "operation": operation, "checks": checks,
            "violation": any(not c["allowed"] for c in checks)}


# ------------------------------------------------------------------ inside the function process

_state: dict = {}


def _write(record: dict) -> None:
    line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
    with _state["lock"]:
        os.write(_state["fd"], line)


def _loud(text: str) -> None:
    print(f"STRICT {text}", file=sys.stderr, flush=True)


def _before_call(params=None, model=None, context=None, **_):
    try:
        service_model = model.service_model
        service = service_model.service_name
        prefix = service_model.signing_name or service_model.endpoint_prefix
        record = check(_state["policy"], service, model.name, params or {}, _state["ctx"], prefix)
        record.update(kind="call", function=_state["function"], pid=os.getpid(), time=time.time())
        if context and context.get("is_presign_request"):
            record["presigned"] = True
        _write(record)
        for item in record["checks"]:
            if not item["allowed"]:
                _loud(f"VIOLATION: {_state['function']} called {item['action']} on "
                      f"{item['resource'] or '(resource unknown)'} ({service}.{model.name}): "
                      "not allowed by its declared policy")
    except Exception as exc:  # noqa: BLE001 - checking must never break the call
        _write({"kind": "hookError", "function": _state.get("function"), "pid": os.getpid(),
                "time": time.time(), "error": f"{type(exc).__name__}: {exc}"[:300]})
        _loud(f"HOOK ERROR in {_state.get('function')}: {type(exc).__name__}: {exc}")


def _after_call(http_response=None, parsed=None, model=None, **_):
    try:
        error = (parsed or {}).get("Error") or {}
        code = str(error.get("Code") or "")
        status = getattr(http_response, "status_code", 0)
        if code not in DENIED_CODES and status != 403:
            return
        service = model.service_model.service_name
        message = str(error.get("Message") or "")
        if message.lstrip().startswith("<"):
            # moto answers some JSON-protocol services with its XML error body
            found = dict(re.findall(r"<(Code|Message)>([^<]*)</", message))
            code, message = found.get("Code", code), found.get("Message", message)
        message = message[:300]
        _write({"kind": "denied", "function": _state["function"], "pid": os.getpid(),
                "time": time.time(), "service": service, "operation": model.name,
                "code": code or str(status), "message": message})
        _loud(f"ACCESS DENIED: {_state['function']} {service}.{model.name}: {code or status} "
              f"{message}")
    except Exception as exc:  # noqa: BLE001
        _loud(f"HOOK ERROR in {_state.get('function')}: {type(exc).__name__}: {exc}")


def install() -> None:
    """Register the checks on every botocore session this process creates from now on."""
    if _state.get("installed"):
        return
    function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "unknown")
    folder = os.environ["OFFLINE_STRICT_RECORDS"]
    _state.update(
        function=function, lock=threading.Lock(),
        policy=json.loads(os.environ.get("OFFLINE_STRICT_POLICY") or "{}"),
        ctx=json.loads(os.environ.get("OFFLINE_STRICT_CONTEXT") or "{}"),
        fd=os.open(os.path.join(folder, f"{function}.{os.getpid()}.jsonl"),
                   os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))

    import botocore.session

    original = botocore.session.Session.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.register("before-parameter-build", _before_call, unique_id="offline-strict-before")
        self.register("after-call", _after_call, unique_id="offline-strict-after")

    botocore.session.Session.__init__ = init
    _state["installed"] = True
