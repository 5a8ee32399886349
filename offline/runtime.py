"""Functions run as Lambda runs them: each invocation in an execution environment of its
own function (a worker process with the function's handler, code, layers, environment,
memory and timeout), a cold start on an environment's first call, environments reused
while warm, one invocation at a time per environment, and a function over its timeout
stopped and reported as a timeout.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from offline.model import Function

WORKER = Path(__file__).resolve().parent / "worker.py"
INIT_TIMEOUT = 10.0        # Lambda's limit on a cold start's initialisation
DEFAULT_MAX_INSTANCES = 10
CODE_CACHE = Path(__file__).resolve().parent.parent / ".build" / "offline"


@dataclass
class Invocation:
    ok: bool
    result: Any = None
    error: str | None = None        # "timeout", "Runtime.HandlerError", "Runtime.InitError", ...
    message: str = ""
    duration_ms: float = 0.0
    cold_start: bool = False


def unpack(archive: Path, cache: Path = CODE_CACHE) -> Path:
    """A zip's contents in a folder of their own (once per distinct zip); a folder as is."""
    if archive.is_dir():
        return archive
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:20]
    target = cache / digest
    if not target.is_dir():
        tmp = cache / f".{digest}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process unpacked it first
            shutil.rmtree(tmp, ignore_errors=True)
    return target


class _Instance:
    """One execution environment: a worker process and the threads reading it."""

    def __init__(self, function: Function, env: dict[str, str], log: Callable[[str], None]):
        self.function = function
        self.replies: queue.Queue = queue.Queue()
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(WORKER)], env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
            start_new_session=True)
        self.fresh = True
        threading.Thread(target=self._read_replies, daemon=True).start()
        threading.Thread(target=self._forward_logs, args=(log,), daemon=True).start()

    def _read_replies(self) -> None:
        for line in self.process.stdout:
            try:
                self.replies.put(json.loads(line))
            except ValueError:
                continue
        self.replies.put({"type": "exit"})

    def _forward_logs(self, log: Callable[[str], None]) -> None:
        for line in self.process.stderr:
            log(f"[{self.function.name}] {line.rstrip()}")

    def wait_ready(self) -> dict:
        try:
            return self.replies.get(timeout=INIT_TIMEOUT)
        except queue.Empty:
            return {"type": "init_error", "error": "Runtime.InitError",
                    "message": f"initialisation took over {INIT_TIMEOUT:.0f} s"}

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, 9)
            except OSError:
                self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            try:
                stream.close()
            except Exception:
                pass


