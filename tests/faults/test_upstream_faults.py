"""An upstream that fails: resets before answering (502), cut bodies (a reset mid-body, a Content-Length it never
fills, a chunked body without its last chunk, a close-delimited body ended by a reset) reach the client as truncated
transfers, never as complete-looking short ones, and promptly; while the upstream is down gate's own pages are still
served, and forwarding resumes by itself when it is back.

Refused connections, slow headers and a stall mid-body are in tests/test_proxy.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.policy.helpers import browser_headers
from tests.support.faulty_upstream import LATE_BODY_SECONDS, UNFRAMED_SENT, faulty_upstream
from tests.support.gate_process import GateProcess, start_gate, start_transparent_gate
from tests.support.nginx import start_nginx_with
from tests.support.ports import free_port, stop

SITE = Path(__file__).resolve().parent.parent / "data" / "site"
UPSTREAM_TIMEOUT = 2.0
# The shipped policy (browsers are challenged) with one page open to everyone, to see forwarding stop and resume.
OPEN_PAGE_RULES = """
import: [shipped:default.yaml]
rules:
  - {name: open-page, match: {path: /page.html}, action: allow}
"""


@pytest.fixture(scope="module")
def gate_before_faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GateProcess]:
    with faulty_upstream() as upstream:
        gate = start_transparent_gate(
            tmp_path_factory.mktemp("faulty"), upstream, "--upstream-timeout", str(UPSTREAM_TIMEOUT)
        )
        try:
            yield gate
        finally:
            gate.stop()


def test_an_upstream_resetting_before_it_answers_gives_502(gate_before_faults: GateProcess) -> None:
    started = time.monotonic()
    response = httpx.get(gate_before_faults.url + "/reset", timeout=10)
    assert response.status_code == 502
    assert "Bad gateway" in response.text
    assert time.monotonic() - started < 1.0
    assert gate_before_faults.access_lines("/reset")[-1]["error"] == "protocol"


@pytest.mark.parametrize("path", ["/reset-mid-body", "/short", "/cut-chunked", "/reset-unframed"])
def test_a_body_the_upstream_cuts_short_reaches_the_client_incomplete(
    gate_before_faults: GateProcess, path: str
) -> None:
    started = time.monotonic()
    with pytest.raises(httpx.RemoteProtocolError):  # a complete-looking short body would not raise
        httpx.get(gate_before_faults.url + path, timeout=10)
    assert time.monotonic() - started < UPSTREAM_TIMEOUT  # the cut is passed on at once, not after a timeout
    assert gate_before_faults.access_lines(path)[-1]["error"] == "aborted"


def test_a_response_head_is_passed_on_before_a_late_body(gate_before_faults: GateProcess) -> None:
    """gate holds a response head back for the body's first piece, but only within one turn of its loop: a head
    the upstream sends long before its body reaches the client at once."""
    started = time.monotonic()
    with httpx.stream("GET", gate_before_faults.url + "/head-first", timeout=10) as response:
        head_after = time.monotonic() - started
        assert response.status_code == 200
        assert response.read() == b"late\n"
        body_after = time.monotonic() - started
    assert head_after < LATE_BODY_SECONDS / 2
    assert body_after >= LATE_BODY_SECONDS


def test_a_304_with_the_pages_content_length_reaches_the_client_without_failing(
    gate_before_faults: GateProcess,
) -> None:
    def failures() -> int:  # uvicorn waiting for 2,048 bytes of a 304's body would fail the response here
        return sum("Exception in ASGI application" in line["message"] for line in gate_before_faults.log_lines())

    before = failures()
    with httpx.Client(timeout=10) as client:
        answers = [client.get(gate_before_faults.url + "/not-modified") for _ in range(2)]
    assert [answer.status_code for answer in answers] == [304, 304]
    assert answers[0].headers["etag"] == '"page"'
    time.sleep(0.3)  # the log line of a failure comes after the response
    assert failures() == before


def test_a_close_delimited_body_ended_by_a_normal_close_is_passed_on_whole(gate_before_faults: GateProcess) -> None:
    response = httpx.get(gate_before_faults.url + "/unframed", timeout=10)
    assert response.status_code == 200
    assert response.content == b"u" * UNFRAMED_SENT
    assert gate_before_faults.access_lines("/unframed")[-1]["error"] is None


def test_own_pages_are_served_while_the_upstream_is_down_and_forwarding_resumes_when_it_is_back(
    tmp_path: Path,
) -> None:
    port = free_port()
    server = f"server {{ listen 127.0.0.1:{port}; root {SITE}; }}"
    upstream = start_nginx_with(tmp_path / "nginx", server, port)
    rules = tmp_path / "rules.yaml"
    rules.write_text(OPEN_PAGE_RULES)
    gate = start_gate(tmp_path / "gate", f"http://127.0.0.1:{port}", "--rules", str(rules), "--upstream-timeout", "2")
    try:
        with httpx.Client(base_url=gate.url, timeout=10) as client:
            assert client.get("/page.html").status_code == 200  # and the pool now holds a connection to nginx
            stop(upstream)

            started = time.monotonic()
            assert client.get("/page.html").status_code == 502
            challenge = client.get("/article.html", headers=browser_headers())
            assert challenge.status_code == 200 and "gate-challenge" in challenge.text
            robots = client.get("/robots.txt")
            assert robots.status_code == 200 and "User-agent:" in robots.text
            assert client.get("/.gate/terms").status_code == 200
            assert time.monotonic() - started < 2.0  # none of them waits on the dead upstream
            assert httpx.get(gate.metrics_url + "/healthz").status_code == 200
            ready = httpx.get(gate.metrics_url + "/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["upstream"] != "ok"

            upstream = start_nginx_with(tmp_path / "nginx", server, port)
            assert client.get("/page.html").status_code == 200  # the first request after the restart already
            assert httpx.get(gate.metrics_url + "/readyz").status_code == 200
    finally:
        gate.stop()
        stop(upstream)
