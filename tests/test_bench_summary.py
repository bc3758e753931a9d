"""The benchmarks' summary (bench/proxy.py, also used by bench/store.py): medians over rounds, as ratios to the
baseline the caller names; bench/compare.py's CPU per request."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.compare import Run, cpu_seconds, report
from bench.proxy import (
    NGINX_DIRECT,
    NGINX_PROXY,
    Measurement,
    Target,
    WrkResult,
    markdown_table,
    problems,
    summarise,
)


def measured(target: str, rates: list[float]) -> list[Measurement]:
    return [
        Measurement(number, target, WrkResult(int(rate) * 10, rate, 1.0, 4.0 + number, 0, 0), 0)
        for number, rate in enumerate(rates, start=1)
    ]


def test_ratios_are_to_the_named_baselines_median() -> None:
    targets = [Target(NGINX_DIRECT, "http://a"), Target("gate", "http://b")]
    measurements = measured(NGINX_DIRECT, [900.0, 1000.0, 5000.0]) + measured("gate", [100.0, 150.0, 200.0])
    summaries = summarise(targets, measurements, NGINX_DIRECT)
    assert [summary.vs_baseline for summary in summaries] == [1.0, 0.15]
    assert summaries[1].p99_ms == 6.0  # the median round's
    assert "| vs nginx direct |" in markdown_table(summaries, "nginx direct")


def test_a_missing_baseline_is_named_in_the_error() -> None:
    targets = [Target(NGINX_DIRECT, "http://a")]
    with pytest.raises(ValueError, match="nginx proxy"):
        summarise(targets, measured(NGINX_DIRECT, [1000.0]), NGINX_PROXY)


def test_gate_warnings_and_store_fallback_are_reported_but_only_other_errors_fail_the_run() -> None:
    summaries = summarise([Target(NGINX_PROXY, "http://a")], measured(NGINX_PROXY, [1000.0]))
    missed = "warning (gate.store): store call failed (add_charges: no answer within 0.025 s)"
    switched = "error (gate.store): store unreachable (rate_limit: no answer within 0.025 s)"
    found, notes = problems(summaries, {"gate, 1 worker": [missed, switched], "gate, 2 workers": []})
    assert found == []
    assert notes == [f"gate, 1 worker: 2 lines about overload in gate's log, first: {missed}"]
    crashed = "error (uvicorn.error): Exception in ASGI application"
    found, _ = problems(summaries, {"gate, 1 worker": [missed, crashed]})
    assert found == [f"gate, 1 worker: 1 error lines in gate's log, first: {crashed}"]


def test_wrk_errors_fail_the_run() -> None:
    failing = [Measurement(1, NGINX_PROXY, WrkResult(100, 10.0, 1.0, 2.0, 3, 1), 0)]
    found, _ = problems(summarise([Target(NGINX_PROXY, "http://a")], failing), {})
    assert found == [f"{NGINX_PROXY}: wrk reported 3 non-2xx/3xx responses and 1 socket errors"]


def test_a_comparison_reports_the_median_cpu_per_request_and_the_rounds_it_was_lower_in() -> None:
    old, new = Path("/old"), Path("/new")
    runs = [
        (old, [Run(300.0, 5000.0, 30.0), Run(340.0, 4500.0, 35.0), Run(320.0, 4800.0, 32.0)]),
        (new, [Run(270.0, 5400.0, 27.0), Run(350.0, 4400.0, 36.0), Run(256.0, 5100.0, 28.0)]),
    ]
    text = report(runs)
    assert "| /old | 320 | 4,800 | 32.0 |" in text
    assert "| /new | 270 | 5,100 | 28.0 |" in text
    # Rounds' ratios 0.90, 1.03 and 0.80: their median, not that of the sides' medians (270 / 320, -15.6 %).
    assert "/new used -10.0 % CPU per request against /old (median of the rounds' ratios), less in 2 of 3" in text


def test_cpu_time_is_summed_over_the_processes_given() -> None:
    child = subprocess.Popen([sys.executable, "-c", "sum(range(50_000_000)); import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 30
        while cpu_seconds([child.pid]) < 0.3:
            assert time.monotonic() < deadline, "the child never used CPU"
            time.sleep(0.1)
        own = os.times()
        assert cpu_seconds([os.getpid(), child.pid]) - (own.user + own.system) >= 0.25
    finally:
        child.kill()
        child.wait()
