"""Benchmark (not a test): how long the program takes to evaluate under Pulumi's mocks,
and how big each Lambda artifact is. Prints its numbers; asserts nothing.

    make bench            # or: .venv/bin/python benchmarks/program_eval.py [--stack main] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="main")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    started = time.perf_counter()
    from offline.evaluate import evaluate  # noqa: E402  (import cost is part of the first run)
    import pulumi_aws  # noqa: F401
    import_seconds = time.perf_counter() - started

    timings = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        result = evaluate(args.stack)
        timings.append(time.perf_counter() - t0)

    print(f"stack {args.stack}: {len(result.resources)} resources")
    print(f"import offline.evaluate + pulumi_aws: {import_seconds:.3f} s")
    print(f"evaluation under mocks: first {timings[0]:.3f} s, "
          f"median {statistics.median(timings):.3f} s, min {min(timings):.3f} s over {args.runs} runs")

    from components.packaging import _describe  # noqa: E402

    print("artifacts (bytes, sha256 prefix):")
    for function in sorted(result.of_type("aws:lambda/function:Function"), key=lambda r: r.name):
        artifact = _describe(Path(function.inputs["code"].path))
        print(f"  {function.inputs['name']:<45} {artifact.size:>9}  {artifact.sha256[:12]}  "
              f"{len(artifact.files)} files")
    layer = result.one("aws:lambda/layerVersion:LayerVersion")
    artifact = _describe(Path(layer.inputs["code"].path))
    print(f"  {layer.inputs['layerName']:<45} {artifact.size:>9}  {artifact.sha256[:12]}  "
          f"{len(artifact.files)} files")


if __name__ == "__main__":
    main()
