"""Every performance figure of issue 12 in one command: prints one table, writes JSON.

    make bench                                   # the full suite (about 15-25 minutes here)
    .venv/bin/python benchmarks/run_all.py [--quick] [--only 2 3 ...] [--json benchmarks/results.json]

Figures (each against a baseline measured in the same run where the issue says so):
 1 cold start per API function vs `import boto3` + one client   (benchmarks/cold_start.py)
 2 bundle and layer sizes, zipped
 3 redeploy churn: two evaluations, and one service's module edited in a copy
 4 program evaluation (main) vs a baseline program of the same resources (program_baseline.py)
 5 backup worker throughput and peak memory                       (worker_throughput.py)
 6 DynamoDB calls per route on the e2e journey; 100 vs 10,000 runs (request_cost.py)
 7 offline gateway added latency                                   (offline_mode.py)
 8 authorizer p50, cache cold and warm                             (authorizer_latency.py)

``--quick`` is a smoke run: fewer repetitions, smaller sizes (1,000/10,000 records, 100/1,000
runs), and no journey; its ratios are not the published figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH = Path(__file__).resolve().parent
KB, MB = 1024, 1024 * 1024

rows: list[dict] = []


def row(figure: int, name: str, value: str, target: str, ok: bool | None, **data) -> None:
    rows.append({"figure": figure, "name": name, "value": value, "target": target,
                 "pass": ok, **data})
    mark = {True: "pass", False: "MISS", None: "-"}[ok]
    print(f"  {figure}  {name:<50} {value:<34} {target:<22} {mark}", flush=True)


def script(name: str, *args: str, timeout: int = 3600) -> dict:
    out = Path(tempfile.mkstemp(prefix="bench-", suffix=".json")[1])
    try:
        done = subprocess.run([sys.executable, str(BENCH / name), *args, "--json", str(out)], cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


# ------------------------------------------------------------------ figures

def cold_start(quick: bool) -> None:
    from benchmarks import cold_start as cs

    runs = 2 if quick else 7
    result = subprocess_json("cold_start.py", "--runs", str(runs))
    base = result["baseline_ms"]
    row(1, "cold start baseline: import boto3 + client", f"{base:.0f} ms (median)", "-", None)
    for name, f in result["functions"].items():
        row(1, f"cold start {name.removeprefix('listbackup-')}", f"{f['median_ms']:.0f} ms, {f['ratio']:.2f} x (paired)",
            f"<= {cs.TARGET} x", f["pass"], route=f["route"], status=f["status"])


def subprocess_json(name: str, *args: str) -> dict:
    return script(name, *args)


def sizes(evaluation) -> None:
    from components.packaging import _describe

    worst = None
    for function in sorted(evaluation.of_type("aws:lambda/function:Function"), key=lambda r: r.name):
        artifact = _describe(Path(function.inputs["code"].path))
        if worst is None or artifact.size > worst[1]:
            worst = (function.inputs["name"], artifact.size)
        rows.append({"figure": 2, "name": f"bundle {function.inputs['name']}", "value": artifact.size,
                     "target": 100 * KB, "pass": artifact.size <= 100 * KB, "detail": True})
    functions = [r for r in rows if r["figure"] == 2]
    row(2, f"largest bundle ({len(functions)} functions)", f"{worst[1] / KB:.1f} KB ({worst[0]})",
        "<= 100 KB each", all(r["pass"] for r in functions))
    layer = evaluation.one("aws:lambda/layerVersion:LayerVersion")
    size = _describe(Path(layer.inputs["code"].path)).size
    row(2, "layer", f"{size / MB:.2f} MB", "<= 5 MB", size <= 5 * MB)


def churn() -> None:
    from offline.evaluate import evaluate
    from tests.infra.test_packaging import _changed, _copy_program

    first = evaluate("dev").outputs["artifacts"]
    second = evaluate("dev").outputs["artifacts"]
    changed = _changed(first, second)
    row(3, "two evaluations: digests changed", str(len(changed)), "0", not changed)
    for edited, service in (("handlers/jobs/crud.py", "jobs"), ("handlers/system/api.py", "system")):
        with tempfile.TemporaryDirectory() as tmp:
            copy = _copy_program(Path(tmp))
            with open(copy / edited, "a") as fh:
                fh.write("\n# an edit\n")
            after = evaluate("dev", copy).outputs["artifacts"]
        changed = sorted(_changed(first, after))
        ok = bool(changed) and all(k.startswith(service + "/") for k in changed)
        row(3, f"edit {edited}: digests changed", ", ".join(changed) or "none",
            f"only {service}/*", ok)


def program_eval(quick: bool) -> None:
    import gc
    from collections import Counter

    from benchmarks import program_baseline
    from offline.evaluate import evaluate

    runs = 2 if quick else 5
    mirror = evaluate("main", overrides={"promoteFrom": ""})
    # as `pulumi up -s main` runs it: one evaluation, the staging stack read by reference
    upstream = {"organization/listbackup/staging": {"artifacts": mirror.outputs["artifacts"]}}
    # other engineers edit this tree while it runs: a module changed between the two
    # evaluations must not stop the gate, which still runs (and compares) as in `pulumi up`
    lenient = {"allowUnpromoted": True}
    main = evaluate("main", upstream=upstream, overrides=lenient)
    with tempfile.TemporaryDirectory() as tmp:
        # the baseline: the same resources through the same pulumi-aws classes, nothing else;
        # the untyped one (bare CustomResource) shows the SDK's own floor, without a target
        typed = program_baseline.write(main, Path(tmp) / "typed", "main")
        untyped = program_baseline.write(main, Path(tmp) / "untyped", "main", typed=False)
        kinds = Counter(r.type for r in main.resources)
        registered = Counter(r.type for r in evaluate("main", typed, upstream=upstream).resources)
        if registered != kinds:
            raise RuntimeError(f"the baseline registers other resources: {registered - kinds} "
                               f"instead of {kinds - registered}")
        if len(evaluate("main", untyped).resources) != len(main.resources) - kinds[program_baseline.STACK_REFERENCE]:
            raise RuntimeError("the untyped baseline does not register every resource")
        seconds: dict[str, list[float]] = {"ours": [], "typed": [], "untyped": []}
        programs = (("typed", lambda: evaluate("main", typed, upstream=upstream)),
                    ("untyped", lambda: evaluate("main", untyped)),
                    ("ours", lambda: evaluate("main", upstream=upstream, overrides=lenient)))
        for _ in range(runs):
            for name, run in programs:
                gc.collect()    # each run starts clean: none collects the garbage of the one before
                t0 = time.perf_counter()
                run()
                seconds[name].append(time.perf_counter() - t0)
    a, b, c = (statistics.median(seconds[k]) for k in ("ours", "typed", "untyped"))
    row(4, f"evaluation, main ({len(main.resources)} resources)", f"{a:.2f} s vs {b:.2f} s = {a / b:.2f} x",
        "<= 1.5 x baseline", a / b <= 1.5, seconds=a, baseline_seconds=b)
    row(4, "  untyped baseline (bare CustomResource)", f"{c:.2f} s (ours = {a / c:.2f} x)",
        "reported", None, seconds=c)


def worker(quick: bool) -> None:
    small, large = (1000, 10_000) if quick else (10_000, 100_000)
    got = script("worker_throughput.py", "--sizes", str(small), str(large))
    for size in (small, large):
        w, b = got[f"{size}/worker"], got[f"{size}/baseline"]
        ratio = b["seconds"] / w["seconds"]
        row(5, f"worker throughput, {size} records", f"{size / w['seconds']:.0f}/s = {ratio:.2f} x fetch-only",
            ">= 0.8 x", ratio >= 0.8)
    growth = got[f"{large}/worker"]["rss_mb"] / got[f"{small}/worker"]["rss_mb"] - 1
    row(5, f"worker peak RSS {large} vs {small}",
        f"{got[f'{large}/worker']['rss_mb']:.0f} vs {got[f'{small}/worker']['rss_mb']:.0f} MB ({growth * 100:+.1f}%)",
        "within 10%", abs(growth) <= 0.10)


def request_cost(quick: bool) -> None:
    args = ["--runs", "100", "1000"] if quick else ["--runs", "100", "10000"]
    got = script("request_cost.py", *args, *(["--skip-journey"] if quick else []))
    if "journey" in got:
        j = got["journey"]
        counted = {k: v for k, v in j["routes"].items() if v["pass"] is not None}
        worst = max(counted.items(), key=lambda kv: kv[1]["max_calls"])
        row(6, f"DynamoDB calls/route ({len(counted)} routes on journey)",
            f"max {worst[1]['max_calls']} ({worst[0]})", "<= 4", all(v["pass"] for v in counted.values()),
            routes=j["routes"], not_exercised=j["not_exercised"])
        for route, v in sorted(counted.items(), key=lambda kv: -kv[1]["max_calls"]):
            if not v["pass"]:
                ops = {}
                for op in v["operations"]:
                    ops[op] = ops.get(op, 0) + 1
                row(6, f"  {route}", f"{v['max_calls']}: " + " ".join(f"{o}x{n}" if n > 1 else o
                                                                     for o, n in ops.items()),
                    "<= 4", False)
        deep = j.get("deep_status") or {}
        row(6, "deep status GET /system/status (apart)", f"{deep.get('max_calls')} calls", "reported", None)
        row(6, "authorizer (apart)", f"{j['authorizer']['max_calls']} calls max "
            f"({j['authorizer']['requests']} reqs)", "reported", None)
        row(6, "Scan anywhere on the journey", ", ".join(j["scans"]) or "none", "none", not j["scans"])
        # every route is measured: one the journey did not take (or a journey that stopped
        # early) is a miss, not a footnote
        row(6, "routes without a 2xx/3xx on the journey", ", ".join(j["not_exercised"]) or "none",
            "none", not j["not_exercised"])
        if j.get("journey_failed"):
            row(6, "journey stopped early", str(j["journey_failed"])[:60], "completes", False)
    h = got["history"]
    for route, r in h["routes"].items():
        counts = " vs ".join(str(v) for v in r["calls"].values())
        row(6, f"{route} at {' vs '.join(map(str, h['sizes']))} runs", f"{counts} calls",
            "identical, <= 4", r["pass"])


def offline_latency(quick: bool) -> None:
    got = script("offline_mode.py", "--requests", "100" if quick else "300", "--starts", "1" if quick else "3")
    row(7, "gateway added latency p50", f"{got['gateway_p50_ms'] - got['direct_p50_ms']:.2f} ms", "reported", None,
        **got)
    row(7, "gateway added latency p99", f"{got['gateway_p99_ms'] - got['direct_p99_ms']:.2f} ms", "reported", None)
    row(7, "offline start-up to ready", f"{got['startup_median_s']:.1f} s", "< 10 s", got["startup_max_s"] < 10)


def authorizer(quick: bool) -> None:
    got = script("authorizer_latency.py", "--requests", "50" if quick else "300")
    row(8, "authorizer p50, cache cold", f"{got['cold_p50_ms']:.2f} ms", "reported", None)
    row(8, "authorizer p50, cache warm", f"{got['warm_p50_ms']:.2f} ms", "reported", None)


def machine() -> dict:
    import os
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "platform": platform.platform()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer repetitions, small sizes")
    parser.add_argument("--only", type=int, nargs="+", default=list(range(1, 9)), metavar="N")
    parser.add_argument("--json", type=Path, default=BENCH / "results.json")
    args = parser.parse_args()
    info = machine()
    print(f"machine: {info['nproc']} CPUs, {info['cpu']}, Python {info['python']}"
          f"{' (quick run)' if args.quick else ''}")
    print(f"  #  {'figure':<50} {'value':<34} {'target':<22} result")
    started = time.time()
    failures = []
    evaluation = None
    for n, fn in ((1, cold_start), (2, sizes), (3, churn), (4, program_eval), (5, worker),
                  (6, request_cost), (7, offline_latency), (8, authorizer)):
        if n not in args.only:
            continue
        try:
            if n == 2:
                from offline.evaluate import evaluate
                evaluation = evaluation or evaluate("dev")
                fn(evaluation)
            elif n == 3:
                fn()
            else:
                fn(args.quick)
        except Exception as error:        # one figure failing must not hide the others
            failures.append(f"figure {n}: {type(error).__name__}: {str(error)[-1500:]}")
            row(n, f"figure {n} FAILED", type(error).__name__, "-", False)
    shown = [r for r in rows if not r.get("detail")]
    missed = [r for r in shown if r["pass"] is False]
    print(f"\n{len(shown)} figures, {sum(r['pass'] is True for r in shown)} pass, {len(missed)} miss, "
          f"in {time.time() - started:.0f} s")
    for failure in failures:
        print(failure, file=sys.stderr)
    args.json.write_text(json.dumps({"machine": info, "quick": args.quick, "when": time.strftime("%Y-%m-%d %H:%M"),
                                     "figures": rows, "errors": failures}, indent=1, default=str))
    print(f"written: {args.json}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
