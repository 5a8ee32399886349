"""Evaluate the Pulumi program under Pulumi's mocks and record what it declares.

The Pulumi CLI is not needed: the program's ``__main__.py`` runs in this process with
``pulumi.runtime.set_mocks``. The stack's config is read from ``Pulumi.yaml`` (defaults)
and ``Pulumi.<stack>.yaml`` as the CLI would, with ``secure:`` values replaced by test
values. Infra tests, the benchmark and offline mode all evaluate through here.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import importlib.util
import json
import marshal
import os
import runpy
import secrets as _secrets
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"
PROGRAM_PACKAGES = ("components", "handlers")


@dataclass
class Resource:
    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    parent: str = ""
    protect: bool = False
    retain_on_delete: bool = False
    dependencies: tuple[str, ...] = ()
    id: str = ""
    state: dict[str, Any] = field(default_factory=dict)
    import_id: str = ""              # the import_ option: adopted, not created


@dataclass
class Evaluation:
    stack: str
    preview: bool
    resources: list[Resource]
    outputs: dict[str, Any]
    warnings: list[str]

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, **inputs: Any) -> Resource:
        found = [r for r in self.of_type(type_)
                 if all(r.inputs.get(k) == v for k, v in inputs.items())]
        if len(found) != 1:
            raise LookupError(f"{len(found)} {type_} match {inputs}")
        return found[0]

    def by_urn(self, urn: str) -> Resource:
        for r in self.resources:
            if r.urn == urn:
                return r
        raise LookupError(urn)

    def children(self, parent: Resource) -> list[Resource]:
        return [r for r in self.resources if r.parent == parent.urn]


# ---------------------------------------------------------------- stack config

# libyaml's parser when PyYAML has it (ten times faster on Pulumi.yaml's typed config)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_YAML_LOADER)


def load_config(stack: str, root: Path = ROOT, overrides: dict[str, Any] | None = None
                ) -> tuple[dict[str, str], list[str]]:
    """The stack's effective config as the CLI passes it: fully-qualified keys, string
    values (JSON for arrays and objects), and the list of secret keys."""
    return _stack_config(_read_yaml(root / "Pulumi.yaml"), stack, root, overrides)


def _stack_config(project: dict[str, Any], stack: str, root: Path,
                  overrides: dict[str, Any] | None) -> tuple[dict[str, str], list[str]]:
    name = project["name"]
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, decl in (project.get("config") or {}).items():
        full = key if ":" in key else f"{name}:{key}"
        if isinstance(decl, dict) and "default" in decl:
            config[full] = _as_config_string(decl["default"])
        if isinstance(decl, dict) and decl.get("secret"):
            secret_keys.append(full)
    declared_secret = set(secret_keys)
    stack_file = root / f"Pulumi.{stack}.yaml"
    values = (_read_yaml(stack_file) or {}).get("config") or {}
    for key, value in {**values, **(overrides or {})}.items():
        full = key if ":" in key else f"{name}:{key}"
        if isinstance(value, dict) and "secure" in value:
            value = "test-" + hashlib.sha256(full.encode()).hexdigest()[:24]
            secret_keys.append(full)
        config[full] = _as_config_string(value)
    return config, sorted(set(secret_keys) | declared_secret)


def _as_config_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


# ---------------------------------------------------------------- mocks

def _mock_state(typ: str, name: str, inputs: dict[str, Any], region: str) -> tuple[str, dict]:
    """Plausible provider outputs for a new resource: ids, ARNs and URLs AWS would compute."""
    state = dict(inputs)
    physical = inputs.get("name") or inputs.get("bucket") or inputs.get("layerName") or name
    token = typ.split(":")[1].split("/")[0] if typ.count(":") >= 2 else "x"
    arn = f"arn:aws:{token}:{region}:{ACCOUNT}:{physical}"
    rid = f"{physical}-id"
    if typ == "aws:s3/bucket:Bucket":
        state.setdefault("bucket", physical)
        arn, rid = f"arn:aws:s3:::{physical}", physical
    elif typ == "aws:sqs/queue:Queue":
        rid = f"https://sqs.{region}.amazonaws.com/{ACCOUNT}/{physical}"
        state["url"] = rid
        arn = f"arn:aws:sqs:{region}:{ACCOUNT}:{physical}"
    elif typ == "aws:dynamodb/table:Table":
        arn, rid = f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{physical}", physical
    elif typ == "aws:kms/key:Key":
        rid = hashlib.md5(name.encode()).hexdigest()
        arn = f"arn:aws:kms:{region}:{ACCOUNT}:key/{rid}"
        state["keyId"] = rid
    elif typ == "aws:kms/alias:Alias":
        arn = f"arn:aws:kms:{region}:{ACCOUNT}:{physical}"
    elif typ == "aws:iam/role:Role":
        arn = f"arn:aws:iam::{ACCOUNT}:role/{physical}"
        state.setdefault("name", physical)
    elif typ == "aws:cloudwatch/logGroup:LogGroup":
        arn = f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{physical}"
    elif typ == "aws:ssm/parameter:Parameter":
        arn = f"arn:aws:ssm:{region}:{ACCOUNT}:parameter{physical}"
    elif typ == "aws:lambda/function:Function":
        arn = f"arn:aws:lambda:{region}:{ACCOUNT}:function:{physical}"
        state["invokeArn"] = (f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/"
                              f"functions/{arn}/invocations")
        state["version"] = "1" if inputs.get("publish") else "$LATEST"
    elif typ == "aws:lambda/alias:Alias":
        function_arn = f"arn:aws:lambda:{region}:{ACCOUNT}:function:{inputs.get('functionName')}"
        arn = f"{function_arn}:{physical}"
        state["invokeArn"] = (f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/"
                              f"functions/{arn}/invocations")
    elif typ == "aws:apigatewayv2/domainName:DomainName":
        rid = physical = inputs.get("domainName", name)
        state["domainNameConfiguration"] = {
            **(inputs.get("domainNameConfiguration") or {}),
            "targetDomainName": f"d-{hashlib.md5(rid.encode()).hexdigest()[:10]}"
                                f".execute-api.{region}.amazonaws.com",
            "hostedZoneId": "Z1UJRXOUMOOFQ8"}
    elif typ == "aws:acm/certificate:Certificate":
        rid = hashlib.md5(name.encode()).hexdigest()
        arn = f"arn:aws:acm:{region}:{ACCOUNT}:certificate/{rid}"
        state["domainValidationOptions"] = [{
            "domainName": inputs.get("domainName"),
            "resourceRecordName": f"_{rid[:8]}.{inputs.get('domainName')}.",
            "resourceRecordType": "CNAME",
            "resourceRecordValue": f"_{rid[8:16]}.acm-validations.aws."}]
    elif typ == "aws:sesv2/emailIdentity:EmailIdentity":
        rid = inputs.get("emailIdentity", name)
        arn = f"arn:aws:ses:{region}:{ACCOUNT}:identity/{rid}"
        if "@" not in rid:      # a domain: Easy DKIM's three tokens
            state["dkimSigningAttributes"] = {
                **(inputs.get("dkimSigningAttributes") or {}),
                "tokens": [hashlib.md5(f"{rid}{n}".encode()).hexdigest() for n in range(3)]}
    elif typ == "aws:route53/record:Record":
        state["fqdn"] = str(inputs.get("name", name)).rstrip(".")
    elif typ == "aws:lambda/layerVersion:LayerVersion":
        arn = f"arn:aws:lambda:{region}:{ACCOUNT}:layer:{physical}:1"
    elif typ == "aws:apigatewayv2/api:Api":
        rid = hashlib.md5(name.encode()).hexdigest()[:10]
        state["apiEndpoint"] = f"https://{rid}.execute-api.{region}.amazonaws.com"
        state["executionArn"] = f"arn:aws:execute-api:{region}:{ACCOUNT}:{rid}"
    elif typ.startswith("random:index/random"):
        state["result"] = _secrets.token_urlsafe(48)
    state.setdefault("arn", arn)
    return rid, state


class UnknownStack(Exception):
    """What reading a stack that does not exist answers (under the mocks)."""


def _make_mocks(region: str, upstream: dict[str, dict[str, Any]] | None = None):
    import pulumi

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs):
            if args.typ == "pulumi:pulumi:StackReference":
                # a stack reference is read: answer the named stack's outputs
                if upstream is None or args.name not in upstream:
                    raise UnknownStack(f"no stack named {args.name!r}")
                return args.name, {"outputs": dict(upstream[args.name]), "secretOutputNames": []}
            return _mock_state(args.typ, args.name, args.inputs, region)

        def call(self, args: pulumi.runtime.MockCallArgs):
            if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
                return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:root",
                        "userId": ACCOUNT}
            if args.token == "aws:index/getRegion:getRegion":
                return {"name": region, "region": region}
            if args.token == "aws:index/getPartition:getPartition":
                return {"partition": "aws", "dnsSuffix": "amazonaws.com"}
            return {}

    return Mocks()


def _make_monitor(mocks, records: list[Resource]):
    from pulumi.runtime import rpc
    from pulumi.runtime.mocks import MockMonitor

    class RecordingMonitor(MockMonitor):
        def RegisterResource(self, request):
            result = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                inputs = rpc.deserialize_properties(request.object)
                reg = self.resources.get(result.urn)
                records.append(Resource(
                    type=request.type, name=request.name, urn=result.urn, inputs=inputs,
                    parent=request.parent, protect=bool(request.protect),
                    retain_on_delete=bool(request.retainOnDelete),
                    dependencies=tuple(request.dependencies), id=result.id,
                    state=dict(reg.state) if reg else {}, import_id=request.importId))
            return result

        def ReadResource(self, request):
            result = super().ReadResource(request)
            records.append(Resource(
                type=request.type, name=request.name, urn=result.urn,
                inputs=rpc.deserialize_properties(request.properties), parent=request.parent,
                id=request.id, state=rpc.deserialize_properties(result.properties)))
            return result

    return RecordingMonitor(mocks)


class _WarningCollector:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def debug(self, msg, *a, **k): pass
    def info(self, msg, *a, **k): pass
    def warning(self, msg, *a, **k): self.warnings.append(str(msg))
    def error(self, msg, *a, **k): self.warnings.append("error: " + str(msg))


# The program's modules are imported afresh for every evaluation (below). Those of this
# repository load through a bytecode cache, as `pulumi up` would find them in __pycache__:
# one file per module, holding the digest of the source it was compiled from, so a changed
# module is compiled again. It works where writing bytecode beside the sources is turned
# off (PYTHONDONTWRITEBYTECODE) and leaves no __pycache__ in the handlers' folders.
BYTECODE_CACHE = ROOT / ".build" / "bytecode"


class _CachedSourceLoader(importlib.machinery.SourceFileLoader):
    def get_code(self, fullname: str):
        source = self.get_data(self.path)
        digest = hashlib.sha256(importlib.util.MAGIC_NUMBER + source).digest()
        cached = BYTECODE_CACHE / (hashlib.sha256(self.path.encode()).hexdigest()[:32] + ".bin")
        try:
            data = cached.read_bytes()
            if data[:32] == digest:
                return marshal.loads(data[32:])
        except (OSError, ValueError, EOFError, TypeError):
            pass
        code = self.source_to_code(source, self.path)
        try:
            BYTECODE_CACHE.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=BYTECODE_CACHE, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(digest + marshal.dumps(code))
            os.replace(tmp, cached)
        except OSError:
            pass            # a cache: never a reason to fail an evaluation
        return code


class _ProgramFinder:
    """Finds the program's modules as the path finder does; this repository's load through
    the bytecode cache (copies and fixture programs compile as usual)."""

    @staticmethod
    def find_spec(fullname: str, path=None, target=None):
        if fullname.split(".")[0] not in PROGRAM_PACKAGES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if (spec is not None and type(spec.loader) is importlib.machinery.SourceFileLoader
                and spec.loader.path.startswith(str(ROOT) + os.sep)):
            spec.loader = _CachedSourceLoader(spec.loader.name, spec.loader.path)
        return spec


@contextlib.contextmanager
def _program_modules(root: Path) -> Iterator[None]:
    """Import the program's own packages from ``root``, and forget them afterwards, so a
    fixture program (or an edited copy) never sees another program's modules. The caller's
    own imports of those packages are put back as they were: code that imported
    ``handlers.shared.http`` before an evaluation goes on finding the same modules (the same
    classes, the same caches) when it imports more of them lazily."""
    def purge() -> dict:
        mine = {m: sys.modules[m] for m in list(sys.modules) if m.split(".")[0] in PROGRAM_PACKAGES}
        for mod in mine:
            del sys.modules[mod]
        return mine

    callers = purge()
    sys.path.insert(0, str(root))
    sys.meta_path.insert(0, _ProgramFinder)
    try:
        yield
    finally:
        sys.meta_path.remove(_ProgramFinder)
        sys.path.remove(str(root))
        purge()
        sys.modules.update(callers)


PROMOTE_FROM = "listbackup:promoteFrom"


def evaluate(stack: str = "dev", root: Path | str = ROOT, *, preview: bool = False,
             overrides: dict[str, Any] | None = None,
             upstream: dict[str, dict[str, Any]] | None = None) -> Evaluation:
    """Run the program at ``root`` for ``stack`` under mocks; return what it declared.

    ``upstream``: the outputs of the stacks the program reads through a StackReference
    (stack name -> outputs; a name left out is a stack that does not exist). Left None for
    a stack with ``promoteFrom``, the upstream stack is taken to run exactly this code: its
    ``artifacts`` are this program's own (from a first evaluation without the gate), which
    is what tests of other things and offline mode want."""
    import pulumi
    from pulumi.runtime import settings as pulumi_settings

    root = Path(root).resolve()
    project = _read_yaml(root / "Pulumi.yaml")
    config, secret_keys = _stack_config(project, stack, root, overrides)
    if upstream is None and config.get(PROMOTE_FROM):
        mirror = evaluate(stack, root, preview=preview, overrides={**(overrides or {}), "promoteFrom": ""})
        upstream = {config[PROMOTE_FROM]: {"artifacts": mirror.outputs["artifacts"]}}
    region = config.get("aws:region", "us-east-1")
    records: list[Resource] = []
    outputs: dict[str, Any] = {}
    collector = _WarningCollector()
    mocks = _make_mocks(region, upstream)

    pulumi_settings.ROOT.set(None)   # a fresh stack resource for every evaluation
    pulumi.runtime.set_all_config(config, secret_keys)
    pulumi.runtime.set_mocks(mocks, project=project["name"], stack=stack, preview=preview,
                             logger=collector, monitor=_make_monitor(mocks, records))

    @pulumi.runtime.test
    def run():
        runpy.run_path(str(root / "__main__.py"), run_name="__main__")
        exported = dict(pulumi.runtime.get_root_resource().outputs)
        return pulumi.Output.from_input(exported).apply(outputs.update)

    with _program_modules(root):
        try:
            run()
        except Exception as error:
            # the program failed, as `pulumi up` or `preview` would: the exception goes on,
            # carrying what had been declared until then
            error.declared = records            # type: ignore[attr-defined]
            error.warnings = collector.warnings  # type: ignore[attr-defined]
            raise
    return Evaluation(stack, preview, records, outputs, collector.warnings)
