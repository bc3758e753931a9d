"""Redis killed (SIGKILL) in the middle of steady load and restarted on the same port and data: gate, failing open,
answers every request without a 5xx (a browser with a pass, a crawler that accepted the terms, a throttled bot),
switches to its in-process fallback and back to Redis within seconds of the restart, and the consents recorded
before the kill (and a revocation) are still there and still decide.

The single-request version with a clean stop is tests/test_throttle.py's fallback test; this one is under load,
with kill -9 and an append-only file.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis

from tests.policy.helpers import GPTBOT_UA, browser_headers
from tests.support.gate_process import GateProcess, start_gate
from tests.support.nginx import Nginx
from tests.support.ports import free_port, stop
from tests.support.redis_server import start_redis_server
from tests.support.solver import read_challenge, submit
from tests.support.steady_load import Client, SteadyLoad
from tests.test_terms import OPEN_PAGE, acceptance, terms_reason

VERSION = acceptance()["terms_version"]
RULES = f"""
agents: [shipped:agents/*.yaml]
limits:
  per-client: {{rate: 60000/min, burst: 10000, per: ip}}
  slow-bots: {{rate: 600/min, burst: 20, per: ip}}
guards: [per-client]
terms:
  version: {VERSION}
  contact: mailto:owner@blog.example
  paths:
    - {{path: /open/**, uses: {{train-ai: y}}}}
  crawl_rate: 60000/min
rules:
  - {{name: ai-crawlers, match: {{agent_class: ai-crawler}}, action: terms}}
  - {{name: bots, match: {{agent_class: http-library}}, action: throttle, limit: slow-bots}}
default: {{action: challenge, difficulty: 8}}
"""
ANSWERS_PER_PHASE = 30  # per client, before the kill, during the outage and after the recovery
BACK_ON_REDIS_SECONDS = 3.0


def start_persistent_redis(directory: Path, port: int) -> subprocess.Popen[bytes]:
    """A redis-server that writes every change to its append-only file before answering."""
    return start_redis_server(directory, port, "--appendonly", "yes", "--appendfsync", "always")


def on_fallback(gate: GateProcess) -> bool:
    return gate.metric("gate_store_fallback") == 1


def eventually(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def pass_cookie(gate: GateProcess) -> str:
    """A browser's pass, earned by solving the challenge."""
    with httpx.Client(base_url=gate.url, headers=browser_headers()) as browser:
        challenge = read_challenge(browser.get("/page.html").text)
        assert submit(browser, challenge).status_code == 303
        return f"gate_pass={browser.cookies['gate_pass']}"


def accepted(gate: GateProcess) -> dict[str, str]:
    response = httpx.post(gate.url + "/.gate/terms/accept", json=acceptance())
    assert response.status_code == 201, response.text
    answer: dict[str, str] = response.json()
    return answer


def crawler_reason(gate: GateProcess, token: str) -> str:
    return terms_reason(
        httpx.get(gate.url + OPEN_PAGE, headers={"User-Agent": GPTBOT_UA, "Authorization": f"Bearer {token}"})
    )


def test_redis_killed_under_load_costs_no_request_and_no_consent(tmp_path: Path, nginx: Nginx) -> None:
    data = tmp_path / "redis"
    data.mkdir()
    port = free_port()
    redis_process = start_persistent_redis(data, port)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    gate = start_gate(
        tmp_path / "gate",
        nginx.url,
        "--rules", str(rules),
        "--store", f"redis://127.0.0.1:{port}/0",
        "--pass-budget", "1000000",
    )  # fmt: skip
    try:
        kept, revoked = accepted(gate), accepted(gate)
        assert httpx.delete(f"{gate.metrics_url}/consents/{revoked['id']}").status_code == 200
        assert crawler_reason(gate, revoked["token"]) == "revoked"
        clients = {
            "browser": Client("/page.html", dict(browser_headers()) | {"Cookie": pass_cookie(gate)}),
            "crawler": Client(OPEN_PAGE, {"User-Agent": GPTBOT_UA, "Authorization": f"Bearer {kept['token']}"}),
            "bot": Client("/page.html", {"User-Agent": "curl/8.5.0"}),
        }
        with SteadyLoad(gate.url, clients) as load:
            load.wait_for(ANSWERS_PER_PHASE, since=0.0)
            killed = time.monotonic()
            redis_process.kill()
            redis_process.wait()
            assert eventually(lambda: on_fallback(gate), 5.0), "gate never switched to its fallback"
            load.wait_for(ANSWERS_PER_PHASE, since=killed)

            restarted = time.monotonic()
            redis_process = start_persistent_redis(data, port)
            assert eventually(lambda: not on_fallback(gate), BACK_ON_REDIS_SECONDS), "gate did not go back to Redis"
            recovered = time.monotonic()
            load.wait_for(ANSWERS_PER_PHASE, since=recovered)

        failed = [
            f"{answer.client} {answer.at - killed:+.2f} s from the kill: {answer.status or answer.error}"
            for answer in load.answers()
            if answer.status is None or answer.status >= 500
        ]
        assert failed == [], f"{len(failed)} failed requests (Redis back at {restarted - killed:+.2f} s): {failed[:5]}"
        assert load.statuses("browser") == {200}
        assert load.statuses("crawler") == {200}  # let in on its consent before, during and after the outage
        assert load.statuses("bot") <= {200, 429}
        events = [line["event"] for line in gate.log_lines() if line.get("event") in ("store-down", "store-up")]
        assert events[-2:] == ["store-down", "store-up"]
        with redis.Redis(port=port) as client:
            assert client.exists(f"gate:consent:{{{kept['id']}}}"), "the consent record did not survive the restart"
        assert crawler_reason(gate, revoked["token"]) == "revoked"  # the revocation survived it too
    finally:
        gate.stop()
        stop(redis_process)
