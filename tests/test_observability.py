"""The dashboard and the alerts read metrics gate really exports: every metric they name is in /metrics after
traffic through every action, the alert rules pass promtool (and their unit tests), and a real Prometheus scraping
a real gate answers every dashboard query."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.policy.helpers import browser_headers
from tests.support.gate_process import GateProcess, start_gate
from tests.support.nginx import Nginx
from tests.support.ports import free_port, stop, wait_for_port
from tests.support.solver import read_challenge, solve, submit

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
DASHBOARD = DEPLOY / "grafana" / "gate-dashboard.json"
ALERTS = DEPLOY / "prometheus" / "gate-alerts.yml"
METRIC = re.compile(r"\bgate_[a-z0-9_]+")
HISTOGRAM_SERIES = re.compile(r"_(bucket|sum|count)$")

# One request per action the shipped rules take, and the rule that takes it.
TRAFFIC = [
    ("/feed", "curl/8.5.0", "allow"),  # feeds
    ("/page.html", "curl/8.5.0", "challenge"),  # libraries-and-headless-browsers
    ("/page.html", "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)", "deny"),  # scanners
    ("/page.html", "Mozilla/5.0 (compatible; ClaudeBot/1.0; +claudebot@anthropic.com)", "terms"),
    ("/page.html", "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "throttle"),
]


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def alert_expressions() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def metric_names(expressions: list[str]) -> set[str]:
    """The gate metrics the expressions read, as /metrics declares them (a histogram's _bucket is its name)."""
    return {HISTOGRAM_SERIES.sub("", name) for expression in expressions for name in METRIC.findall(expression)}


def declared(metrics_text: str) -> set[str]:
    names = {line.split()[2] for line in metrics_text.splitlines() if line.startswith("# TYPE ")}
    return {name.removesuffix("_total") for name in names} | names


@pytest.fixture(scope="module")
def busy_gate(tmp_path_factory: pytest.TempPathFactory, nginx: Nginx, redis_url: str) -> Iterator[GateProcess]:
    """gate with the shipped rules on Redis, after one request per action and a solved challenge."""
    gate = start_gate(tmp_path_factory.mktemp("observed"), nginx.url, "--store", redis_url)
    try:
        with httpx.Client(base_url=gate.url) as client:
            for path, user_agent, _ in TRAFFIC:
                client.get(path, headers={"User-Agent": user_agent})
        with httpx.Client(base_url=gate.url, headers=browser_headers()) as browser:  # the shipped light challenge
            challenge = read_challenge(browser.get("/page.html").text)
            submit(browser, challenge, solve(challenge.token, challenge.difficulty))
        yield gate
    finally:
        gate.stop()


def test_the_dashboard_has_queries_for_every_part_of_gate() -> None:
    names = metric_names(dashboard_expressions())
    for expected in ("gate_requests_total", "gate_agent_requests_total", "gate_challenges_solved_total",
                     "gate_throttled_total", "gate_upstream_duration_seconds", "gate_store_fallback",
                     "gate_verifications_total", "gate_terms_served_total"):  # fmt: skip
        assert expected in names
    variables = {variable["name"] for variable in json.loads(DASHBOARD.read_text())["templating"]["list"]}
    assert {"job", "instance"} <= variables
    assert all('instance=~"$instance"' in expression for expression in dashboard_expressions())


def test_every_metric_the_dashboard_and_alerts_read_is_exported(busy_gate: GateProcess) -> None:
    exported = httpx.get(busy_gate.metrics_url + "/metrics").text
    wanted = metric_names(dashboard_expressions()) | metric_names(alert_expressions())
    missing = sorted(wanted - declared(exported))
    assert not missing, f"the dashboard or alerts read metrics gate does not export: {missing}"
    for _, _, action in TRAFFIC:
        assert f'gate_requests_total{{action="{action}"' in exported
    assert 'gate_challenges_solved_total{kind="js"} 1.0' in exported
    assert 'gate_store_duration_seconds_count{operation="set"}' in exported  # the solved challenge, spent


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool comes with Debian's prometheus (make system-deps)"
)
def test_alert_rules_are_valid_and_fire_when_they_should() -> None:
    checked = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        ["promtool", "test", "rules", str(DEPLOY / "prometheus" / "gate-alerts.test.yml")],
        capture_output=True,
        text=True,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.fixture
def prometheus(tmp_path: Path, busy_gate: GateProcess) -> Iterator[str]:
    """A real Prometheus scraping busy_gate every second; yields its URL."""
    binary = shutil.which("prometheus")
    assert binary is not None, "prometheus comes with Debian's prometheus package (make system-deps installs it)"
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "gate", "static_configs": [{"targets": [f"127.0.0.1:{busy_gate.metrics_port}"]}]}
                ],
            }
        )
    )
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_port("127.0.0.1", port, process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def query(prometheus: str, expression: str) -> list[dict[str, Any]]:
    answer = httpx.get(prometheus + "/api/v1/query", params={"query": expression}).json()
    assert answer["status"] == "success", f"{expression}: {answer}"
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def test_a_real_prometheus_answers_every_dashboard_query(prometheus: str, busy_gate: GateProcess) -> None:
    deadline = time.monotonic() + 30
    while not query(prometheus, 'sum by (action) (gate_requests_total{job="gate"})'):
        assert time.monotonic() < deadline, "Prometheus never scraped gate"
        time.sleep(0.5)
    actions = {series["metric"]["action"] for series in query(prometheus, "sum by (action) (gate_requests_total)")}
    assert {action for _, _, action in TRAFFIC} <= actions
    grafana = {"$__rate_interval": "1m", "$__range": "5m", "$job": ".*", "$instance": ".*"}
    for expression in dashboard_expressions():
        for variable, value in grafana.items():
            expression = expression.replace(variable, value)
        query(prometheus, expression)  # every query parses and evaluates
