"""Rate limits through running gates sharing one Redis (or a Redis Cluster): 429 with RateLimit headers for bots,
a challenge for browsers, one combined budget across instances, escalation to harder challenges and bans, the site's
load in rules, and requests still answered when the store is gone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.support.gate_process import GateProcess, start_gate
from tests.support.nginx import Nginx
from tests.support.ports import free_port, stop
from tests.support.redis_server import start_redis_server

RULES = """
agents: [shipped:agents/*.yaml]
limits:
  slow-bots: {rate: 1/min, burst: 3, per: [ip, agent]}
  per-client: {rate: 6/min, burst: 8, per: ip}  # one back every 10 s: nine requests never span that, however slow
guards: [per-client]
bans: {after: 3, window: 1m, duration: 1h}
rules:
  - {name: bots, match: {agent_class: [http-library, other-bot]}, action: throttle, limit: slow-bots}
default: {action: allow}
"""
LOAD_RULES = """
agents: [shipped:agents/*.yaml]
load: {requests: 3/s, hold: 1m}
rules:
  - {name: busy-browsers, match: {agent_class: browser, load: busy}, action: challenge}
default: {action: allow}
"""
ROOMY_RULES = """
agents: [shipped:agents/*.yaml]
limits:
  per-client: {rate: 60/min, burst: 1000, per: ip}
guards: [per-client]
default: {action: allow}
"""
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"


def redis_client(url: str) -> Any:
    if url.startswith("redis+cluster://"):
        return redis.RedisCluster.from_url("redis://" + url.removeprefix("redis+cluster://"))
    return redis.Redis.from_url(url)


def forget_clients(url: str) -> None:
    """Remove what earlier tests left about their client (always 127.0.0.1): limits, strikes, bans, burnt passes."""
    with redis_client(url) as client:
        for pattern in ("gate:rl:*", "gate:strikes:*", "gate:ban:*", "gate:burns:*"):
            for stale in client.scan_iter(match=pattern):
                client.delete(stale)


def keys_without_ttl(url: str) -> list[bytes]:
    """Every gate key in the store that would live forever (the whole keyspace is scanned)."""
    with redis_client(url) as client:
        return [key for key in client.scan_iter(match="gate:*") if client.pttl(key) == -1]


def challenge_difficulty(page: str) -> int:
    found = re.search(r'"difficulty":\s*(\d+)', page)
    assert found, "not a challenge page"
    return int(found.group(1))


def run_gate(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gate", *arguments], capture_output=True, text=True, timeout=30)


@pytest.fixture(params=["redis", "cluster"])
def pair(request: pytest.FixtureRequest, tmp_path: Path, nginx: Nginx) -> Iterator[tuple[GateProcess, GateProcess]]:
    """Two gates sharing one store: a Redis, or a three-node Redis Cluster."""
    rules = tmp_path / "rules.yaml"
    store = request.getfixturevalue("redis_url" if request.param == "redis" else "redis_cluster_url")
    forget_clients(store)
    rules.write_text(RULES)
    first = start_gate(tmp_path / "a", nginx.url, "--rules", str(rules), "--store", store)
    second = start_gate(tmp_path / "b", nginx.url, "--rules", str(rules), "--store", store)
    yield first, second
    first.stop()
    second.stop()
    assert keys_without_ttl(store) == []


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


def test_repeated_refusals_ban_the_address_until_it_is_lifted(pair: tuple[GateProcess, GateProcess]) -> None:
    first, second = pair
    bot = {"User-Agent": "curl/8.5.0"}
    statuses = [httpx.get(first.url + "/page.html", headers=bot).status_code for _ in range(6)]
    banned = httpx.get(second.url + "/page.html", headers={"User-Agent": "Wget/1.21"})  # any agent, any instance
    assert statuses == [200, 200, 200, 429, 429, 429]
    assert banned.status_code == 403
    assert 3500 < int(banned.headers["retry-after"]) <= 3600
    assert first.metric("gate_bans_total", limit="slow-bots") == 1

    listed = run_gate("bans", "--admin", f"127.0.0.1:{second.metrics_port}", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(ban["address"], ban["limit"], ban["strikes"]) for ban in json.loads(listed.stdout)["bans"]] == [
        ("127.0.0.1", "slow-bots", 3)
    ]
    lifted = run_gate("bans", "--admin", f"127.0.0.1:{second.metrics_port}", "remove", "127.0.0.1")
    assert lifted.returncode == 0, lifted.stderr
    assert httpx.get(first.url + "/page.html", headers=bot).status_code == 429  # limited again, no longer banned
    again = run_gate("bans", "--admin", f"127.0.0.1:{first.metrics_port}", "remove", "127.0.0.1")
    assert again.returncode == 1 and "not banned" in again.stderr


def test_a_browser_refused_again_and_again_gets_harder_challenges(pair: tuple[GateProcess, GateProcess]) -> None:
    with httpx.Client(base_url=pair[0].url, headers={"User-Agent": BROWSER}) as browser:
        assert [browser.get("/page.html").status_code for _ in range(8)] == [200] * 8
        difficulties = [challenge_difficulty(browser.get("/page.html").text) for _ in range(3)]
    assert difficulties == [20, 21, 22]


def test_the_fallback_keeps_serving_while_redis_is_down_and_recovers_by_itself(tmp_path: Path, nginx: Nginx) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(ROOMY_RULES)
    port = free_port()
    redis_process = start_redis_server(tmp_path, port)
    gate = start_gate(tmp_path / "gate", nginx.url, "--rules", str(rules), "--store", f"redis://127.0.0.1:{port}/0")
    try:
        assert httpx.get(gate.url + "/page.html").status_code == 200
        stop(redis_process)
        statuses = [httpx.get(gate.url + "/page.html").status_code for _ in range(30)]
        assert statuses == [200] * 30  # no 5xx while Redis is gone
        assert gate.metric("gate_store_fallback") == 1
        redis_process = start_redis_server(tmp_path, port)
        deadline = time.monotonic() + 10
        while gate.metric("gate_store_fallback") != 0 and time.monotonic() < deadline:
            assert httpx.get(gate.url + "/page.html").status_code == 200
            time.sleep(0.2)
        assert gate.metric("gate_store_fallback") == 0, "gate did not go back to Redis"
        with redis.Redis(port=port) as client:
            assert list(client.scan_iter(match="gate:rl:per-client:*")), "requests are counted in Redis again"
    finally:
        gate.stop()
        stop(redis_process)


def test_failing_closed_refuses_with_503_while_the_store_is_down(tmp_path: Path, nginx: Nginx) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(ROOMY_RULES)
    gone = f"redis://127.0.0.1:{free_port()}/0"
    gate = start_gate(tmp_path / "gate", nginx.url, "--rules", str(rules), "--store", gone, "--store-failure", "closed")
    try:
        refused = httpx.get(gate.url + "/page.html")
    finally:
        gate.stop()
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) >= 1


def test_browsers_are_challenged_only_while_the_site_is_busy(tmp_path: Path, nginx: Nginx) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(LOAD_RULES)
    gate = start_gate(tmp_path / "gate", nginx.url, "--rules", str(rules))
    try:
        with httpx.Client(base_url=gate.url, headers={"User-Agent": BROWSER}) as browser:
            assert "gate-challenge" not in browser.get("/page.html").text  # calm: browsers go straight through
            for _ in range(60):  # 60 requests in the 10 s window: 6 per second, over the 3 the rules allow
                httpx.get(gate.url + "/page.html", headers={"User-Agent": "curl/8.5.0"})
            deadline = time.monotonic() + 5
            while "gate-challenge" not in browser.get("/page.html").text:
                assert time.monotonic() < deadline, "the site never counted as busy"
                time.sleep(0.2)
        assert gate.metric("gate_site_busy") == 1
        assert gate.metric("gate_site_requests_per_second") > 3
    finally:
        gate.stop()


def test_auth_mode_applies_the_limits_too(tmp_path: Path, nginx: Nginx, redis_url: str) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    forget_clients(redis_url)
    gate = start_gate(tmp_path / "gate", nginx.url, "--rules", str(rules), "--mode", "auth", "--store", redis_url)
    headers = {"User-Agent": "curl/8.5.0 auth", "X-Original-URI": "/page.html"}
    try:
        answers = [httpx.get(gate.url + "/.gate/auth", headers=headers) for _ in range(4)]
    finally:
        gate.stop()
    assert [answer.status_code for answer in answers] == [200, 200, 200, 403]  # what nginx's auth_request passes on
    assert answers[-1].headers["x-gate-refused"] == "limit"
    assert answers[-1].headers["ratelimit-policy"] == '"slow-bots";q=1;w=60'


def test_without_the_store_requests_are_still_answered(tmp_path: Path, nginx: Nginx) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    gone = f"redis://127.0.0.1:{free_port()}/0"
    gate = start_gate(tmp_path / "gate", nginx.url, "--rules", str(rules), "--store", gone)
    try:
        statuses = [httpx.get(gate.url + "/page.html", headers={"User-Agent": "curl/8.5.0"}).status_code
                    for _ in range(5)]  # fmt: skip
        metrics = httpx.get(gate.metrics_url + "/metrics").text
    finally:
        gate.stop()
    assert statuses == [200, 200, 200, 429, 429]  # the in-process fallback still keeps the limits
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
