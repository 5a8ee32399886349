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
