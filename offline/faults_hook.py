"""Fault injection inside one function process of offline mode (offline tests only).

Loaded by ``offline/worker.py`` (``OFFLINE_PROCESS_HOOKS``) before the function's handler is
imported, when offline mode runs with ``--faults PLAN.json`` (see ``offline/faults.py`` for
the plan). Self-contained: the standard library and botocore, nothing of the repository,
since the process sees only the function's bundle and layer.

``install()`` makes every botocore client the process creates carry two handlers: one on
``before-parameter-build`` keeps the call's own parameters, one on ``before-call`` asks the
plan whether this call (function, service, operation, parameters) is to fail and, if so,
raises the real botocore error the service would (``client.exceptions.from_code``: a
``ClientError`` with the service's code, message and HTTP status), or, for a ``kill`` rule,
ends the process at once with ``os._exit`` - a Lambda environment dying mid-invocation.
The fault happens before the request is sent, so the SDK's own retries do not absorb it:
every injected fault is one the handler sees (as when throttling outlasts those retries).

The plan file is re-read whenever it changes, so a test can switch faults while offline
mode runs. Counters ("every Nth", "at most N times") are shared by every process of the
run through small files under ``OFFLINE_FAULT_STATE`` (one per rule, under ``flock``), and
every injected fault is appended to ``<state>/injected.jsonl`` and logged on stderr.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import sys
import threading
import time
from typing import Any

PLAN_ENV = "OFFLINE_FAULT_PLAN"        # the plan file
STATE_ENV = "OFFLINE_FAULT_STATE"      # a folder for shared counters and the injection log
INJECTED_LOG = "injected.jsonl"
KILL = "kill"
KILL_EXIT_CODE = 137                   # what a SIGKILLed process reports

# Each error as the service answers it: HTTP status and message.
ERRORS: dict[str, tuple[int, str]] = {
    # DynamoDB
    "ProvisionedThroughputExceededException": (
        400, "The level of configured provisioned throughput for the table was exceeded. "
             "Consider increasing your provisioning level with the UpdateTable API."),
    "ThrottlingException": (400, "Rate of requests exceeds the allowed throughput."),
    "RequestLimitExceeded": (400, "Throughput exceeds the current throughput limit for your "
                                  "account. Please contact AWS Support at "
                                  "https://aws.amazon.com/support request a limit increase"),
    "InternalServerError": (500, "Internal server error"),
    # S3
    "SlowDown": (503, "Please reduce your request rate."),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "ServiceUnavailable": (503, "Service is unable to handle request."),
    # SQS
    "RequestThrottled": (400, "Request is throttled."),
    # KMS / SSM / SES
    "KMSInternalException": (500, "An internal error occurred."),
    "ThrottledException": (400, "Rate exceeded"),
    "Throttling": (400, "Rate exceeded"),
}

_FUNCTION = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
_PARAMS_KEY = "offline_fault_params"
_lock = threading.Lock()
_plan: dict[str, Any] = {"stamp": None, "seed": 0, "faults": []}
_installed = False


# --------------------------------------------------------------------------- the plan

def _load() -> dict[str, Any]:
    """The plan as last read; re-read when the file changed (or appeared/disappeared)."""
    path = os.environ.get(PLAN_ENV)
    try:
        info = os.stat(path) if path else None
    except OSError:
        info = None
    stamp = (info.st_mtime_ns, info.st_size, info.st_ino) if info else None
    with _lock:
        if stamp == _plan["stamp"]:
            return _plan
        faults: list = []
        seed = 0
        if info is not None:
            try:
                with open(path, encoding="utf-8") as handle:
                    data = json.load(handle)
                faults = [rule for rule in data.get("faults") or [] if isinstance(rule, dict)]
                seed = data.get("seed") or 0
            except (OSError, ValueError) as exc:   # a half-written file: keep the last plan
                print(f"[offline-faults] plan unreadable ({exc}); keeping the previous one",
                      file=sys.stderr, flush=True)
                return _plan
        _plan.update(stamp=stamp, seed=seed, faults=faults)
        return _plan


def _names(value: Any) -> list[str]:
    if value is None:
        return ["*"]
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _matches(pattern: Any, name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in _names(pattern))


def rule_key(rule: dict) -> str:
    """A rule's counters belong to its exact text: editing a rule starts it afresh."""
    digest = hashlib.sha256(json.dumps(rule, sort_keys=True).encode()).hexdigest()[:16]
    label = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(rule.get("id", "rule")))
    return f"{label[:40]}-{digest}"


def selects(rule: dict, function: str, service: str, operation: str, params: Any) -> bool:
    """Whether ``rule`` is about this call (before counting: every/after/times come later)."""
    if rule.get("enabled") is False:
        return False
    if not (_matches(rule.get("function"), function) and _matches(rule.get("service"), service)
            and _matches(rule.get("operation"), operation)):
        return False
    wanted = rule.get("match")
    if wanted:
        text = json.dumps(params, default=str, sort_keys=True)
        if not all(piece in text for piece in _names(wanted)):
            return False
    return True


