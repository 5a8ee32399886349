"""Benchmark and check: bounded load against offline mode (issue 11, "Bounded load").

    make bench      # or: .venv/bin/python benchmarks/load_offline.py [--clients 50]
                    #        [--accounts 10] [--seconds 30] [--seed 7]

Loopback only: offline mode (the product's program, stack dev) on 127.0.0.1, and
``--clients`` threads, each its own HTTP client, spread over ``--accounts`` accounts
registered over HTTP (and put on the enterprise plan, so plan limits do not turn writes
into 402s). For ``--seconds`` each client sends, one after the other, a seeded random mix:

- writes (~30 %): create a source (``POST /sources``), create a job on one of the
  account's sources (``POST /jobs``), rename a source (``PUT /sources/{id}``), delete a job
  (``DELETE /jobs/{id}``);
- reads (~60 %): list sources and jobs (``GET /sources``, ``GET /jobs``), read one of the
  account's own (``GET /sources/{id}``, ``GET /jobs/{id}``), usage, activity, profile;
- probes (~10 %): another account's source or job by its id, which must answer 404.

It fails (exit status 1) unless: no answer is a 5xx and no request fails at the transport
level; no client ever sees another account's id (in a list, an activity event, or a probe
answered 2xx); and, once the clients stop, each account holds exactly what its clients were
told they created (sources; jobs created less jobs deleted), in its lists and its usage
counters. It prints throughput and p50/p99 latency, overall and per operation.

``run_load(server, ...)`` is the same check for a test (``tests/e2e/test_load.py``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STRIPE_KEY = "sk_test_loadFake00000000000000001"
TIMEOUT = 60.0


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# --------------------------------------------------------------------------- accounts

@dataclass
class Account:
    account_id: str
    token: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    sources: list[str] = field(default_factory=list)        # created (201) by its clients
    jobs: list[str] = field(default_factory=list)           # created and not deleted
    jobs_created: int = 0
    jobs_deleted: int = 0
    ever: set[str] = field(default_factory=set)             # every id its clients created
    seen: set[str] = field(default_factory=set)             # every source/job id its clients saw

    def own(self) -> set[str]:
        with self.lock:
            return set(self.ever)


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Client:
    def __init__(self, base: str, account: Account, tally: Tally, rng: random.Random,
                 others: list[Account]):
        self.base, self.account, self.tally, self.rng, self.others = base, account, tally, rng, others

    def call(self, op: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"authorization": f"Bearer {self.account.token}"}
        if data is not None:
            headers["content-type"] = "application/json"
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as reply:
                status, raw = reply.status, reply.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except Exception as error:   # noqa: BLE001 - counted as a transport failure
            with self.tally.lock:
                self.tally.transport_errors.append(f"{op}: {type(error).__name__}: {error}")
            return 0, None
        elapsed = (time.perf_counter() - started) * 1000
        with self.tally.lock:
            self.tally.latencies[op].append(elapsed)
            self.tally.statuses[status] += 1
            if status >= 500:
                self.tally.server_errors.append(f"{op} {method} {path}: {status} {raw[:200]!r}")
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        return status, payload

    def expect(self, op: str, status: int, wanted: tuple[int, ...], payload: Any) -> bool:
        if status in wanted or status == 0 or status >= 500:
            return status in wanted
        with self.tally.lock:
            self.tally.unexpected.append(f"{op}: {status} {str(payload)[:200]}")
        return False

    def saw(self, where: str, ids: list[str]) -> None:
        """Ids the account's clients were shown; any id another account created is a leak."""
        ids = [i for i in ids if i]
        with self.account.lock:
            self.account.seen.update(ids)
        for other in self.others:
            foreign = other.own().intersection(ids)
            if foreign:
                with self.tally.lock:
                    self.tally.leaks.append(f"{where}: {self.account.account_id} saw "
                                            f"{other.account_id}'s {sorted(foreign)[:3]}")

    # ------------------------------------------------------------ operations

    def create_source(self) -> None:
        name = f"Load {self.rng.randrange(10 ** 6)}"
        status, payload = self.call("POST /sources", "POST", "/sources", {
            "name": name, "type": "stripe", "credentials": {"api_key": STRIPE_KEY}})
        if self.expect("POST /sources", status, (201,), payload):
            with self.account.lock:
                self.account.sources.append(payload["data"]["sourceId"])
                self.account.ever.add(payload["data"]["sourceId"])

    def create_job(self) -> None:
        with self.account.lock:
            sources = list(self.account.sources)
        if not sources:
            return self.create_source()
        status, payload = self.call("POST /jobs", "POST", "/jobs", {
            "sourceId": self.rng.choice(sources), "name": f"Job {self.rng.randrange(10 ** 6)}",
            "schedule": {"frequency": "manual"}, "endpoints": ["customers"]})
        if self.expect("POST /jobs", status, (201,), payload):
            with self.account.lock:
                self.account.jobs.append(payload["data"]["jobId"])
                self.account.ever.add(payload["data"]["jobId"])
                self.account.jobs_created += 1

    def rename_source(self) -> None:
        with self.account.lock:
            sources = list(self.account.sources)
        if not sources:
            return self.create_source()
        source_id = self.rng.choice(sources)
        status, payload = self.call("PUT /sources/{id}", "PUT", f"/sources/{source_id}",
                                    {"name": f"Renamed {self.rng.randrange(10 ** 6)}"})
        if self.expect("PUT /sources/{id}", status, (200,), payload):
            self.saw("PUT /sources/{id}", [payload["data"]["sourceId"]])

    def delete_job(self) -> None:
        with self.account.lock:
            if not self.account.jobs:
                job_id = None
            else:   # taken out first, so two clients never delete the same job
                job_id = self.account.jobs.pop(self.rng.randrange(len(self.account.jobs)))
        if job_id is None:
            return self.create_job()
        status, payload = self.call("DELETE /jobs/{id}", "DELETE", f"/jobs/{job_id}")
        if self.expect("DELETE /jobs/{id}", status, (200,), payload):
            with self.account.lock:
                self.account.jobs_deleted += 1
        else:
            with self.account.lock:    # not deleted (or not known to be): still there
                self.account.jobs.append(job_id)

    def list_sources(self) -> None:
        status, payload = self.call("GET /sources", "GET", "/sources?limit=100")
        if self.expect("GET /sources", status, (200,), payload):
            self.saw("GET /sources", [s["sourceId"] for s in payload["data"]["items"]])

    def list_jobs(self) -> None:
        status, payload = self.call("GET /jobs", "GET", "/jobs?limit=100")
        if self.expect("GET /jobs", status, (200,), payload):
            items = payload["data"]["items"]
            self.saw("GET /jobs", [j["jobId"] for j in items] + [j["sourceId"] for j in items])

    def read_own(self) -> None:
        with self.account.lock:
            choices = [("sources", s) for s in self.account.sources] + \
                [("jobs", j) for j in self.account.jobs]
        if not choices:
            return self.list_sources()
        kind, item_id = self.rng.choice(choices)
        op = f"GET /{kind}/{{id}}"
        status, payload = self.call(op, "GET", f"/{kind}/{item_id}")
        # a job deleted by another client of the account meanwhile answers 404
        wanted = (200,) if kind == "sources" else (200, 404)
        if self.expect(op, status, wanted, payload) and status == 200:
            self.saw(op, [payload["data"].get("sourceId"), payload["data"].get("jobId")])

    def probe_foreign(self) -> None:
        other = self.rng.choice(self.others)
        with other.lock:
            choices = [("sources", s) for s in other.sources] + [("jobs", j) for j in other.jobs]
        if not choices:
            return self.list_jobs()
        kind, item_id = self.rng.choice(choices)
        op = f"GET /{kind}/{{id}} (another account's)"
        status, payload = self.call(op, "GET", f"/{kind}/{item_id}")
        if 200 <= status < 300:
            with self.tally.lock:
                self.tally.leaks.append(f"{op}: {self.account.account_id} read "
                                        f"{other.account_id}'s {item_id}")
        else:
            self.expect(op, status, (404,), payload)

    def usage(self) -> None:
        status, payload = self.call("GET /account/usage", "GET", "/account/usage")
        if self.expect("GET /account/usage", status, (200,), payload) and \
                payload["data"]["accountId"] != self.account.account_id:
            with self.tally.lock:
                self.tally.leaks.append(f"usage of {payload['data']['accountId']} shown to "
                                        f"{self.account.account_id}")

    def activity(self) -> None:
        status, payload = self.call("GET /activity", "GET", "/activity?limit=50")
        if self.expect("GET /activity", status, (200,), payload):
            self.saw("GET /activity", [e.get("resourceId") for e in payload["data"]["items"]
                                       if e.get("resourceType") in ("source", "job")])

    def profile(self) -> None:
        status, payload = self.call("GET /auth/profile", "GET", "/auth/profile")
        self.expect("GET /auth/profile", status, (200,), payload)

    MIX = (("create_source", 10), ("create_job", 10), ("rename_source", 5), ("delete_job", 5),
           ("list_sources", 12), ("list_jobs", 12), ("read_own", 16), ("usage", 8),
           ("activity", 8), ("profile", 4), ("probe_foreign", 10))

    def work(self, until: float) -> None:
        names = [name for name, _ in self.MIX]
        weights = [weight for _, weight in self.MIX]
        while time.monotonic() < until:
            getattr(self, self.rng.choices(names, weights)[0])()


