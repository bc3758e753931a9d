"""Rate limits through running gates sharing one Redis: 429 with RateLimit headers for bots, a challenge for
browsers, one combined budget across instances, and requests still answered when the store is gone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.gate_process import GateProcess, start_gate
from tests.support.nginx import Nginx
from tests.support.ports import free_port

RULES = """
agents: [shipped:agents/*.yaml]
limits:
  slow-bots: {rate: 1/min, burst: 3, per: [ip, agent]}
  per-client: {rate: 60/min, burst: 8, per: ip}
guards: [per-client]
rules:
  - {name: bots, match: {agent_class: [http-library, other-bot]}, action: throttle, limit: slow-bots}
default: {action: allow}
"""
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"


@pytest.fixture
def pair(tmp_path: Path, nginx: Nginx, redis_url: str) -> Iterator[tuple[GateProcess, GateProcess]]:
    rules = tmp_path / "rules.yaml"
    # Rate-limit keys from earlier tests are removed, so budgets do not carry over between tests.
    store = redis_url
    with redis.Redis.from_url(store) as client:
        for stale in client.scan_iter(match="gate:rl:*"):
            client.delete(stale)
    rules.write_text(RULES)
    first = start_gate(tmp_path / "a", nginx.url, "--rules", str(rules), "--store", store)
    second = start_gate(tmp_path / "b", nginx.url, "--rules", str(rules), "--store", store)
    yield first, second
    first.stop()
    second.stop()


def test_a_bot_over_its_limit_gets_429_with_ratelimit_headers(pair: tuple[GateProcess, GateProcess]) -> None:
    headers = {"User-Agent": "curl/8.5.0"}
    statuses = [httpx.get(pair[0].url + "/page.html", headers=headers).status_code for _ in range(3)]
    refused = httpx.get(pair[0].url + "/page.html", headers=headers)
    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-policy"] == '"slow-bots";q=1;w=60'
    assert refused.headers["ratelimit"].startswith('"slow-bots";r=0;t=')


def test_instances_sharing_a_store_share_one_budget(pair: tuple[GateProcess, GateProcess]) -> None:
    headers = {"User-Agent": "python-requests/2.32"}
    first, second = pair
    statuses = [httpx.get(gate.url + "/page.html", headers=headers).status_code for gate in (first, second, first)]
    assert statuses == [200, 200, 200]
    assert httpx.get(second.url + "/page.html", headers=headers).status_code == 429


def test_a_browser_over_a_guard_is_challenged_not_refused(pair: tuple[GateProcess, GateProcess]) -> None:
    with httpx.Client(base_url=pair[0].url, headers={"User-Agent": BROWSER}) as browser:
        statuses = [browser.get("/page.html").status_code for _ in range(8)]
        over = browser.get("/page.html")
    assert statuses == [200] * 8
    assert over.status_code == 200
    assert "gate-challenge" in over.text
    metrics = httpx.get(pair[0].metrics_url + "/metrics").text
    assert 'gate_throttled_total{agent_class="browser",limit="per-client"} 1.0' in metrics


def test_without_the_store_requests_are_still_answered(tmp_path: Path, nginx: Nginx) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    gone = f"redis://127.0.0.1:{free_port()}/0"
    gate = start_gate(tmp_path / "gate", nginx.url, "--rules", str(rules), "--store", gone)
    try:
        statuses = {httpx.get(gate.url + "/page.html", headers={"User-Agent": "curl/8.5.0"}).status_code
                    for _ in range(5)}  # fmt: skip
        metrics = httpx.get(gate.metrics_url + "/metrics").text
    finally:
        gate.stop()
    assert statuses == {200}  # fail-open
    assert 'gate_store_errors_total{operation="rate_limit"}' in metrics


def test_a_dry_run_counts_refusals_but_lets_everything_through(tmp_path: Path, nginx: Nginx, redis_url: str) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    gate = start_gate(tmp_path / "gate", nginx.url, "--rules", str(rules), "--dry-run")
    try:
        headers = {"User-Agent": "curl/8.5.0 dry"}
        statuses = [httpx.get(gate.url + "/page.html", headers=headers).status_code for _ in range(5)]
        metrics = httpx.get(gate.metrics_url + "/metrics").text
    finally:
        gate.stop()
    assert statuses == [200] * 5
    assert 'gate_throttled_total{agent_class="http-library",limit="slow-bots"} 2.0' in metrics
