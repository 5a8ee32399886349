"""Benchmark (not a test): the authorizer's time per request with its cache cold and warm.

    .venv/bin/python benchmarks/authorizer_latency.py [--requests 200] [--json out.json]

The authorizer handler runs in this process against moto (in-process), on a valid access
token of an active member. Its one cache is the SSM parameter cache (the stage's JWT
secret, handlers/shared/params.py): cold, the cache is emptied before each request (a
GetParameter, then the token check and two GetItems); warm, the secret is cached (the
token check and two GetItems). API Gateway's own decision cache (the authorizer's TTL) is
not the function's: a cached decision never invokes it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STAGE = "bench"
PREFIX = f"listbackup-{STAGE}-"
SECRET_PARAM = f"/listbackup/{STAGE}/jwt-secret"
SECRET = "k" * 24 + "-bench-access-secret-0123456789"


def measure(requests: int = 200) -> dict:
    os.environ.update({"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                       "DYNAMODB_TABLE_PREFIX": PREFIX, "STAGE": STAGE, "JWT_SECRET_PARAM": SECRET_PARAM,
                       "LOG_LEVEL": "WARNING", "POWERTOOLS_LOG_LEVEL": "WARNING"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    import boto3
    from moto import mock_aws

    from components import tables
    from tests.support import LambdaContext, create_tables

    with mock_aws():
        create_tables(tables.AUTH_TABLES + tables.ACCOUNT_TABLES + tables.API_TABLES + tables.CORE_TABLES,
                      prefix=PREFIX)
        boto3.client("ssm").put_parameter(Name=SECRET_PARAM, Value=SECRET, Type="SecureString")
        from handlers.api import authorizer
        from handlers.shared import clients, params, tokens
        from handlers.shared.clients import table

        clients.reset()
        params.clear_cache()
        user_id, account_id = "usr_benchauthorizer000000", "acc_benchauthorizer000000"
        table("users").put_item(Item={"userId": user_id, "email": "a@example.com", "status": "active",
                                      "tokenVersion": 0})
        table("users-accounts").put_item(Item={"userId": user_id, "accountId": account_id, "role": "owner"})
        token, _ = tokens.issue(SECRET, stage=STAGE, typ="access", user_id=user_id, account_id=account_id,
                             role="owner", version=0)
        event = {"version": "2.0", "type": "REQUEST", "routeKey": "GET /account",
                 "routeArn": "arn:aws:execute-api:us-east-1:123456789012:abc/$default/GET/account",
                 "identitySource": [f"Bearer {token}"], "headers": {"authorization": f"Bearer {token}"},
                 "requestContext": {"http": {"method": "GET", "path": "/v2/account"}}}
        context = LambdaContext("listbackup-api-bench-authorizer")
        assert authorizer.handler(event, context)["isAuthorized"] is True
        timings = {"cold": [], "warm": []}
        for _ in range(requests):
            for mode in ("cold", "warm"):
                if mode == "cold":
                    params.clear_cache()
                t0 = time.perf_counter()
                answer = authorizer.handler(event, context)
                timings[mode].append((time.perf_counter() - t0) * 1000)
                assert answer["isAuthorized"] is True
        clients.reset()
        params.clear_cache()
    return {"requests": requests,
            "cold_p50_ms": round(statistics.median(timings["cold"]), 2),
            "warm_p50_ms": round(statistics.median(timings["warm"]), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = measure(args.requests)
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