# --------------------------------------------------------------------------- the run

def _register(server, n: int) -> Account:
    import uuid

    reply = server.post("/auth/register", {"email": f"load-{n}-{uuid.uuid4().hex[:10]}@example.com",
                                           "password": "correct horse battery staple 42",
                                           "name": f"Load {n}"})
    assert reply.status == 201, reply
    data = reply.json["data"]
    return Account(account_id=data["account"]["accountId"], token=data["accessToken"])


def _enterprise(server, account: Account) -> None:
    """Offline-only set-up: plan limits off, as a paying customer's (a direct local write)."""
    server.aws("dynamodb").update_item(
        TableName="listbackup-dev-accounts", Key={"accountId": {"S": account.account_id}},
        UpdateExpression="SET #p = :p", ExpressionAttributeNames={"#p": "plan"},
        ExpressionAttributeValues={":p": {"S": "enterprise"}})


def _all(server, account: Account, path: str, key: str) -> list[str]:
    ids, cursor = [], None
    while True:
        query = "?limit=100" + (f"&cursor={urllib.request.quote(cursor)}" if cursor else "")
        reply = server.get(path + query, token=account.token)
        assert reply.status == 200, reply
        ids += [item[key] for item in reply.json["data"]["items"]]
        cursor = reply.json["data"]["nextCursor"]
        if not cursor:
            return ids