class FunctionPool:
    """Invoke any function of the deployment by name; thread-safe."""

    def __init__(self, functions: dict[str, Function], *, base_env: dict[str, str],
                 substitutions: dict[str, str] | None = None,
                 log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
                 max_instances: int = DEFAULT_MAX_INSTANCES, region: str = "us-east-1"):
        self.functions = functions
        self.base_env = base_env
        self.substitutions = substitutions or {}
        self.log = log
        self.max_instances = max_instances
        self.region = region
        self._lock = threading.Condition()
        self._idle: dict[str, list[_Instance]] = {name: [] for name in functions}
        self._count: dict[str, int] = {name: 0 for name in functions}
        self._all: set[_Instance] = set()
        self._ids = itertools.count(1)
        self._closed = False

    # ------------------------------------------------------------ environment

    def environment(self, function: Function) -> dict[str, str]:
        paths = [str(unpack(function.code))]
        for layer in function.layers:
            folder = unpack(layer)
            paths.append(str(folder / "python") if (folder / "python").is_dir() else str(folder))
        variables = {k: self._substitute(v) for k, v in function.environment.items()}
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8", "TZ": "UTC", "PYTHONDONTWRITEBYTECODE": "1",
            **self.base_env,
            **variables,
            "PYTHONPATH": os.pathsep.join(paths),
            "_HANDLER": function.handler,
            "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region,
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(function.timeout),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
            "OFFLINE_FUNCTION_ARN": function.arn,
        }

    def _substitute(self, value: str) -> str:
        # longest first, so a URL is replaced before any shorter value inside it
        for mock, real in sorted(self.substitutions.items(), key=lambda kv: -len(kv[0])):
            value = value.replace(mock, real)
        return value

    # ------------------------------------------------------------ instances

    def _acquire(self, name: str) -> tuple[_Instance | None, Invocation | None]:
        function = self.functions[name]
        limit = min(self.max_instances, function.reserved_concurrency or self.max_instances)
        with self._lock:
            while True:
                if self._closed:
                    return None, Invocation(ok=False, error="Runtime.Shutdown", message="stopping")
                idle = self._idle[name]
                while idle:
                    instance = idle.pop()
                    if instance.alive():
                        return instance, None
                    self._forget(instance)
                if self._count[name] < limit:
                    self._count[name] += 1
                    break
                self._lock.wait(timeout=1)
        try:
            instance = _Instance(function, self.environment(function), self.log)
        except Exception as exc:
            with self._lock:
                self._count[name] -= 1
                self._lock.notify_all()
            return None, Invocation(ok=False, error="Runtime.InitError", message=str(exc)[:200])
        with self._lock:
            self._all.add(instance)
        ready = instance.wait_ready()
        if ready.get("type") != "ready":
            self._discard(instance)
            self.log(f"[{name}] cold start failed: {ready.get('message', 'worker exited')}")
            return None, Invocation(ok=False, error=ready.get("error", "Runtime.InitError"),
                                    message=ready.get("message", "the function did not start"),
                                    cold_start=True)
        return instance, None

    def _forget(self, instance: _Instance) -> None:
        self._all.discard(instance)
        self._count[instance.function.name] -= 1
        self._lock.notify_all()

    def _discard(self, instance: _Instance) -> None:
        instance.kill()
        with self._lock:
            if instance in self._all:
                self._forget(instance)

    def _release(self, instance: _Instance) -> None:
        with self._lock:
            if self._closed:
                pass
            else:
                self._idle[instance.function.name].append(instance)
                self._lock.notify_all()
                return
        self._discard(instance)

    # ------------------------------------------------------------ invoke

    def invoke(self, name: str, event: Any) -> Invocation:
        if name not in self.functions:
            return Invocation(ok=False, error="ResourceNotFoundException", message=f"no function {name}")
        function = self.functions[name]
        started = time.monotonic()
        instance, failure = self._acquire(name)
        if failure is not None:
            failure.duration_ms = (time.monotonic() - started) * 1000
            return failure
        cold = instance.fresh
        instance.fresh = False
        request_id = str(uuid.uuid4())
        call_id = next(self._ids)
        begun = time.monotonic()
        deadline_ms = int((time.time() + function.timeout) * 1000)
        try:
            instance.process.stdin.write(json.dumps(
                {"id": call_id, "event": event, "request_id": request_id,
                 "deadline_ms": deadline_ms}, separators=(",", ":")) + "\n")
            instance.process.stdin.flush()
        except (OSError, ValueError):
            self._discard(instance)
            return Invocation(ok=False, error="Runtime.ExitError", message="the environment exited",
                              cold_start=cold)
        try:
            reply = instance.replies.get(timeout=function.timeout)
        except queue.Empty:
            self._discard(instance)
            elapsed = time.monotonic() - begun
            self.log(f"[{name}] {request_id} Task timed out after {elapsed:.2f} seconds")
            return Invocation(ok=False, error="timeout",
                              message=f"Task timed out after {function.timeout:.2f} seconds",
                              duration_ms=elapsed * 1000, cold_start=cold)
        duration = (time.monotonic() - begun) * 1000
        if reply.get("type") != "result":
            self._discard(instance)
            self.log(f"[{name}] {request_id} the environment exited during the invocation")
            return Invocation(ok=False, error="Runtime.ExitError", message="the environment exited",
                              duration_ms=duration, cold_start=cold)
        self._release(instance)
        if reply["ok"]:
            return Invocation(ok=True, result=reply.get("result"), duration_ms=duration, cold_start=cold)
        return Invocation(ok=False, error=reply.get("error"), message=reply.get("message", ""),
                          duration_ms=duration, cold_start=cold)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            instances = list(self._all)
            self._lock.notify_all()
        for instance in instances:
            instance.kill()
