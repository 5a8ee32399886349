"""Bounded load through offline mode (issue 11, "Bounded load"), short: 20 clients over 10
accounts for 10 seconds, mixed reads and writes (``benchmarks/load_offline.py``, which
``make bench`` runs at 50 clients for 30 s). No 5xx, no request failing at the transport
level, no client shown another account's ids, and each account holds exactly what its
clients were told they created, in its lists and its usage counters."""

from __future__ import annotations

from benchmarks.load_offline import report, run_load


def test_twenty_clients_over_ten_accounts_for_ten_seconds(offline):
    figures = run_load(offline, clients=20, accounts=10, seconds=10, seed=11)
    print("\n" + report(figures))
    assert figures["requests"] > 100, figures
    assert figures["serverErrors"] == [] and figures["transportErrors"] == [], report(figures)
    assert figures["leaks"] == [], report(figures)
    assert figures["mismatches"] == [], report(figures)
    assert figures["created"]["sources"] > 0 and figures["created"]["jobs"] > 0, figures
