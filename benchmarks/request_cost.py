"""Benchmark (not a test): DynamoDB calls per request for every route the end-to-end
journey takes, and the analytics/usage reads with 100 and 10,000 runs.

    .venv/bin/python benchmarks/request_cost.py [--runs 100 10000] [--json out.json]

Journey: tests/e2e/journey.py, the customer journey tests/e2e/test_strict_mode.py runs,
which takes every route of the API with a successful answer (identity, connectors with an
OAuth connect, backups run, cancelled and synced, data, billing through Checkout, portal
and cancellation, a team, sub-accounts, analytics, activity, system), through offline mode
in strict mode, whose hook (offline/strict_hook.py) runs inside every function process and
appends each AWS call the function's botocore makes - one line per API call, so a
transaction or a batch is one - with the function's name and the time. Requests go one at
a time; a request's calls are the lines of its route's function (and, separately, of the
authorizer) written between sending it and its answer. Background functions (worker,
indexer, exporter, scheduler) are other functions and never counted against a route.
``not_exercised`` lists the routes the journey did not take with a 2xx/3xx answer;
``journey_failed`` names the step where the journey stopped, if it did.

Histories: in-process moto, the handler called directly, calls counted by wrapping
``BaseClient._make_api_call`` (as tests/handlers/test_analytics_api.py does).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET = 4
DEEP_STATUS = "GET /system/status"


# ------------------------------------------------------------------ the journey

def journey_costs() -> dict:
    from offline.evaluate import evaluate
    from offline.model import from_evaluation
    from tests.e2e.journey import JourneyFailed, journey, platforms, strict_server

    deployment = from_evaluation(evaluate("dev"))
    routes = [{"route": r.route_key, "function": r.function, "authorized": r.authorization == "CUSTOM",
               "authorizer": r.authorizer.function if r.authorizer else None}
              for r in deployment.api.routes]

    records_home = Path(tempfile.mkdtemp(prefix="bench-request-cost-"))
    saved_tmp = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(records_home)       # strict mode's record folder lands here
    failed = None
    try:
        with platforms() as outside, strict_server(outside) as server:
            try:
                journey(server, outside)
            except JourneyFailed as error:          # report what was measured up to there
                failed = str(error)
            time.sleep(1)
            sent = list(server.sent)
            # strict mode removes its records when it stops: read them now
            lines = [line for path in records_home.glob("offline-strict-*/*.jsonl")
                     for line in path.read_text().splitlines()]
    finally:
        if saved_tmp is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_tmp
        shutil.rmtree(records_home, ignore_errors=True)

    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    result = costs(sent, records, routes)
    result["journey_failed"] = failed
    result["pass"] = result["pass"] and failed is None
    return result


def costs(sent, records: list[dict], routes: list[dict]) -> dict:
    """Per route, the DynamoDB calls its function made while each of its requests was in
    flight. ``sent``: the journey's requests (tests.e2e.journey.Sent); ``records``: strict
    mode's call records (``kind``, ``function``, ``service``, ``operation``, ``time``);
    ``routes``: ``{route, function, authorized, authorizer}`` per route of the deployment."""
    from tests.e2e.journey import RouteTable

    table = RouteTable(r["route"] for r in routes)
    function_of = {r["route"]: r["function"] for r in routes}
    authorized = {r["route"] for r in routes if r["authorized"]}
    authorizers = {r["authorizer"] for r in routes if r["authorizer"]}
    calls = [c for c in records if c.get("kind") == "call"]
    dynamo = [c for c in calls if c.get("service") == "dynamodb"]
    scans = sorted({f"{c['function']} {c['operation']}" for c in calls
                    if c.get("operation") in ("Scan", "ParallelScan")})

    per_route: dict[str, list[int]] = {}
    per_route_ops: dict[str, list[str]] = {}
    statuses: dict[str, set[int]] = {}
    authorizer_counts: list[int] = []
    unmatched = []
    for request in sent:
        route = table.route_of(request.method, request.path)
        if route is None:
            unmatched.append(f"{request.method} {request.path} ({request.status})")
            continue
        window = [c for c in dynamo if request.started <= c["time"] <= request.answered]
        mine = [c for c in window if c["function"] == function_of[route]]
        per_route.setdefault(route, []).append(len(mine))
        statuses.setdefault(route, set()).add(request.status)
        if route not in per_route_ops or len(mine) > len(per_route_ops[route]):
            per_route_ops[route] = [c["operation"] for c in mine]
        if route in authorized:
            authorizer_counts.append(len([c for c in window if c["function"] in authorizers]))
    result_routes = {}
    for route in sorted(per_route):
        worst = max(per_route[route])
        counted = route != DEEP_STATUS
        result_routes[route] = {"requests": len(per_route[route]), "statuses": sorted(statuses[route]),
                                "max_calls": worst, "operations": per_route_ops[route],
                                "pass": (worst <= TARGET) if counted else None}
    not_exercised = table.not_taken(sent)
    # An API function's call made while none of its requests was in flight is charged to no
    # route (work at start-up, or left running after the answer): shown, never hidden.
    windows: dict[str, list[tuple[float, float]]] = {}
    for request in sent:
        route = table.route_of(request.method, request.path)
        if route is not None:
            windows.setdefault(function_of[route], []).append((request.started, request.answered))
    stray: dict[str, list[str]] = {}
    for c in dynamo:
        if c["function"] in function_of.values() and not any(
                t0 <= c["time"] <= t1 for t0, t1 in windows.get(c["function"], ())):
            stray.setdefault(c["function"], []).append(c["operation"])
    return {
        "target": TARGET,
        "routes": result_routes,
        "deep_status": result_routes.get(DEEP_STATUS),
        "authorizer": {"requests": len(authorizer_counts),
                       "max_calls": max(authorizer_counts, default=0),
                       "calls_per_invocation": sorted(set(authorizer_counts))},
        "not_exercised": not_exercised,
        "unmatched_requests": unmatched,
        "calls_outside_requests": stray,
        "scans": scans,
        "dynamodb_calls_total": len(dynamo),
        "pass": not not_exercised and not scans and not stray
                and all(v["pass"] is not False for v in result_routes.values()),
    }


def over_target(journey: dict) -> list[str]:
    """One line per route over the target: its worst request's calls, counted by operation."""
    lines = []
    for route, v in sorted(journey["routes"].items(), key=lambda kv: (-kv[1]["max_calls"], kv[0])):
        if v["pass"] is False:
            ops: dict[str, int] = {}
            for op in v["operations"]:
                ops[op] = ops.get(op, 0) + 1
            lines.append(f"{route}: {v['max_calls']} = " + " ".join(
                f"{o}x{n}" if n > 1 else o for o, n in ops.items()))
    return lines


