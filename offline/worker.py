"""One Lambda execution environment: a process that imports one function's handler (the
cold start) and then serves invocations, one at a time, for as long as it lives.

Run by offline.runtime as a script (not a module) so that the function sees only its own
code and layers on ``sys.path``, as in Lambda. Protocol: JSON lines on the original stdout;
everything the function prints or logs goes to stderr, which the parent forwards.
"""

import importlib
import json
import os
import sys
import time
import traceback

# This script's folder must not shadow the function's code.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

_protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
os.dup2(2, 1)
sys.stdout = sys.stderr


def send(message: dict) -> None:
    _protocol.write(json.dumps(message, separators=(",", ":")) + "\n")
    _protocol.flush()


class LambdaContext:
    def __init__(self, request_id: str, deadline_ms: int) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.invoked_function_arn = os.environ.get("OFFLINE_FUNCTION_ARN", "")
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = "offline"
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self._deadline_ms - time.time() * 1000))


def load_handler():
    spec = os.environ["_HANDLER"]
    module_path, _, function_name = spec.rpartition(".")
    module = importlib.import_module(module_path.replace("/", "."))
    return getattr(module, function_name)


def install_hooks() -> None:
    """Offline-only instrumentation of this function process (strict IAM checks, fault
    injection): ``OFFLINE_PROCESS_HOOKS`` is a JSON list of Python files, each loaded here
    before the handler and its ``install()`` called. Production code knows nothing of it."""
    import importlib.util

    for n, path in enumerate(json.loads(os.environ.get("OFFLINE_PROCESS_HOOKS") or "[]")):
        spec = importlib.util.spec_from_file_location(f"_offline_hook_{n}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.install()


def main() -> None:
    try:
        install_hooks()
        handler = load_handler()
    except Exception as exc:
        traceback.print_exc()
        send({"type": "init_error", "error": "Runtime.ImportModuleError",
              "message": f"{type(exc).__name__} while importing {os.environ.get('_HANDLER')}"})
        return
    send({"type": "ready"})
    for line in sys.stdin:
        request = json.loads(line)
        context = LambdaContext(request["request_id"], request["deadline_ms"])
        try:
            result = handler(request["event"], context)
        except Exception as exc:
            traceback.print_exc()
            send({"type": "result", "id": request["id"], "ok": False,
                  "error": "Runtime.HandlerError", "message": type(exc).__name__})
            continue
        try:
            send({"type": "result", "id": request["id"], "ok": True, "result": result})
        except (TypeError, ValueError) as exc:
            send({"type": "result", "id": request["id"], "ok": False,
                  "error": "Runtime.MarshalError", "message": str(exc)[:200]})


if __name__ == "__main__":
    main()
