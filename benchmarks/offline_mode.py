"""Benchmark (not a test): offline mode's start-up time and the gateway's added latency.

    make bench            # or: .venv/bin/python benchmarks/offline_mode.py [--requests 300]

Start-up is measured from launching `python -m offline` to its `ready:` line (set-up, i.e.
the virtualenv and wheels, excluded). Added latency compares GET /system/health through the
gateway (HTTP, a warm worker process) with calling the same handler in this process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here (benchmarks/run_all.py)")
    args = parser.parse_args()

    from tests.e2e.harness import OfflineServer
    from tests.support import LambdaContext, api_event

    startups = []
    for i in range(args.starts):
        t0 = time.perf_counter()
        server = OfflineServer().start()
        startups.append(time.perf_counter() - t0)
        if i < args.starts - 1:
            server.stop()
    print(f"start-up to ready line: median {statistics.median(startups):.2f} s, "
          f"max {max(startups):.2f} s over {args.starts} starts (target < 10 s)")

    try:
        server.get("/system/health")  # cold start out of the way
        through = []
        for _ in range(args.requests):
            t0 = time.perf_counter()
            reply = server.get("/system/health")
            through.append((time.perf_counter() - t0) * 1000)
            assert reply.status == 200
    finally:
        server.stop()

    os.environ.update({"STAGE": "dev", "API_VERSION": "v2", "LOG_LEVEL": "WARNING"})
    from handlers.system import api

    event, context = api_event("GET /system/health"), LambdaContext("listbackup-system-dev-api")
    api.handler(event, context)
    direct = []
    for _ in range(args.requests):
        t0 = time.perf_counter()
        api.handler(event, context)
        direct.append((time.perf_counter() - t0) * 1000)

    print(f"GET /system/health, {args.requests} requests each:")
    print(f"  through the gateway : p50 {percentile(through, 50):7.2f} ms   p99 {percentile(through, 99):7.2f} ms")
    print(f"  handler in-process  : p50 {percentile(direct, 50):7.2f} ms   p99 {percentile(direct, 99):7.2f} ms")
    print(f"  added by the gateway: p50 {percentile(through, 50) - percentile(direct, 50):7.2f} ms   "
          f"p99 {percentile(through, 99) - percentile(direct, 99):7.2f} ms")
    if args.json:
        import json
        args.json.write_text(json.dumps({
            "startup_median_s": statistics.median(startups), "startup_max_s": max(startups),
            "requests": args.requests,
            "gateway_p50_ms": percentile(through, 50), "gateway_p99_ms": percentile(through, 99),
            "direct_p50_ms": percentile(direct, 50), "direct_p99_ms": percentile(direct, 99)}))


if __name__ == "__main__":
    main()
