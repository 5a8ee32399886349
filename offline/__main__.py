"""``python -m offline``: the whole backend on this machine, driven by the Pulumi program.

    python -m offline [--port 8787] [--stack dev] [--program DIR]
                      [--platform-url ID=URL ...] [--stripe-api-base URL] [--schedule-speed N]
                      [--faults PLAN.json] [--strict [--strict-revoke FUNCTION=ACTION ...]]
    python -m offline preview [--stack main] [--program DIR]

AWS is a moto server on 127.0.0.1; the program is evaluated under Pulumi's mocks and what
it declares is created there; a local gateway plays API Gateway in front of the real
handlers; queue, bucket and schedule triggers run. State is in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = ("keap", "stripe", "mailchimp", "zendesk", "shopify", "gohighlevel",
             "activecampaign", "hubspot", "google-drive", "dropbox", "box")
ACCOUNT = "123456789012"


class StartError(Exception):
    """A start-up failure worth one clear line."""


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _platform_url(text: str) -> tuple[str, str]:
    platform, sep, url = text.partition("=")
    if not sep or platform not in PLATFORMS:
        raise argparse.ArgumentTypeError(
            f"expected ID=URL with ID one of {', '.join(PLATFORMS)}; got {text!r}")
    if not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{platform}: URL must start with http:// or https://")
    return platform, url.rstrip("/")


def _config_pair(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
        if isinstance(value, dict):     # a JSON object stays a string setting
            value = raw
    except ValueError:
        value = raw
    return (key if ":" in key else f"listbackup:{key}"), value


def _revocation(text: str) -> tuple[str, str]:
    function, sep, action = text.partition("=")
    if not sep or not function or ":" not in action:
        raise argparse.ArgumentTypeError(f"expected FUNCTION=service:Action, got {text!r}")
    return function, action


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m offline", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", choices=("serve", "preview"), default="serve")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--stack", default=None, help="dev (serve) or main (preview) by default")
    parser.add_argument("--program", type=Path, default=ROOT, help="the Pulumi program's folder")
    parser.add_argument("--platform-url", type=_platform_url, action="append", default=[],
                        metavar="ID=URL", help="send a platform's API, OAuth and file hosts here")
    parser.add_argument("--stripe-api-base", default=None, metavar="URL",
                        help="billing's Stripe API (e.g. a localstripe server)")
    parser.add_argument("--config", type=_config_pair, action="append", default=[],
                        metavar="KEY=VALUE", help="override one of the stack's settings, as "
                        "`pulumi config set` would (e.g. oauthClients='{...}')")
    parser.add_argument("--schedule-speed", type=float, default=1.0, metavar="N",
                        help="run schedules N times faster (60: rate(1 minute) fires every second)")
    parser.add_argument("--faults", type=Path, default=None, metavar="PLAN.json",
                        help="offline tests only: make the functions' AWS calls fail (or their "
                        "process die) as the plan says; see offline/faults.py")
    parser.add_argument("--strict", action="store_true",
                        help="least privilege, proven: each function runs as its own IAM identity "
                        "under moto's IAM enforcement, and every AWS call is checked against its "
                        "function's policy, resources included; see offline/strict.py")
    parser.add_argument("--strict-revoke", type=_revocation, action="append", default=[],
                        metavar="FUNCTION=ACTION", help="with --strict, run as if the program had "
                        "not granted ACTION to FUNCTION (to see a missing permission fail)")
    args = parser.parse_args(argv)
    args.stack = args.stack or ("main" if args.command == "preview" else "dev")
    return args


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Offline:
    """Everything offline mode starts, and how to stop it."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.moto = None
        self.pool = None
        self.gateway = None
        self.pollers: list = []
        self.scheduler = None
        self.deployment = None
        self.aws_endpoint = ""
        self.strict = None

    def start(self) -> str:
        # Fake credentials for everything in this process and its workers: nothing here may
        # ever reach real AWS.
        for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            os.environ.pop(key, None)
        fake = {"AWS_ACCESS_KEY_ID": "offline", "AWS_SECRET_ACCESS_KEY": "offline",
                "AWS_SESSION_TOKEN": "offline", "AWS_DEFAULT_REGION": "us-east-1"}
        os.environ.update(fake)

        from offline.evaluate import evaluate
        from offline.model import from_evaluation

        program = self.args.program.resolve()
        if not (program / "__main__.py").is_file() or not (program / "Pulumi.yaml").is_file():
            raise StartError(f"{program} is not a Pulumi program (no __main__.py or Pulumi.yaml)")
        if not (program / f"Pulumi.{self.args.stack}.yaml").is_file():
            raise StartError(f"no stack {self.args.stack!r}: {program}/Pulumi.{self.args.stack}.yaml is missing")
        try:
            evaluation = evaluate(self.args.stack, program, overrides=dict(self.args.config))
            self.deployment = from_evaluation(evaluation)
        except Exception as exc:
            raise StartError(f"the program failed to evaluate: {type(exc).__name__}: {exc}") from exc
        if getattr(self.args, "strict", False):
            from offline import strict

            policies = strict.declared_policies(evaluation)
            try:
                strict.revoke(policies, self.args.strict_revoke)
            except strict.StrictError as exc:
                raise StartError(str(exc)) from None
            self.strict = strict.Strict(self.deployment, policies, log=_log)
        elif getattr(self.args, "strict_revoke", None):
            raise StartError("--strict-revoke needs --strict")
        self.fault_plan = None
        if getattr(self.args, "faults", None) is not None:
            from offline import faults

            try:
                self.fault_plan = faults.load(self.args.faults)
            except faults.PlanError as exc:
                raise StartError(str(exc)) from None
            for change in faults.prepare(self.fault_plan, self.deployment):
                _log(f"faults: {change}")

        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per AWS call

        moto_port = _free_port()
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        self.moto.start()
        endpoint = self.aws_endpoint = f"http://127.0.0.1:{moto_port}"
        os.environ["AWS_ENDPOINT_URL"] = endpoint

        import boto3

        session = boto3.Session(region_name="us-east-1")
        from offline.provision import provision

        provisioned = provision(self.deployment, session)
        if self.strict is not None:     # before moto's IAM enforcement starts, which it starts
            self.strict.provision(session, provisioned.substitutions)

        from offline.runtime import FunctionPool

        # The API's public URL, wherever the program put it, is this gateway here.
        gateway_url = f"http://127.0.0.1:{self.args.port}/v2"
        for public in (self.deployment.outputs.get("apiUrl"),
                       self.deployment.api.endpoint if self.deployment.api else None):
            if isinstance(public, str) and public:
                provisioned.substitutions[public] = gateway_url

        base_env = {**fake, "AWS_ENDPOINT_URL": endpoint}
        # Offline-only redirections: set here and nowhere else, so the public API can
        # never point a function at another host.
        if self.args.platform_url:
            base_env["LISTBACKUP_PLATFORM_URLS"] = json.dumps(dict(self.args.platform_url))
        if self.args.stripe_api_base:
            base_env["LISTBACKUP_STRIPE_API_BASE"] = self.args.stripe_api_base.rstrip("/")
        if self.fault_plan is not None:
            from offline import faults

            base_env = faults.process_env(self.fault_plan, base_env)
            _log(f"faults: injecting faults from {self.fault_plan.path} "
                 f"({len(self.fault_plan.faults)} rule(s) now; the file is re-read when it changes)")
        if self.strict is not None:
            self.strict.add_hook(base_env)
        self.pool = FunctionPool(self.deployment.functions, base_env=base_env,
                                 substitutions=provisioned.substitutions, log=_log)
        if self.strict is not None:     # each function's own identity and policy
            self.strict.attach(self.pool)

        from offline.triggers import QueuePoller, Scheduler

        sqs = session.client("sqs")
        for mapping in self.deployment.mappings:
            if not mapping.enabled:
                continue
            queue = self.deployment.queues[mapping.queue]
            poller = QueuePoller(mapping, queue, provisioned.queue_urls[mapping.queue], sqs,
                                 self.pool.invoke, log=_log)
            poller.start()
            self.pollers.append(poller)
        if self.deployment.schedules:
            self.scheduler = Scheduler(self.deployment.schedules, self.pool.invoke,
                                       speed=self.args.schedule_speed, log=_log)
            self.scheduler.start()

        from offline.gateway import Gateway

        documents = {}
        if program == ROOT:   # the product's route table describes the product's program
            from handlers.openapi import document

            documents["/openapi.json"] = document
        helpers = {"emails": sent_emails, "resources": self.deployment.summary}
        if self.strict is not None:
            helpers.update(self.strict.helpers())
        self.gateway = Gateway(self.deployment.api, self.pool.invoke, base_path="/v2",
                               helpers=helpers,
                               documents=documents, log=_log)
        try:
            self.gateway.start("127.0.0.1", self.args.port)
        except OSError as exc:
            raise StartError(f"cannot listen on 127.0.0.1:{self.args.port}: {exc.strerror or exc}") from exc
        return self.gateway.url

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        for poller in self.pollers:   # all wind down together, then each is joined
            poller.request_stop()
        for poller in self.pollers:
            poller.stop()
        if self.pool is not None:
            self.pool.close()
        if self.strict is not None:
            self.strict.close()
        if self.moto is not None:
            self.moto.stop()


