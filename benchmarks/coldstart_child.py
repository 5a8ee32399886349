"""One cold start, in a fresh interpreter (run by benchmarks/cold_start.py, not by hand).

    coldstart_child.py baseline          # import boto3 and create one client
    coldstart_child.py function          # import $_HANDLER, serve the event read on stdin

``PYTHONPATH`` holds only the function's bundle and the layer (as Lambda has them); boto3
comes from the interpreter, as Lambda's runtime provides it. The clock starts at this
script's first line, so the interpreter's own start-up (the same for both) is left out.
Prints one JSON line: ``{"ms": ..., "status": ...}``.
"""

import time

_T0 = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

# This script's folder must not shadow the function's code (as offline/worker.py does).
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]


class _Context:
    def __init__(self) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "bench")
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.invoked_function_arn = os.environ.get("OFFLINE_FUNCTION_ARN", "")
        self.aws_request_id = "cold-start-bench"
        self.log_group_name = self.log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def main() -> None:
    mode = sys.argv[1]
    if mode == "baseline":
        event = None
        import boto3
        imported = time.perf_counter() - _T0
        boto3.client("dynamodb")
        status = None
    else:
        t_wait = time.perf_counter()
        event = json.loads(sys.stdin.read())
        waited = time.perf_counter() - t_wait
        module_path, _, name = os.environ["_HANDLER"].rpartition(".")
        import importlib
        handler = getattr(importlib.import_module(module_path.replace("/", ".")), name)
        imported = time.perf_counter() - _T0 - waited
        result = handler(event, _Context())
        status = (result.get("statusCode", result.get("isAuthorized")) if isinstance(result, dict) else None)
    elapsed = time.perf_counter() - _T0
    if event is not None:
        elapsed -= waited      # reading stdin waits on the parent: not part of a cold start
    loaded = sorted({m.split(".")[0] for m in sys.modules})
    print(json.dumps({"ms": elapsed * 1000, "import_ms": imported * 1000, "status": status,
                      "modules": len(sys.modules),
                      "top": loaded}), file=sys.__stdout__, flush=True)


if __name__ == "__main__":
    if os.environ.get("BENCH_PROFILE"):        # where a cold start goes, on stderr
        import cProfile
        import pstats
        profile = cProfile.Profile()
        profile.runcall(main)
        pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
    else:
        main()