def _chance(seed: Any, key: str, n: int) -> float:
    """A number in [0, 1) fixed by the plan's seed, the rule and the call's number."""
    digest = hashlib.sha256(f"{seed}:{key}:{n}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def decide(rule: dict, seed: Any, n: int, injected: int) -> bool:
    """Whether the ``n``-th selected call (1-based) fails, ``injected`` faults in already."""
    times = rule.get("times")
    if times is not None and injected >= int(times):
        return False
    after = int(rule.get("after") or 0)
    if n <= after:
        return False
    position = n - after
    every = rule.get("every")
    if every is not None and position % int(every) != 0:
        return False
    probability = rule.get("probability")
    if probability is not None and _chance(seed, rule_key(rule), n) >= float(probability):
        return False
    return True


def _count(rule: dict, seed: Any) -> bool:
    """Count one selected call in the rule's shared counters; True when it is to fail."""
    folder = os.environ.get(STATE_ENV)
    if not folder:     # no shared state: count in this process only
        with _lock:
            counters = rule.setdefault("_counters", {"calls": 0, "injected": 0})
            counters["calls"] += 1
            fail = decide(rule, seed, counters["calls"], counters["injected"])
            counters["injected"] += int(fail)
            return fail
    import fcntl

    path = os.path.join(folder, rule_key(rule) + ".json")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = b""
        while chunk := os.read(fd, 4096):
            raw += chunk
        try:
            counters = json.loads(raw) if raw else {}
        except ValueError:
            counters = {}
        calls = int(counters.get("calls", 0)) + 1
        injected = int(counters.get("injected", 0))
        fail = decide(rule, seed, calls, injected)
        data = json.dumps({"calls": calls, "injected": injected + int(fail)}).encode()
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, data)
        return fail
    finally:
        os.close(fd)          # releases the lock


def _record(rule: dict, service: str, operation: str, what: str) -> None:
    entry = {"at": round(time.time(), 3), "rule": rule.get("id"), "function": _FUNCTION,
             "service": service, "operation": operation, "fault": what, "pid": os.getpid()}
    line = json.dumps(entry, separators=(",", ":"))
    print(f"[offline-faults] injected {what} into {service}.{operation} "
          f"(rule {rule.get('id')!r}, pid {os.getpid()})", file=sys.stderr, flush=True)
    folder = os.environ.get(STATE_ENV)
    if folder:
        fd = os.open(os.path.join(folder, INJECTED_LOG), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


def fault_for(service: str, operation: str, params: Any) -> dict | None:
    """The first rule that makes this call fail (counting it), or None."""
    plan = _load()
    for rule in plan["faults"]:
        if selects(rule, _FUNCTION, service, operation, params) and _count(rule, plan["seed"]):
            return rule
    return None


# --------------------------------------------------------------------------- botocore

def error_response(code: str, operation: str, status: int | None = None,
                   message: str | None = None) -> dict:
    known_status, known_message = ERRORS.get(code, (500, code))
    status = int(status or known_status)
    return {"Error": {"Code": code, "Message": message or known_message},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {},
                                 "RequestId": "offline-fault", "RetryAttempts": 0}}


def _keep_params(params: Any = None, context: dict | None = None, **_: Any) -> None:
    if context is not None:
        context[_PARAMS_KEY] = params


def _handler_for(client: Any):
    def before_call(model: Any = None, context: dict | None = None, **_: Any) -> None:
        service = model.service_model.service_name
        operation = model.name
        rule = fault_for(service, operation, (context or {}).get(_PARAMS_KEY))
        if rule is None:
            return None
        if rule.get("action") == KILL:
            _record(rule, service, operation, KILL)
            sys.stderr.flush()
            os._exit(int(rule.get("exitCode") or KILL_EXIT_CODE))
        code = rule.get("error") or "InternalError"
        _record(rule, service, operation, code)
        response = error_response(code, operation, rule.get("status"), rule.get("message"))
        raise client.exceptions.from_code(code)(response, operation)

    return before_call


def instrument(client: Any) -> Any:
    """Give one botocore client the fault handlers (idempotent)."""
    events = client.meta.events
    events.register_first("before-parameter-build", _keep_params,
                          unique_id="offline-faults-params")
    events.register_first("before-call", _handler_for(client), unique_id="offline-faults-call")
    return client


def install() -> None:
    """Instrument every botocore client this process creates from now on."""
    global _installed
    if _installed or not os.environ.get(PLAN_ENV):
        return
    import botocore.session

    original = botocore.session.Session.create_client

    def create_client(self, *args, **kwargs):
        return instrument(original(self, *args, **kwargs))

    create_client.__wrapped__ = original
    botocore.session.Session.create_client = create_client
    _installed = True
