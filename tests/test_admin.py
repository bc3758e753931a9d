"""The metrics listener: /metrics counts what gate did, /healthz and /readyz report its state."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gate.admin import build_admin_app
from gate.config import Settings, parse_upstream
from gate.metrics import FLUSH_SECONDS
from gate.store import MemoryStore
from gate.throttle import ban_key
from tests.support.gate_process import GateProcess, sample, start_transparent_gate
from tests.support.nginx import Nginx
from tests.support.ports import free_port


@pytest.fixture
def gates() -> Iterator[list[GateProcess]]:
    started: list[GateProcess] = []
    yield started
    for process in started:
        process.stop()


def test_requests_are_counted_by_action_rule_and_agent_class(gate: GateProcess) -> None:
    before = httpx.get(gate.metrics_url + "/metrics").text
    for _ in range(3):
        httpx.get(gate.url + "/page.html", headers={"User-Agent": "curl/8.5.0"})
    after = httpx.get(gate.metrics_url + "/metrics").text
    labels = {"action": "allow", "rule": "default", "agent_class": "http-library"}
    assert sample(after, "gate_requests_total", **labels) - sample(before, "gate_requests_total", **labels) == 3
    assert sample(after, "gate_upstream_duration_seconds_count") >= 3
    assert sample(after, "gate_build_info") == 1


def test_upstream_errors_are_counted(gates: list[GateProcess], tmp_path: Path) -> None:
    gates.append(start_transparent_gate(tmp_path, f"http://127.0.0.1:{free_port()}"))
    httpx.get(gates[0].url + "/")
    metrics = httpx.get(gates[0].metrics_url + "/metrics").text
    assert sample(metrics, "gate_upstream_errors_total", kind="connect") == 1


def test_metrics_are_not_on_the_public_listener(gate: GateProcess) -> None:
    response = httpx.get(gate.url + "/metrics")
    assert "gate_requests_total" not in response.text


def test_health_and_readiness(gate: GateProcess) -> None:
    assert httpx.get(gate.metrics_url + "/healthz").text == "ok\n"
    ready = httpx.get(gate.metrics_url + "/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "checks": {"upstream": "ok", "store": "ok"}}


def test_not_ready_when_upstream_or_store_is_down(gates: list[GateProcess], tmp_path: Path) -> None:
    gates.append(
        start_transparent_gate(
            tmp_path, f"http://127.0.0.1:{free_port()}", "--store", f"redis://127.0.0.1:{free_port()}/0"
        )
    )
    assert httpx.get(gates[0].metrics_url + "/healthz").status_code == 200
    ready = httpx.get(gates[0].metrics_url + "/readyz", timeout=10)
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["upstream"].startswith("error")
    assert checks["store"].startswith("error")


@pytest.mark.parametrize(("failure", "ready"), [("open", 200), ("closed", 503)])
def test_a_store_outage_keeps_gate_ready_only_when_it_fails_open(
    gates: list[GateProcess], tmp_path: Path, nginx: Nginx, failure: str, ready: int
) -> None:
    gone = f"redis://127.0.0.1:{free_port()}/0"
    gates.append(start_transparent_gate(tmp_path, nginx.url, "--store", gone, "--store-failure", failure))
    answer = httpx.get(gates[0].metrics_url + "/readyz", timeout=10)
    assert answer.status_code == ready
    assert answer.json()["checks"]["upstream"] == "ok"
    assert answer.json()["checks"]["store"].startswith("error")


def test_ready_with_redis_store(gates: list[GateProcess], tmp_path: Path, nginx: Nginx, redis_url: str) -> None:
    gates.append(start_transparent_gate(tmp_path, nginx.url, "--store", redis_url))
    assert httpx.get(gates[0].metrics_url + "/readyz").json()["checks"]["store"] == "ok"


def test_two_workers_serve_and_metrics_add_up(
    gates: list[GateProcess], tmp_path: Path, nginx: Nginx, redis_url: str
) -> None:
    gates.append(start_transparent_gate(tmp_path, nginx.url, "--workers", "2", "--store", redis_url))
    two = gates[0]
    with httpx.Client() as client:  # a fresh connection per request spreads them over both workers
        for _ in range(40):
            assert client.get(two.url + "/page.html", headers={"Connection": "close"}).status_code == 200
    # Each worker adds its batch of counts within FLUSH_SECONDS; the supervisor's scrape reads what they added.
    deadline = time.monotonic() + FLUSH_SECONDS + 2
    while (counted := two.metric("gate_requests_total", action="allow", rule="default")) < 40:
        assert time.monotonic() < deadline, f"{counted} of 40 requests counted"
        time.sleep(0.05)
    time.sleep(FLUSH_SECONDS)
    assert two.metric("gate_requests_total", action="allow", rule="default") == 40  # and none counted twice


def test_request_log_line_explains_the_decision(gate: GateProcess) -> None:
    httpx.get(gate.url + "/uri/log-line?secret=1", headers={"User-Agent": "python-requests/2.32"})
    line = gate.access_lines("/uri/log-line")[-1]
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert line["action"] == "allow"
    assert line["decided"] == "allow"
    assert line["rule"] == "default"
    assert line["agent"] == "python-requests"
    assert line["agent_class"] == "http-library"
    assert line["ip"] == "127.0.0.1"
    assert isinstance(line["upstream_ms"], float)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", line["time"])
    assert "secret" not in str(line)  # query strings can carry tokens: they stay out of the log


async def call_admin(app: Any, method: str, path: str, client: str) -> tuple[int, Any]:
    """One request straight into the admin ASGI app, from the given peer address."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
        "client": (client, 40000),
        "server": ("127.0.0.1", 9464),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)


async def test_bans_are_listed_and_lifted_from_this_machine_only() -> None:
    store = MemoryStore()
    app = build_admin_app(Settings(upstream=parse_upstream("http://127.0.0.1:9")), store)
    await store.set(ban_key("203.0.113.7", "203.0.113.0/24"), b'{"limit": "per-client", "strikes": 12}', 600)
    assert (await call_admin(app, "GET", "/bans", "192.0.2.1"))[0] == 403
    assert (await call_admin(app, "DELETE", "/bans/203.0.113.7", "192.0.2.1"))[0] == 403
    status, listed = await call_admin(app, "GET", "/bans", "127.0.0.1")
    assert status == 200
    assert [(ban["address"], ban["limit"], ban["strikes"]) for ban in listed["bans"]] == [
        ("203.0.113.7", "per-client", 12)
    ]
    assert (await call_admin(app, "DELETE", "/bans/not-an-address", "::1"))[0] == 400
    assert await call_admin(app, "DELETE", "/bans/203.0.113.7", "::1") == (
        200,
        {"address": "203.0.113.7", "removed": True},
    )
    assert (await call_admin(app, "GET", "/bans", "127.0.0.1"))[1] == {"bans": []}
