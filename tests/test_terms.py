"""Opt-in terms through running gates in front of the test nginx: robots.txt merged with the site's own, TDMRep and
the terms page, the terms' headers on proxied responses, the terms instead of the content for AI crawlers, consent
(accepting, presenting, the crawl rate, listing and revoking), robots.txt compliance, and the auth mode's answer."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from protego import Protego

from tests.policy.helpers import CLAUDEBOT_UA, CURL_UA, GPTBOT_UA, browser_headers
from tests.support.gate_process import GateProcess, start_gate
from tests.support.nginx import Nginx
from tests.support.ports import free_port

VERSION = "2026-12-01"
# The test's GPTBot crawls from loopback: its list says so (an importing file's network list wins), so it is
# verified, as a real GPTBot from OpenAI's published ranges is.
RULES = f"""
import: [shipped:default.yaml]
networks:
  openai-gptbot: [127.0.0.0/8]
terms:
  version: {VERSION}
  contact: mailto:owner@blog.example
  paths:
    - {{path: /open/**, uses: {{train-ai: y}}, license: CC-BY-4.0}}
  crawl_rate: 6/min
default: {{action: allow}}
"""
STRICT_RULES = RULES.replace("  crawl_rate: 6/min\n", "  crawl_rate: 6/min\n  deny_robots_violators_after: 2\n")
ACCEPT = "/.gate/terms/accept"
OPEN_PAGE = "/open/essay.html"
OPEN_TEXT = "This essay is opened to AI training"
PAGE_TEXT = "<title>page</title>"
SITE_USAGE = "train-ai=n, search=y"
OPEN_USAGE = "train-ai=y, search=y"


def rules_file(directory: Path, text: str) -> Path:
    path = directory / "rules.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def terms_gate(tmp_path_factory: pytest.TempPathFactory, nginx: Nginx) -> Iterator[GateProcess]:
    """The shipped rules with the owner's terms (/open/** opened to training), browsers allowed."""
    directory = tmp_path_factory.mktemp("terms")
    process = start_gate(directory, nginx.url, "--rules", str(rules_file(directory, RULES)))
    yield process
    process.stop()


@pytest.fixture
def strict_gate(tmp_path: Path, nginx: Nginx) -> Iterator[GateProcess]:
    """The same terms, denying an agent after two requests robots.txt disallows it."""
    process = start_gate(tmp_path, nginx.url, "--rules", str(rules_file(tmp_path, STRICT_RULES)))
    yield process
    process.stop()


@pytest.fixture
def lone_gate(tmp_path: Path, nginx: Nginx) -> Iterator[GateProcess]:
    """A gate nobody else has accepted the terms at."""
    process = start_gate(tmp_path, nginx.url, "--rules", str(rules_file(tmp_path, RULES)))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def auth_gate(tmp_path_factory: pytest.TempPathFactory, nginx: Nginx) -> Iterator[GateProcess]:
    # In auth mode gate forwards nothing; the upstream is asked only for its robots.txt (and by /readyz).
    directory = tmp_path_factory.mktemp("terms-auth")
    rules = rules_file(directory, RULES)
    process = start_gate(directory, nginx.url, "--rules", str(rules), "--mode", "auth")
    yield process
    process.stop()


def acceptance(**changes: str) -> dict[str, Any]:
    """A valid acceptance of the terms for GPTBot, with `changes`."""
    return {
        "agent": "GPTBot",
        "contact": "mailto:crawler-ops@operator.example",
        "purpose": "train-ai",
        "terms_version": VERSION,
    } | changes


def accept(gate: GateProcess) -> dict[str, Any]:
    """Accept the terms for GPTBot; the answer, with its token."""
    response = httpx.post(gate.url + ACCEPT, json=acceptance())
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def rewritten(token: str, **claims: str) -> str:
    """The token with claims changed in its payload and its signature kept: a forgery."""
    version, payload, key_id, signature = token.split(".")
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps(fields | claims).encode()).decode().rstrip("=")
    return ".".join((version, forged, key_id, signature))


def as_crawler(gate: GateProcess, path: str, token: str | None = None, user_agent: str = GPTBOT_UA) -> httpx.Response:
    headers = {"User-Agent": user_agent}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.get(gate.url + path, headers=headers)


def terms_reason(response: httpx.Response) -> str:
    """The reason of a 403 answered with the terms instead of the content."""
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["error"] == "terms"
    reason: str = body["reason"]
    return reason


def logged(gate: GateProcess, path: str, **fields: Any) -> dict[str, Any]:
    """The latest access log line for `path` with these fields, waiting briefly for it to be written."""
    deadline = time.monotonic() + 5
    while True:
        lines = [line for line in gate.access_lines(path) if all(line.get(k) == v for k, v in fields.items())]
        if lines or time.monotonic() > deadline:
            assert lines, f"no access log line for {path} with {fields}"
            return lines[-1]
        time.sleep(0.05)


def run_gate(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gate", *arguments], capture_output=True, text=True, timeout=30)


# The documents


@pytest.mark.parametrize(
    "headers",
    [browser_headers(), [("User-Agent", CURL_UA)], [("User-Agent", GPTBOT_UA)]],
    ids=["browser", "curl", "GPTBot"],
)
def test_robots_txt_is_the_sites_own_merged_with_the_terms_for_every_client(
    terms_gate: GateProcess, headers: list[tuple[str, str]]
) -> None:
    response = httpx.get(terms_gate.url + "/robots.txt", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for upstream_line in ("Disallow: /private/", "User-agent: BadBot", "Sitemap: https://blog.example/sitemap.xml"):
        assert upstream_line in text.splitlines()
    assert "User-agent: GPTBot" in text.splitlines()
    assert f"Content-Usage: {SITE_USAGE}" in text.splitlines()
    robots = Protego.parse(text)
    assert not robots.can_fetch(terms_gate.url + "/page.html", "GPTBot")
    assert robots.can_fetch(terms_gate.url + "/open/x.html", "GPTBot")
    assert robots.can_fetch(terms_gate.url + "/.gate/terms", "ClaudeBot")
    assert robots.can_fetch(terms_gate.url + "/page.html", "SomeBrowser")
    assert not robots.can_fetch(terms_gate.url + "/private/x", "SomeBrowser")


def test_tdmrep_and_the_terms_are_published(terms_gate: GateProcess) -> None:
    tdmrep = httpx.get(terms_gate.url + "/.well-known/tdmrep.json", headers={"User-Agent": GPTBOT_UA})
    assert tdmrep.status_code == 200
    assert [(rule["location"], rule["tdm-reservation"]) for rule in tdmrep.json()] == [("/open/*", 0), ("/*", 1)]
    assert tdmrep.json()[0]["tdm-policy"] == terms_gate.url + "/.gate/terms"

    page = httpx.get(terms_gate.url + "/.gate/terms", headers=browser_headers())
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f"POST {terms_gate.url}{ACCEPT}" in page.text

    document = httpx.get(terms_gate.url + "/.gate/terms", headers={"Accept": "application/json", "User-Agent": CURL_UA})
    assert document.status_code == 200
    assert document.headers["content-type"] == "application/json"
    terms = document.json()
    assert (terms["version"], terms["uses"]) == (VERSION, {"train-ai": "n", "search": "y"})
    assert [(entry["path"], entry["uses"], entry["license"]) for entry in terms["paths"]] == [
        ("/open/**", {"train-ai": "y"}, "CC-BY-4.0")
    ]
    assert terms["accept"]["url"] == terms_gate.url + ACCEPT


def test_proxied_responses_carry_the_terms_for_their_path(terms_gate: GateProcess) -> None:
    page = httpx.get(terms_gate.url + "/page.html", headers=browser_headers())
    assert page.status_code == 200
    assert PAGE_TEXT in page.text
    assert page.headers["content-usage"] == SITE_USAGE
    assert page.headers["tdm-reservation"] == "1"
    assert page.headers["tdm-policy"] == terms_gate.url + "/.gate/terms"
    assert page.headers["link"] == '</.gate/terms>; rel="terms-of-service"'

    essay = httpx.get(terms_gate.url + OPEN_PAGE, headers=browser_headers())
    assert essay.status_code == 200
    assert OPEN_TEXT in essay.text
    assert essay.headers["content-usage"] == OPEN_USAGE
    assert essay.headers["tdm-reservation"] == "0"


def test_an_ai_crawler_without_consent_gets_the_terms_instead_of_the_page(terms_gate: GateProcess) -> None:
    response = as_crawler(terms_gate, "/page.html")
    assert terms_reason(response) == "no-consent"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-usage"] == SITE_USAGE
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["terms"]["version"] == VERSION
    assert response.json()["terms"]["accept"]["url"] == terms_gate.url + ACCEPT
    assert PAGE_TEXT not in response.text
    opened = as_crawler(terms_gate, OPEN_PAGE, user_agent=CLAUDEBOT_UA)  # opened paths need a consent too
    assert terms_reason(opened) == "no-consent"
    assert opened.headers["content-usage"] == OPEN_USAGE
    assert OPEN_TEXT not in opened.text


@pytest.mark.parametrize("path", [b"/open/../page.html", b"/open/%2e%2e/page.html", b"/open/x/..%2f..%2fpage.html"])
def test_dot_segments_cannot_lead_out_of_an_opened_path(terms_gate: GateProcess, path: bytes) -> None:
    agent = GPTBOT_UA.encode()
    answer = terms_gate.exchange(
        b"GET " + path + b" HTTP/1.1\r\nHost: blog.example\r\nUser-Agent: " + agent + b"\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"quick brown" not in answer


# Consent


def test_a_crawler_that_accepts_is_let_in_where_the_terms_open_and_nowhere_else(terms_gate: GateProcess) -> None:
    answer = accept(terms_gate)
    assert (answer["agent"], answer["purpose"], answer["terms_version"]) == ("GPTBot", "train-ai", VERSION)
    assert answer["paths"] == ["/open/**"]
    assert answer["crawl_rate"] == {"requests": 6, "per_seconds": 60.0}
    assert 29 * 86400 < answer["expires"] - time.time() <= 30 * 86400
    token = answer["token"]

    essay = as_crawler(terms_gate, OPEN_PAGE, token)
    assert essay.status_code == 200
    assert OPEN_TEXT in essay.text
    assert essay.headers["content-usage"] == OPEN_USAGE
    line = logged(terms_gate, OPEN_PAGE, agent="GPTBot", status=200)
    assert (line["action"], line["decided"], line["consent"]) == ("allow", "terms", True)
    missing = as_crawler(terms_gate, "/open/missing.html", token)
    assert missing.status_code == 404  # the site's own answer

    assert terms_reason(as_crawler(terms_gate, "/page.html", token)) == "not-opened"
    assert terms_reason(as_crawler(terms_gate, OPEN_PAGE, token, user_agent=CLAUDEBOT_UA)) == "other-agent"
    forged = rewritten(token, agent="ClaudeBot")
    assert terms_reason(as_crawler(terms_gate, OPEN_PAGE, forged, user_agent=CLAUDEBOT_UA)) == "invalid-token"
    assert terms_reason(as_crawler(terms_gate, "/page.html", rewritten(token, purpose="search"))) == "invalid-token"
    assert terms_reason(as_crawler(terms_gate, OPEN_PAGE, "x" * 5000)) == "invalid-token"


def test_the_consent_cookie_works_like_the_bearer_header(terms_gate: GateProcess) -> None:
    token = accept(terms_gate)["token"]
    headers = {"User-Agent": GPTBOT_UA, "Cookie": f"theme=dark; gate_consent={token}"}
    essay = httpx.get(terms_gate.url + OPEN_PAGE, headers=headers)
    assert essay.status_code == 200
    assert OPEN_TEXT in essay.text
    assert terms_reason(httpx.get(terms_gate.url + "/page.html", headers=headers)) == "not-opened"


def test_a_consenting_crawler_over_the_crawl_rate_gets_429(terms_gate: GateProcess) -> None:
    token = accept(terms_gate)["token"]
    statuses = [as_crawler(terms_gate, OPEN_PAGE, token).status_code for _ in range(5)]
    refused = as_crawler(terms_gate, OPEN_PAGE, token)
    assert statuses == [200] * 5
    assert refused.status_code == 429
    assert OPEN_TEXT not in refused.text
    assert 1 <= int(refused.headers["retry-after"]) <= 10  # 6/min: one request every 10 s
    assert refused.headers["ratelimit-policy"] == '"consent";q=6;w=60'
    assert refused.headers["ratelimit"].startswith('"consent";r=0;t=')


def test_consents_are_listed_and_revoked_on_the_metrics_listener(terms_gate: GateProcess) -> None:
    answer = accept(terms_gate)
    listed = httpx.get(terms_gate.metrics_url + "/consents")
    assert listed.status_code == 200
    record = next(record for record in listed.json()["consents"] if record["id"] == answer["id"])
    assert (record["agent"], record["purpose"], record["terms_version"], record["ip"]) == (
        "GPTBot",
        "train-ai",
        VERSION,
        "127.0.0.1",
    )
    assert record["contact"] == "mailto:crawler-ops@operator.example"
    assert record["expires"] == answer["expires"]
    assert abs(record["accepted_at"] - time.time()) < 60
    assert record["revoked"] is False

    revoked = httpx.delete(f"{terms_gate.metrics_url}/consents/{answer['id']}")
    assert (revoked.status_code, revoked.json()) == (200, {"id": answer["id"], "revoked": True})
    assert terms_reason(as_crawler(terms_gate, OPEN_PAGE, answer["token"])) == "revoked"
    relisted = httpx.get(terms_gate.metrics_url + "/consents").json()["consents"]
    assert next(record for record in relisted if record["id"] == answer["id"])["revoked"] is True
    assert httpx.delete(terms_gate.metrics_url + "/consents/NoSuchConsent").status_code == 404


def test_the_consent_command_lists_and_revokes(terms_gate: GateProcess) -> None:
    answer = accept(terms_gate)
    admin = f"127.0.0.1:{terms_gate.metrics_port}"
    listed = run_gate("consent", "--admin", admin, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert answer["id"] in [record["id"] for record in json.loads(listed.stdout)["consents"]]
    revoked = run_gate("consent", "--admin", admin, "revoke", answer["id"])
    assert revoked.returncode == 0, revoked.stderr
    assert terms_reason(as_crawler(terms_gate, OPEN_PAGE, answer["token"])) == "revoked"


def as_json(value: Any) -> bytes:
    return json.dumps(value).encode()


JSON = "application/json"
BAD_ACCEPTANCES = [
    pytest.param(b"agent=GPTBot", JSON, 400, "not JSON", id="not-json"),
    pytest.param(b'{"agent": "\xff"}', JSON, 400, "not JSON", id="not-utf-8"),
    pytest.param(as_json([acceptance()]), JSON, 400, "expected a JSON object", id="array"),
    pytest.param(as_json({"agent": "GPTBot"}), JSON, 422, "missing: contact, purpose, terms_version", id="missing"),
    pytest.param(as_json(acceptance() | {"agent": 7, "terms_version": 1}), JSON, 422, "agent, terms_", id="types"),
    pytest.param(as_json(acceptance(scope="all")), JSON, 422, "unknown fields: scope", id="extra-field"),
    pytest.param(as_json(acceptance(contact="call us")), JSON, 422, "contact:", id="contact"),
    pytest.param(as_json(acceptance(contact="ops@x.example\x1b[2J")), JSON, 422, "contact:", id="control-characters"),
    pytest.param(b"[" * 3000, JSON, 400, "not JSON", id="deeply-nested"),
    pytest.param(as_json(acceptance(agent="NoSuchBot")), JSON, 422, "'NoSuchBot' is not", id="unknown-agent"),
    pytest.param(as_json(acceptance(purpose="resale")), JSON, 422, "open paths to train-ai", id="unknown-purpose"),
    pytest.param(as_json(acceptance(purpose="search")), JSON, 422, "open paths to train-ai", id="nothing-opened"),
    pytest.param(as_json(acceptance(terms_version="1")), JSON, 409, f"version {VERSION}", id="stale-terms"),
    pytest.param(as_json(acceptance()), "text/plain", 415, "application/json", id="content-type"),
    pytest.param(as_json(acceptance(contact="a" * 5000)), JSON, 413, "4096 bytes", id="oversized"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "message"), BAD_ACCEPTANCES)
def test_a_bad_acceptance_gets_a_clear_4xx(
    terms_gate: GateProcess, body: bytes, content_type: str, status: int, message: str
) -> None:
    response = httpx.post(terms_gate.url + ACCEPT, content=body, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_an_oversized_chunked_acceptance_gets_413(terms_gate: GateProcess) -> None:
    chunks = [b'{"agent": "GPTBot", "contact": "', b"a" * 3000, b"a" * 3000, b'"}']
    response = httpx.post(terms_gate.url + ACCEPT, content=iter(chunks), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_the_accept_url_takes_only_post(terms_gate: GateProcess) -> None:
    assert httpx.get(terms_gate.url + ACCEPT).status_code == 405


# robots.txt compliance


def test_robots_txt_fetches_and_violations_are_counted_per_agent(terms_gate: GateProcess) -> None:
    fetches = terms_gate.metric("gate_robots_fetches_total", agent="GPTBot")
    violations = terms_gate.metric("gate_robots_violations_total", agent="GPTBot")
    assert as_crawler(terms_gate, "/robots.txt").status_code == 200
    assert terms_gate.metric("gate_robots_fetches_total", agent="GPTBot") == fetches + 1

    assert terms_reason(as_crawler(terms_gate, "/page.html")) == "no-consent"
    assert terms_gate.metric("gate_robots_violations_total", agent="GPTBot") == violations + 1
    assert terms_reason(as_crawler(terms_gate, OPEN_PAGE)) == "no-consent"  # robots.txt allows it: no violation
    assert terms_gate.metric("gate_robots_violations_total", agent="GPTBot") == violations + 1
    assert httpx.get(terms_gate.url + "/private/x", headers=browser_headers()).status_code == 404  # not a crawler
    assert terms_gate.metric("gate_robots_violations_total", agent="GPTBot") == violations + 1


def test_an_agent_that_keeps_ignoring_robots_txt_is_denied_unless_verified(strict_gate: GateProcess) -> None:
    assert as_crawler(strict_gate, "/robots.txt").status_code == 200
    assert terms_reason(as_crawler(strict_gate, "/page.html", user_agent=CLAUDEBOT_UA)) == "no-consent"
    assert terms_reason(as_crawler(strict_gate, "/private/x", user_agent=CLAUDEBOT_UA)) == "no-consent"
    assert strict_gate.metric("gate_robots_violations_total", agent="ClaudeBot") == 2

    denied = as_crawler(strict_gate, "/essays/", user_agent=CLAUDEBOT_UA)
    assert denied.status_code == 403
    assert "Access denied" in denied.text
    line = logged(strict_gate, "/essays/", agent="ClaudeBot")
    assert (line["rule"], line["action"], line["status"]) == ("robots-violator", "deny", 403)
    assert as_crawler(strict_gate, "/robots.txt", user_agent=CLAUDEBOT_UA).status_code == 200  # still readable

    # GPTBot here comes from its operator's published ranges: its violations are counted, it is never locked out.
    for _ in range(3):
        assert terms_reason(as_crawler(strict_gate, "/page.html")) == "no-consent"
    assert strict_gate.metric("gate_robots_violations_total", agent="GPTBot") == 3


def test_a_host_header_that_is_not_a_host_name_is_never_written_into_urls(terms_gate: GateProcess) -> None:
    request = (
        f"GET /page.html HTTP/1.1\r\nHost: evil.example/x?\r\nUser-Agent: {GPTBOT_UA}\r\nConnection: close\r\n\r\n"
    )
    head = terms_gate.exchange(request.encode()).split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    assert "\r\ntdm-policy: /.gate/terms\r\n" in head + "\r\n"  # relative, not http://evil.example/x?/.gate/terms


def test_failing_closed_a_consent_is_not_honoured_while_the_store_is_down(tmp_path: Path, nginx: Nginx) -> None:
    gone = f"redis://127.0.0.1:{free_port()}/0"
    rules = rules_file(tmp_path, RULES)
    gate = start_gate(tmp_path, nginx.url, "--rules", str(rules), "--store", gone, "--store-failure", "closed")
    try:
        token = accept(gate)["token"]  # accepted and recorded by the fallback; revocations cannot be checked
        refused = as_crawler(gate, OPEN_PAGE, token)
    finally:
        gate.stop()
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) >= 1


# Auth mode


def test_the_auth_decision_carries_the_terms_and_honours_a_consent(auth_gate: GateProcess) -> None:
    def decide(uri: str, token: str | None = None) -> httpx.Response:
        headers = {"X-Original-URI": uri, "User-Agent": GPTBOT_UA}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.get(auth_gate.url + "/.gate/auth", headers=headers)

    refused = decide("/page.html")
    assert refused.status_code == 403
    assert refused.content == b""
    assert (refused.headers["x-gate-action"], refused.headers["x-gate-rule"]) == ("terms", "ai-agents-get-terms")
    assert refused.headers["content-usage"] == SITE_USAGE

    token = accept(auth_gate)["token"]
    assert decide(OPEN_PAGE, token).status_code == 200
    not_opened = decide("/page.html", token)
    assert not_opened.status_code == 403
    assert not_opened.headers["content-usage"] == SITE_USAGE
    assert decide(OPEN_PAGE, "forged").headers["content-usage"] == OPEN_USAGE

    deadline = time.monotonic() + 5  # the first crawler request starts reading robots.txt; later ones are checked
    while auth_gate.metric("gate_robots_violations_total", agent="GPTBot") < 1:
        assert time.monotonic() < deadline, "auth mode never counted a robots.txt violation"
        decide("/page.html")
        time.sleep(0.1)


# Last: it spends a gate's whole allowance of acceptances


def test_acceptances_are_rate_limited_per_address(lone_gate: GateProcess) -> None:
    statuses = [httpx.post(lone_gate.url + ACCEPT, json=acceptance()).status_code for _ in range(10)]
    refused = httpx.post(lone_gate.url + ACCEPT, json=acceptance())
    assert statuses == [201] * 10
    assert refused.status_code == 429
    assert "too many acceptances" in refused.json()["error"]
    assert lone_gate.metric("gate_consent_refusals_total", status="429") == 1
