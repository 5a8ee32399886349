"""Benchmark (not a test): each API function's cold start beside ``import boto3`` + one client.

    .venv/bin/python benchmarks/cold_start.py [--runs 5] [--json out.json]

The dev stack is evaluated, offline mode's provisioning creates its tables, queues,
parameters and bucket in a moto server (in this process), and an owner is seeded. For each
API function a fresh interpreter (benchmarks/coldstart_child.py) gets exactly the
environment offline mode gives that function - ``PYTHONPATH`` = its bundle and the layer,
its variables, the local AWS endpoint - imports the handler and serves a first request
(a GET route of that function, as the owner). The baseline, in the same round: a fresh
interpreter importing boto3 and creating one client. Every function run is paired with a
baseline run right beside it (the order alternating between rounds), so the shared
machine's load of the moment weighs on both; a function's figure is the median of its
per-pair ratios, beside the median times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.support import free_port  # noqa: E402

CHILD = Path(__file__).resolve().parent / "coldstart_child.py"
TARGET = 1.5
# What Lambda's Python runtime provides besides the standard library: the AWS SDK and its
# dependencies. The children run with ``-S`` (no site-packages): these (linked from this
# virtualenv, bytecode cached as the runtime's is), the bundle and the layer are all they see.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")


def runtime_dir() -> Path:
    import site
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="bench-lambda-runtime-"))
    for source in map(Path, site.getsitepackages()):
        for name in RUNTIME_PACKAGES:
            if (source / name).exists() and not (folder / name).exists():
                (folder / name).symlink_to(source / name)
    missing = [n for n in RUNTIME_PACKAGES if not (folder / n).exists()]
    if missing:
        raise RuntimeError(f"not in this virtualenv: {missing}")
    return folder


# A function's first request: the read a customer's app makes first (the same one every
# run: the program lists routes in no fixed order)
FIRST_REQUEST = {"GET /account", "GET /auth/profile", "GET /billing/plans", "GET /analytics/overview",
                 "GET /data/files", "GET /jobs", "GET /sources", "GET /activity", "GET /integrations",
                 "GET /system/health"}


def _route_for(routes: list, function: str):
    """A cheap first request of the function: the one named above, else a GET with no path
    parameter, else any GET, else its first route (by route key)."""
    mine = sorted((r for r in routes if r.function == function),
                  key=lambda r: (r.route_key not in FIRST_REQUEST, r.route_key))
    gets = [r for r in mine if r.route_key.startswith("GET ")]
    plain = [r for r in gets if "{" not in r.route_key]
    return (plain or gets or mine)[0]


def _fill(route_key: str, ids: dict) -> tuple[str, dict]:
    import re
    path_params = {}
    def sub(m):
        name = m.group(1).rstrip("+")
        path_params[name] = ids.get(name, "x_doesnotexist")
        return path_params[name]
    path = re.sub(r"\{([^}]+)\}", sub, route_key.split(" ", 1)[1])
    return path, path_params


def _seed(env: dict) -> dict:
    """An owner, their account and membership, written as the identity service writes them."""
    import boto3

    prefix = env.get("DYNAMODB_TABLE_PREFIX", "listbackup-dev-")
    dynamodb = boto3.resource("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    account_id, user_id = "acc_bench0000000000000000", "usr_bench0000000000000000"
    now = "2026-01-01T00:00:00Z"
    dynamodb.Table(prefix + "accounts").put_item(Item={
        "accountId": account_id, "name": "Bench", "plan": "pro", "ownSubscription": True,
        "rootAccountId": account_id, "path": account_id, "depth": 0, "storageBytes": 0,
        "sourceCount": 0, "createdAt": now})
    dynamodb.Table(prefix + "users").put_item(Item={
        "userId": user_id, "email": "bench@example.com", "status": "active", "tokenVersion": 0,
        "currentAccountId": account_id, "createdAt": now})
    dynamodb.Table(prefix + "users-accounts").put_item(Item={
        "userId": user_id, "accountId": account_id, "role": "owner", "createdAt": now})
    return {"userId": user_id, "accountId": account_id, "role": "owner"}


def _access_token(env: dict, identity: dict) -> str:
    """A valid access token of the seeded owner, signed with the stage's secret in moto."""
    import boto3

    from handlers.shared import tokens

    ssm = boto3.client("ssm", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    secret = ssm.get_parameter(Name=env["JWT_SECRET_PARAM"], WithDecryption=True)["Parameter"]["Value"]
    token, _ = tokens.issue(secret, stage=env["STAGE"], typ="access", user_id=identity["userId"],
                            account_id=identity["accountId"], role=identity["role"], version=0)
    return token


def _spawn(mode: str, env: dict, event: dict | None) -> dict:
    if os.environ.get("BENCH_PROFILE") and mode != "baseline":
        env = {**env, "BENCH_PROFILE": "1"}
    if os.environ.get("BENCH_IMPORTTIME") and mode != "baseline":
        env = {**env, "PYTHONPROFILEIMPORTTIME": "1"}
    out = subprocess.run([sys.executable, "-S", str(CHILD), mode], env=env, cwd="/",
                         input=json.dumps(event) if event is not None else "",
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"cold start child ({mode}) failed:\n{out.stderr[-3000:]}")
    if os.environ.get("BENCH_PROFILE") and mode != "baseline":
        print(out.stderr[-14000:], file=sys.stderr)
    if os.environ.get("BENCH_IMPORTTIME") and mode != "baseline":
        lines = [l for l in out.stderr.splitlines() if l.startswith("import time:") and l.split("|")[1].strip().isdigit()]
        lines.sort(key=lambda l: -int(l.split("|")[1]))
        print("\n".join(lines[:int(os.environ["BENCH_IMPORTTIME"]) if os.environ["BENCH_IMPORTTIME"].isdigit() and int(os.environ["BENCH_IMPORTTIME"]) > 1 else 60]), file=sys.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(runs: int = 5, stack: str = "dev", only: list[str] | None = None) -> dict:
    fake = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_SESSION_TOKEN": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(fake)
    from offline.evaluate import evaluate
    from offline.model import from_evaluation
    from offline.provision import provision
    from offline.runtime import FunctionPool

    deployment = from_evaluation(evaluate(stack))
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        import boto3

        provisioned = provision(deployment, boto3.Session(region_name="us-east-1"))
        pool = FunctionPool(deployment.functions, base_env={**fake, "AWS_ENDPOINT_URL": endpoint},
                            substitutions=provisioned.substitutions, log=lambda _: None)
        routes = deployment.api.routes
        api_functions = sorted({r.function for r in routes})
        runtime = runtime_dir()

        def lambda_env(name: str) -> dict:
            env = pool.environment(deployment.functions[name])
            env["PYTHONPATH"] += os.pathsep + str(runtime)      # the runtime's boto3 comes last
            return env

        envs = {name: lambda_env(name) for name in api_functions}
        for env in envs.values():
            env["LOG_LEVEL"] = env["POWERTOOLS_LOG_LEVEL"] = "WARNING"
        identity = _seed(next(iter(envs.values())))
        from tests.support import api_event

        events = {}
        for name in api_functions:
            route = _route_for(routes, name)
            if route.authorization == "CUSTOM" or "authorizer" not in name:
                path, params = _fill(route.route_key, {})
                events[name] = (route.route_key, api_event(
                    route.route_key, identity=identity if route.authorization == "CUSTOM" else None,
                    path=params or None))
                events[name][1]["rawPath"] = "/v2" + path
                events[name][1]["requestContext"]["http"]["path"] = "/v2" + path
        # the authorizer is an API function too: its first request is an access token check,
        # of a malformed token (SSM read, token refused) and, as a second figure, of a valid
        # one (SSM read, signature and claims, the user's and the membership's rows)
        authorizers = sorted({r.authorizer.function for r in routes if r.authorizer})
        for name in authorizers:
            envs[name] = lambda_env(name)
            for label, token in (("malformed token", "not.a.token"),
                                 ("valid token", _access_token(envs[name], identity))):
                key = name if label == "malformed token" else f"{name} (valid token)"
                envs[key] = envs[name]
                events[key] = (f"authorize, {label}", {
                    "version": "2.0", "type": "REQUEST",
                    "routeArn": "arn:aws:execute-api:us-east-1:1:a/$default/GET/account",
                    "identitySource": [f"Bearer {token}"], "headers": {"authorization": f"Bearer {token}"},
                    "routeKey": "GET /account", "requestContext": {}})
        names = sorted(n for n in events if not only or any(o in n for o in only))
        base_env = dict(envs[api_functions[0]])
        base_env["PYTHONPATH"] = str(runtime)
        timings: dict[str, list[float]] = {n: [] for n in names}
        ratios: dict[str, list[float]] = {n: [] for n in names}
        baseline: list[float] = []
        statuses: dict[str, object] = {}
        for round_ in range(runs):
            for name in names:
                # each function run is paired with a baseline run right beside it (in
                # alternating order), so the load of the moment weighs on both
                pair = []
                for which in (("baseline", "function") if round_ % 2 == 0 else ("function", "baseline")):
                    if which == "baseline":
                        pair.append(("baseline", _spawn("baseline", base_env, None)["ms"]))
                    else:
                        got = _spawn("function", envs[name], events[name][1])
                        statuses[name] = got["status"]
                        pair.append(("function", got["ms"]))
                found = dict(pair)
                baseline.append(found["baseline"])
                timings[name].append(found["function"])
                ratios[name].append(found["function"] / found["baseline"])
    finally:
        import shutil
        shutil.rmtree(locals().get("runtime") or "/nonexistent", ignore_errors=True)
        moto.stop()
        os.environ.pop("AWS_ENDPOINT_URL", None)
    base = statistics.median(baseline)
    functions = {}
    for name in names:
        median = statistics.median(timings[name])
        ratio = statistics.median(ratios[name])
        functions[name] = {"route": events[name][0], "status": statuses[name], "median_ms": round(median, 1),
                           "ratio": round(ratio, 2), "pass": ratio <= TARGET}
    return {"baseline_ms": round(base, 1), "runs": runs, "target": TARGET, "functions": functions,
            "pass": all(f["pass"] for f in functions.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--function", nargs="+", help="only the functions whose names contain these")
    args = parser.parse_args()
    result = measure(args.runs, only=args.function)
    print(f"baseline (import boto3 + one client): median {result['baseline_ms']} ms; ratio = median of "
          f"{args.runs} function/baseline pairs")
    for name, f in result["functions"].items():
        print(f"  {name:<40} {f['median_ms']:8.1f} ms  {f['ratio']:5.2f} x  {'ok' if f['pass'] else 'MISS'}"
              f"  ({f['route']} -> {f['status']})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
