"""The performance suite (benchmarks/run_all.py, issue 12) runs: its cheap figures (sizes,
redeploy churn) and the request-cost counter are exercised here, with no timed assertion -
the timed figures are ratios for `make bench`, too noisy on shared CI machines to gate on."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_the_suite_measures_sizes_and_churn_and_writes_its_table(tmp_path):
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "benchmarks/run_all.py", "--quick", "--only", "2", "3",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(out.read_text())["figures"]
    shown = {f["name"]: f for f in figures if not f.get("detail")}
    assert {"layer", "two evaluations: digests changed"} <= set(shown)
    assert shown["two evaluations: digests changed"]["value"] == "0"
    bundles = [f for f in figures if f["figure"] == 2 and f.get("detail")]
    assert bundles and all(f["value"] <= 100 * 1024 for f in bundles)
    assert shown["layer"]["pass"] is True
    assert all(f["pass"] for f in figures if f["figure"] == 3), [f for f in figures if f["figure"] == 3]
    assert "figure" in done.stdout and "written:" in done.stdout


def test_the_request_cost_counter_sees_every_call_and_no_scan(tmp_path):
    """Figure 6's counting on a small history: the read routes' calls are counted, the
    same at both sizes, and within the target."""
    out = tmp_path / "cost.json"
    done = subprocess.run([sys.executable, "benchmarks/request_cost.py", "--runs", "10", "30",
                           "--skip-journey", "--json", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    history = json.loads(out.read_text())["history"]
    assert history["runs_seen"] == {"10": 10, "30": 30}
    for route, figures in history["routes"].items():
        assert figures["identical"] and 1 <= figures["calls"]["10"] <= 4, (route, figures)
        assert "Scan" not in figures["operations"]


def test_the_journey_counter_charges_each_route_only_its_own_functions_calls():
    """Figure 6's attribution, on hand-made records: a request's calls are its route's
    function's DynamoDB calls while it was in flight (literal paths win over parameters);
    the authorizer's are reported apart, background functions' and other services' are not
    counted, an API function's call outside its requests is shown, and a route answered
    only with errors is not exercised."""
    from benchmarks.request_cost import costs, over_target
    from tests.e2e.journey import Sent

    auth = "listbackup-api-dev-authorizer"
    routes = [
        {"route": "GET /activity/stats", "function": "activity", "authorized": True, "authorizer": auth},
        {"route": "GET /activity/{eventId}", "function": "activity", "authorized": True, "authorizer": auth},
        {"route": "POST /auth/login", "function": "auth", "authorized": False, "authorizer": None},
        {"route": "GET /system/status", "function": "system", "authorized": True, "authorizer": auth},
    ]
    sent = [Sent("GET", "/activity/stats?days=7", 200, 10.0, 11.0),
            Sent("GET", "/activity/evt_1", 200, 20.0, 21.0),
            Sent("POST", "/auth/login", 401, 30.0, 31.0),
            Sent("GET", "/nowhere", 404, 40.0, 41.0)]

    def call(function, at, operation="GetItem", service="dynamodb"):
        return {"kind": "call", "function": function, "service": service, "operation": operation, "time": at}

    records = [call(auth, 10.1), call("activity", 10.2, "Query"), call("activity", 10.3),
               call("jobs-worker", 10.4, "PutItem"), call("activity", 10.5, "GetObject", "s3"),
               *(call("activity", 20.0 + n / 10) for n in range(1, 6)),
               call("activity", 25.0),                     # between its requests: shown apart
               call("auth", 30.5, "Query"), {"kind": "platform", "function": "auth"}]
    got = costs(sent, records, routes)

    assert got["routes"]["GET /activity/stats"]["operations"] == ["Query", "GetItem"]
    assert got["routes"]["GET /activity/{eventId}"]["max_calls"] == 5
    assert got["routes"]["GET /activity/{eventId}"]["pass"] is False
    assert got["routes"]["POST /auth/login"] == {"requests": 1, "statuses": [401], "max_calls": 1,
                                                 "operations": ["Query"], "pass": True}
    assert got["authorizer"] == {"requests": 2, "max_calls": 1, "calls_per_invocation": [0, 1]}
    assert got["not_exercised"] == ["GET /system/status", "POST /auth/login"]
    assert got["unmatched_requests"] == ["GET /nowhere (404)"]
    assert got["calls_outside_requests"] == {"activity": ["GetItem"]}
    assert got["dynamodb_calls_total"] == 11 and got["scans"] == [] and got["pass"] is False
    assert over_target(got) == ["GET /activity/{eventId}: 5 = GetItemx5"]
    records.append(call("activity", 20.9, "Scan"))
    assert costs(sent, records, routes)["scans"] == ["activity Scan"]