# ------------------------------------------------------------------ 100 vs 10,000 runs

def history_costs(sizes: list[int]) -> dict:
    """GET /analytics/overview, /analytics/timeseries?days=365 and /account/usage against
    accounts with ``sizes`` runs: the DynamoDB calls made must not depend on the history."""
    stage = "bench"
    prefix = f"listbackup-{stage}-"
    os.environ.update({"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                       "DYNAMODB_TABLE_PREFIX": prefix, "STAGE": stage, "S3_BUCKET": f"listbackup-data-{stage}",
                       "CURSOR_SECRET_PARAM": f"/listbackup/{stage}/cursor-secret",
                       "JWT_SECRET_PARAM": f"/listbackup/{stage}/jwt-secret",
                       "SES_FROM_EMAIL": "noreply@bench.listbackup.ai", "APP_URL": "https://app.bench",
                       "LOG_LEVEL": "WARNING", "POWERTOOLS_LOG_LEVEL": "WARNING"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    import boto3
    from moto import mock_aws

    from components import tables
    from tests.support import api_event, call, counted_dynamodb_calls, create_tables

    with mock_aws():
        from handlers.shared import clients, params
        clients.reset()
        params.clear_cache()
        create_tables(tables.CORE_TABLES + tables.API_TABLES + tables.AUTH_TABLES + tables.ACCOUNT_TABLES,
                      prefix=prefix)
        ssm = boto3.client("ssm")
        for name in ("cursor-secret", "jwt-secret"):
            ssm.put_parameter(Name=f"/listbackup/{stage}/{name}", Value="s" * 40, Type="SecureString")
        from handlers.account import api as account_api
        from handlers.analytics import api as analytics_api
        from handlers.shared import clock
        from handlers.shared.clients import table
        from handlers.shared.ids import new_id
        from tests.handlers.test_analytics_api import seed_finished
        from tests.handlers.test_sources_support import seed_tenant

        probes = (("GET /analytics/overview", analytics_api, None),
                  ("GET /analytics/timeseries", analytics_api, {"days": "365"}),
                  ("GET /account/usage", account_api, None))
        costs: dict[str, dict[int, list[str]]] = {}
        totals = {}
        now = clock.now().replace(hour=12)
        try:
            with counted_dynamodb_calls() as calls:
                for size in sizes:
                    user, account, _ = seed_tenant("viewer")
                    me = {"userId": user["userId"], "accountId": account["accountId"], "role": "viewer"}
                    per_day: dict[int, int] = {}
                    with boto3.resource("dynamodb").Table(table("runs").name).batch_writer() as batch:
                        for n in range(size):
                            day = n % 365
                            finished = now - timedelta(days=day, minutes=n % 600)
                            batch.put_item(Item={"accountId": account["accountId"], "runId": new_id("run"),
                                                 "jobId": "job_x", "sourceId": f"src_{day % 3}",
                                                 "status": "completed", "createdAt": clock.iso(finished),
                                                 "finishedAt": clock.iso(finished), "records": 10, "bytes": 100})
                            per_day[day] = per_day.get(day, 0) + 1
                    for day, count in per_day.items():
                        seed_finished(account["accountId"], f"src_{day % 3}", now - timedelta(days=day),
                                      records=10 * count, bytes_=100 * count, runs=count)
                    for route, module, query in probes:
                        calls.clear()
                        status, body = call(module.handler, api_event(route, identity=me, query=query))
                        assert status == 200, (route, status, body)
                        costs.setdefault(route, {})[size] = list(calls)
                        if route == "GET /analytics/overview":
                            totals[size] = body["data"]["runs"]["total"]
        finally:
            clients.reset()
            params.clear_cache()
    out = {"sizes": sizes, "runs_seen": totals, "routes": {}}
    for route, by_size in costs.items():
        counts = {size: len(ops) for size, ops in by_size.items()}
        same = len({tuple(ops) for ops in by_size.values()}) == 1
        out["routes"][route] = {"calls": counts, "operations": by_size[sizes[0]], "identical": same,
                                "pass": same and max(counts.values()) <= TARGET
                                and not any("Scan" in op for ops in by_size.values() for op in ops)}
    out["pass"] = all(r["pass"] for r in out["routes"].values()) and all(totals[s] == s for s in sizes)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[100, 10_000])
    parser.add_argument("--skip-journey", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = {"history": history_costs(args.runs)}
    if not args.skip_journey:
        result["journey"] = journey_costs()
    print(json.dumps(result, indent=1))
    if "journey" in result:
        journey = result["journey"]
        print(f"routes over {TARGET} DynamoDB calls:", *(over_target(journey) or ["none"]),
              f"routes not exercised: {', '.join(journey['not_exercised']) or 'none'}",
              *([f"the journey stopped: {journey['journey_failed']}"] if journey["journey_failed"] else []),
              sep="\n", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