def sent_emails() -> list[dict[str, Any]]:
    """E-mails the functions sent through SES, oldest first: sender, recipients, subject and
    the plain-text part (what a user would read)."""
    from email import message_from_string
    from email.policy import default

    from moto.ses.models import ses_backends

    out = []
    for message in ses_backends[ACCOUNT]["us-east-1"].sent_messages:
        raw = getattr(message, "raw_data", None)
        if raw is not None:
            parsed = message_from_string(raw, policy=default)
            text = parsed.get_body(preferencelist=("plain",))
            out.append({"id": message.id, "from": str(parsed["From"] or ""),
                        "to": [a.strip() for a in str(parsed["To"] or "").split(",") if a.strip()],
                        "subject": str(parsed["Subject"] or ""),
                        "text": text.get_content() if text is not None else ""})
            continue
        destinations = getattr(message, "destinations", {}) or {}
        out.append({"id": message.id, "from": getattr(message, "source", None),
                    "to": destinations.get("ToAddresses", []) if isinstance(destinations, dict) else [],
                    "subject": getattr(message, "subject", None), "text": getattr(message, "body", None)})
    return out


def preview(args: argparse.Namespace) -> int:
    """Per service, what the stack would create: for reviewers without cloud credentials."""
    from offline.evaluate import evaluate

    evaluation = evaluate(args.stack, args.program.resolve())
    components = {r.urn: r for r in evaluation.resources if r.type.startswith("listbackup:")}
    print(f"stack {args.stack}: {len(evaluation.resources)} resources")
    for urn, component in components.items():
        children = [r for r in evaluation.resources if r.parent == urn]
        print(f"\n{component.name} ({component.type}): {len(children)} resources")
        by_type: dict[str, list[str]] = {}
        for child in children:
            physical = child.inputs.get("name") or (
                child.inputs.get("bucket") if child.type == "aws:s3/bucket:Bucket" else None) or child.name
            by_type.setdefault(child.type, []).append(str(physical))
        for type_, names in sorted(by_type.items()):
            print(f"  {len(names):>3} {type_}: {', '.join(sorted(names))}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "preview":
        return preview(args)
    if not _port_free(args.port):
        print(f"offline: port {args.port} on 127.0.0.1 is busy (is offline mode already running?); "
              "choose another with --port", file=sys.stderr)
        return 2
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    started = time.monotonic()
    offline = Offline(args)
    try:
        url = offline.start()
    except StartError as exc:
        print(f"offline: {exc}", file=sys.stderr)
        offline.stop()
        return 1
    except Exception as exc:  # one clear line, not a traceback
        print(f"offline: failed to start: {type(exc).__name__}: {exc}", file=sys.stderr)
        offline.stop()
        return 1
    print(f"aws: {offline.aws_endpoint} (moto; any credentials, region us-east-1)", flush=True)
    print(f"ready: {url}", flush=True)
    print(f"offline: stack {args.stack}, started in {time.monotonic() - started:.1f} s; "
          "state is in memory (a restart starts empty); Ctrl-C stops it", flush=True)
    while not stopping.wait(0.5):
        pass
    print("offline: stopping", file=sys.stderr, flush=True)
    offline.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