def _warm(server, accounts: list[Account], clients: int) -> None:
    """Every route the clients use, called once per would-be concurrent environment, so
    cold starts (a new worker process importing its handler) are not in the figures."""
    account = accounts[0]
    paths = ["/sources", "/jobs", "/account/usage", "/activity", "/auth/profile"]
    threads = [threading.Thread(target=lambda p=p: server.get(p, token=account.token))
               for p in paths for _ in range(min(clients, 10))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run_load(server, *, clients: int = 50, accounts: int = 10, seconds: float = 30.0,
             seed: int = 7, warm: bool = True) -> dict:
    """Drive ``server`` (a started ``tests.e2e.harness.OfflineServer``) and check it; answers
    the figures and the problems found (empty lists when all is well)."""
    registered = [_register(server, n) for n in range(accounts)]
    for account in registered:
        _enterprise(server, account)
    if warm:
        _warm(server, registered, clients)
    tally = Tally()
    rng = random.Random(seed)
    workers = []
    for n in range(clients):
        account = registered[n % accounts]
        others = [a for a in registered if a is not account]
        workers.append(Client(server.url, account, tally, random.Random(rng.random()), others))
    until = time.monotonic() + seconds
    started = time.monotonic()
    threads = [threading.Thread(target=w.work, args=(until,), name=f"client-{i}")
               for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started

    # what each account holds now, against what its clients were told
    mismatches = []
    for account in registered:
        sources = _all(server, account, "/sources", "sourceId")
        jobs = _all(server, account, "/jobs", "jobId")
        if sorted(sources) != sorted(account.sources):
            mismatches.append(f"{account.account_id}: {len(sources)} sources listed, "
                              f"{len(account.sources)} created")
        if sorted(jobs) != sorted(account.jobs) or len(jobs) != account.jobs_created - account.jobs_deleted:
            mismatches.append(f"{account.account_id}: {len(jobs)} jobs listed, {account.jobs_created} "
                              f"created - {account.jobs_deleted} deleted")
        usage = server.get("/account/usage", token=account.token).json["data"]
        if (usage["sources"]["used"], usage["jobs"]["used"]) != (len(account.sources), len(account.jobs)):
            mismatches.append(f"{account.account_id}: usage says {usage['sources']['used']} sources, "
                              f"{usage['jobs']['used']} jobs; clients created {len(account.sources)} "
                              f"and kept {len(account.jobs)}")
        strangers = account.seen - account.own()
        if strangers:
            tally.leaks.append(f"{account.account_id} was shown ids none of its clients created: "
                               f"{sorted(strangers)[:3]}")

    everything = [v for values in tally.latencies.values() for v in values]
    return {
        "clients": clients, "accounts": accounts, "seconds": round(elapsed, 1),
        "requests": len(everything) + len(tally.transport_errors),
        "throughput": round(len(everything) / elapsed, 1) if elapsed else 0.0,
        "p50": round(percentile(everything, 50), 1), "p99": round(percentile(everything, 99), 1),
        "byOperation": {op: {"requests": len(values), "p50": round(percentile(values, 50), 1),
                             "p99": round(percentile(values, 99), 1)}
                        for op, values in sorted(tally.latencies.items())},
        "statuses": dict(sorted(tally.statuses.items())),
        "created": {"sources": sum(len(a.sources) for a in registered),
                    "jobs": sum(a.jobs_created for a in registered),
                    "jobsDeleted": sum(a.jobs_deleted for a in registered)},
        "serverErrors": tally.server_errors, "transportErrors": tally.transport_errors,
        "leaks": tally.leaks, "mismatches": mismatches, "unexpected": tally.unexpected,
    }


def report(figures: dict) -> str:
    lines = [f"{figures['clients']} clients over {figures['accounts']} accounts for "
             f"{figures['seconds']} s: {figures['requests']} requests, {figures['throughput']} req/s, "
             f"latency p50 {figures['p50']} ms, p99 {figures['p99']} ms",
             f"  statuses {figures['statuses']}; created {figures['created']}"]
    for op, row in figures["byOperation"].items():
        lines.append(f"  {op:<40} {row['requests']:>6}  p50 {row['p50']:>8} ms  p99 {row['p99']:>8} ms")
    for name in ("serverErrors", "transportErrors", "leaks", "mismatches", "unexpected"):
        problems = figures[name]
        lines.append(f"  {name}: {len(problems)}" + "".join(f"\n    {p}" for p in problems[:10]))
    return "\n".join(lines)


def problems(figures: dict) -> int:
    return sum(len(figures[name]) for name in ("serverErrors", "transportErrors", "leaks", "mismatches"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--accounts", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    from tests.e2e.harness import OfflineServer

    with OfflineServer() as server:
        figures = run_load(server, clients=args.clients, accounts=args.accounts,
                           seconds=args.seconds, seed=args.seed)
    print(report(figures))
    return 1 if problems(figures) else 0


if __name__ == "__main__":
    sys.exit(main())
