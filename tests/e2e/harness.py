"""Offline mode as a test fixture: the real entry point in a subprocess, spoken to over HTTP.

    with OfflineServer() as server:                 # the product's program, stack dev
        status, body = server.get("/system/health")

Scenarios of later issues add a test that uses the session's ``offline`` fixture (see
``tests/e2e/conftest.py``) and, for state the API cannot create yet, ``server.aws(...)``:
a boto3 client of the server's local AWS.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
READY = re.compile(r"^ready: (http://127\.0\.0\.1:\d+/v2)$")
AWS_LINE = re.compile(r"^aws: (http://127\.0\.0\.1:\d+)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc), including new sessions it started."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Response:
    def __init__(self, status: int, headers: dict[str, str], raw: bytes):
        self.status, self.headers, self.raw = status, headers, raw

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.raw[:200]!r}>"


class OfflineServer:
    def __init__(self, *args: str, program: Path | None = None, stack: str = "dev",
                 start_timeout: float = 90.0):
        self.port = free_port()
        self.args = ["--port", str(self.port), "--stack", stack, *args]
        if program is not None:
            self.args += ["--program", str(program)]
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.url = ""            # http://127.0.0.1:PORT/v2
        self.root = ""           # http://127.0.0.1:PORT
        self.aws_endpoint = ""
        self.output: list[str] = []   # everything the server printed (stdout and stderr)
        self._lock = threading.Lock()

    # ------------------------------------------------------------ life cycle

    def start(self) -> "OfflineServer":
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "offline", *self.args], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        ready = threading.Event()

        def read() -> None:
            for line in self.process.stdout:
                line = line.rstrip("\n")
                with self._lock:
                    self.output.append(line)
                if (m := AWS_LINE.match(line)):
                    self.aws_endpoint = m.group(1)
                if (m := READY.match(line)):
                    self.url = m.group(1)
                    self.root = self.url[: -len("/v2")]
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        while not ready.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("offline mode did not start:\n" + self.log_text())
        return self

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def __enter__(self) -> "OfflineServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_text(self) -> str:
        with self._lock:
            return "\n".join(self.output)

    def wait_for_log(self, pattern: str, timeout: float = 15.0) -> str:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for line in self.output:
                    if regex.search(line):
                        return line
            time.sleep(0.1)
        raise AssertionError(f"no log line matching {pattern!r}:\n{self.log_text()[-4000:]}")

    # ------------------------------------------------------------ HTTP

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = None,
                headers: dict[str, str] | None = None, base: str | None = None) -> Response:
        """``path`` under /v2 (``/system/health``) unless ``base`` says otherwise."""
        data = None
        all_headers = dict(headers or {})
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            all_headers.setdefault("content-type", "application/json")
        if token is not None:
            all_headers["authorization"] = f"Bearer {token}"
        url = (self.url if base is None else self.root + base) + path
        request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                return Response(reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())

    def get(self, path: str, **kwargs) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs) -> Response:
        return self.request("POST", path, body, **kwargs)

    # ------------------------------------------------------------ local AWS

    def aws(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.aws_endpoint, region_name="us-east-1",
                            aws_access_key_id="offline", aws_secret_access_key="offline")

    def eventually(self, check, timeout: float = 20.0, interval: float = 0.2):
        """Poll ``check()`` until it returns something truthy; return that."""
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"not true within {timeout} s:\n{self.log_text()[-3000:]}")
            time.sleep(interval)
