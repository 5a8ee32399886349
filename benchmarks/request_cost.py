"""Benchmark (not a test): DynamoDB calls per request for every route the end-to-end
journey takes, and the analytics/usage reads with 100 and 10,000 runs.

    .venv/bin/python benchmarks/request_cost.py [--runs 100 10000] [--json out.json]

Journey: tests/e2e/test_strict_mode.py's whole customer journey (identity, connectors, a
backup, data, billing, analytics, invitations, sync) through offline mode in strict mode,
whose hook (offline/strict_hook.py) runs inside every function process and appends each
AWS call the function's botocore makes - one line per API call, so a transaction or a
batch is one - with the function's name and the time. Requests go one at a time; a
request's calls are the lines of its route's function (and, separately, of the
authorizer) written between sending it and its answer. Background functions (worker,
indexer, exporter, scheduler) are other functions and never counted against a route.

Histories: in-process moto, the handler called directly, calls counted by wrapping
``BaseClient._make_api_call`` (as tests/handlers/test_analytics_api.py does).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET = 4
DEEP_STATUS = "GET /system/status"


# ------------------------------------------------------------------ the journey

def _templates(routes) -> list[tuple[re.Pattern, str, str, int]]:
    out = []
    for route in routes:
        method, path = route.route_key.split(" ", 1)
        params = path.count("{")
        pattern = re.escape(path)
        pattern = re.sub(r"\\\{[^}]*\\\+\\\}", ".+", pattern)
        pattern = re.sub(r"\\\{[^}]*\\\}", "[^/]+", pattern)
        out.append((re.compile(f"^{pattern}$"), method, route.route_key, params, route.function))
    out.sort(key=lambda t: t[3])      # literal segments win over parameters
    return out


def _route_of(templates, method: str, path: str):
    path = path.split("?", 1)[0]
    for pattern, m, key, _, function in templates:
        if m == method and pattern.match(path):
            return key, function
    return None, None


def journey_costs() -> dict:
    from offline.evaluate import evaluate
    from offline.model import from_evaluation

    deployment = from_evaluation(evaluate("dev"))
    routes = deployment.api.routes
    templates = _templates(routes)
    authorizers = {r.authorizer.function for r in routes if r.authorizer}

    from tests.connectors import localstripe_server
    from tests.connectors.stripe_checkout_server import StripeCheckoutServer
    from tests.e2e import harness
    from tests.e2e import test_strict_mode as strict_journey

    windows: list[tuple[str, str, float, float]] = []
    lock = threading.Lock()
    original = harness.OfflineServer.request

    def timed(self, method, path, body=None, **kwargs):
        if kwargs.get("base") is not None:        # /_offline helpers are not routes
            return original(self, method, path, body, **kwargs)
        t0 = time.time()
        reply = original(self, method, path, body, **kwargs)
        with lock:
            windows.append((method, path, t0, time.time()))
        return reply

    records_home = Path(tempfile.mkdtemp(prefix="bench-request-cost-"))
    saved_tmp = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(records_home)       # strict mode's record folder lands here
    harness.OfflineServer.request = timed
    already = "url" in localstripe_server._state
    url = localstripe_server.start()
    checkout = None
    try:
        localstripe_server.flush(url)
        import stripe as stripe_lib

        key = f"sk_test_bench{secrets.token_hex(12)}"
        client = stripe_lib.StripeClient(key, base_addresses={"api": url})
        for i in range(strict_journey.CUSTOMERS):
            client.v1.customers.create(params={"email": f"c{i}@example.com", "name": f"Customer {i}"})
        for i in range(strict_journey.PRODUCTS):
            client.v1.products.create(params={"name": f"Product {i}"})
        checkout = StripeCheckoutServer(url).start()
        for plan_id, price in strict_journey.PRICES.items():
            checkout.create_price(strict_journey.BILLING_KEY, price, strict_journey.AMOUNTS[plan_id],
                                  plan_id.capitalize())
        stripe = {"url": url, "key": key, "checkout": checkout}
        with strict_journey.strict_server(stripe) as server:
            strict_journey.journey(server, stripe)
            time.sleep(1)
            # strict mode removes its records when it stops: read them now
            lines = [line for path in records_home.glob("offline-strict-*/*.jsonl")
                     for line in path.read_text().splitlines()]
    finally:
        harness.OfflineServer.request = original
        if saved_tmp is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_tmp
        if checkout is not None:
            checkout.stop()
        if not already:
            localstripe_server.stop()

    calls = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("kind") == "call":
            calls.append(record)
    import shutil
    shutil.rmtree(records_home, ignore_errors=True)
    dynamo = [c for c in calls if c.get("service") == "dynamodb"]
    scans = sorted({f"{c['function']} {c['operation']}" for c in calls
                    if c.get("operation") in ("Scan", "ParallelScan")})

    per_route: dict[str, list[int]] = {}
    per_route_ops: dict[str, list[str]] = {}
    authorizer_counts: list[int] = []
    unmatched = []
    for method, path, t0, t1 in windows:
        route, function = _route_of(templates, method, path)
        if route is None:
            unmatched.append(f"{method} {path}")
            continue
        mine = [c for c in dynamo if c["function"] == function and t0 <= c["time"] <= t1]
        auth = [c for c in dynamo if c["function"] in authorizers and t0 <= c["time"] <= t1]
        per_route.setdefault(route, []).append(len(mine))
        per_route_ops.setdefault(route, [])
        if len(mine) > len(per_route_ops[route]):
            per_route_ops[route] = [c["operation"] for c in mine]
        if any(r.route_key == route and r.authorization == "CUSTOM" for r in routes):
            authorizer_counts.append(len(auth))
    all_routes = sorted(r.route_key for r in routes)
    result_routes = {}
    for route in sorted(per_route):
        worst = max(per_route[route])
        counted = route != DEEP_STATUS
        result_routes[route] = {"requests": len(per_route[route]), "max_calls": worst,
                                "operations": per_route_ops[route],
                                "pass": (worst <= TARGET) if counted else None}
    return {
        "target": TARGET,
        "routes": result_routes,
        "deep_status": result_routes.get(DEEP_STATUS),
        "authorizer": {"requests": len(authorizer_counts),
                       "max_calls": max(authorizer_counts, default=0),
                       "calls_per_invocation": sorted(set(authorizer_counts))},
        "not_exercised": [r for r in all_routes if r not in per_route],
        "unmatched_requests": unmatched,
        "scans": scans,
        "dynamodb_calls_total": len(dynamo),
        "pass": not scans and all(v["pass"] is not False for v in result_routes.values()),
    }


# ------------------------------------------------------------------ 100 vs 10,000 runs

def history_costs(sizes: list[int]) -> dict:
    """GET /analytics/overview, /analytics/timeseries?days=365 and /account/usage against
    accounts with ``sizes`` runs: the DynamoDB calls made must not depend on the history."""
    import botocore.client

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
    from tests.support import api_event, call, create_tables

    calls: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def counting(self, operation_name, params):
        if self.meta.service_model.service_name == "dynamodb":
            calls.append(operation_name)
        return original(self, operation_name, params)

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
        botocore.client.BaseClient._make_api_call = counting
        try:
            for size in sizes:
                user, account, _ = seed_tenant("viewer")
                me = {"userId": user["userId"], "accountId": account["accountId"], "role": "viewer"}
                per_day: dict[int, int] = {}
                with table("runs").batch_writer() as batch:
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
            botocore.client.BaseClient._make_api_call = original
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
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
