"""The signing keys and the tokens they sign stay secret: after a session that earns a pass, spends it, accepts the
terms, uses the consent and presents both where they do not belong, neither a key nor any token's signature appears
in gate's log (at debug level), in /metrics, or in the pages gate answers with."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gate.keys import KeyRing, write_key_file
from tests.policy.helpers import GPTBOT_UA
from tests.support.gate_process import GateProcess, start_gate
from tests.support.recording import RecordingUpstream
from tests.support.solver import read_challenge, submit

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
RULES = """
import: [shipped:default.yaml]
networks:
  openai-gptbot: [127.0.0.0/8]
terms:
  version: "1"
  contact: mailto:owner@site.example
  paths:
    - {path: /open/**, uses: {train-ai: y}}
  crawl_rate: 60/min
rules:
  - {name: people, match: {agent_class: browser}, action: challenge, difficulty: 0}
"""


def key_spellings(ring: KeyRing) -> list[str]:
    """Every way a key could be written out: as in the key file, standard base64, hex."""
    return [
        spelling
        for key in ring.keys
        for spelling in (key.encode(), base64.b64encode(key.material).decode(), key.material.hex())
    ]


def signature(token: str) -> str:
    return token.rsplit(".", 1)[1]


class Session:
    """What a session against the gate handed out, and every answer gate gave it."""

    def __init__(self, gate: GateProcess) -> None:
        self.answers: list[httpx.Response] = []
        with httpx.Client(base_url=gate.url, headers={"User-Agent": BROWSER}, timeout=10) as browser:
            page = self.keep(browser.get("/page.html"))
            self.challenge = read_challenge(page.text).token
            self.keep(submit(browser, read_challenge(page.text)))
            self.pass_token = browser.cookies["gate_pass"]
            for path in ("/page.html", "/other.html", "/.gate/missing", "/.gate/terms"):
                self.keep(browser.get(path))
            self.keep(browser.post("/.gate/challenge/verify", data={"challenge": self.pass_token, "nonce": "1"}))
            self.keep(browser.get("/.gate/challenge/nojs", params={"c": self.pass_token}))
        acceptance = {"agent": "GPTBot", "contact": "ops@crawler.example", "purpose": "train-ai", "terms_version": "1"}
        accepted = self.keep(httpx.post(gate.url + "/.gate/terms/accept", json=acceptance))
        self.consent_token = accepted.json()["token"]
        with httpx.Client(base_url=gate.url, headers={"User-Agent": GPTBOT_UA}, timeout=10) as crawler:
            bearer = {"Authorization": f"Bearer {self.consent_token}"}
            for path in ("/open/essay.html", "/page.html"):
                self.keep(crawler.get(path, headers=bearer))
            self.keep(crawler.get("/page.html", headers={"Cookie": f"gate_pass={self.pass_token}"}))
        with httpx.Client(base_url=gate.url, headers={"User-Agent": "curl/8.5.0"}) as script:
            self.keep(script.get("/page.html", headers={"Cookie": f"gate_pass={self.pass_token}", **bearer}))

    def keep(self, response: httpx.Response) -> httpx.Response:
        self.answers.append(response)
        return response


@pytest.fixture(scope="module")
def ran(
    tmp_path_factory: pytest.TempPathFactory, upstream: RecordingUpstream
) -> Iterator[tuple[GateProcess, KeyRing, Session]]:
    directory = tmp_path_factory.mktemp("secrets")
    rules = directory / "rules.yaml"
    rules.write_text(RULES)
    key_file = directory / "secret.key"
    write_key_file(key_file)
    ring = write_key_file(key_file, rotate=True)
    gate = start_gate(
        directory / "gate", upstream.url, "--rules", str(rules), "--secret-file", str(key_file), "--log-level", "debug"
    )
    try:
        session = Session(gate)
        gate.access_lines("/open/essay.html")  # the request lines are written in batches
        yield gate, ring, session
    finally:
        gate.stop()


def test_the_session_earned_a_pass_and_a_consent_and_used_both(ran: tuple[GateProcess, KeyRing, Session]) -> None:
    gate, _, session = ran
    lines = gate.access_lines()
    assert any(line["pass"] and line["status"] == 200 for line in lines)
    assert any(line["consent"] and line["status"] == 200 for line in lines)
    assert session.pass_token.count(".") == 3 and session.consent_token.count(".") == 3


def secrets_of(ring: KeyRing, session: Session) -> list[str]:
    tokens = (session.pass_token, session.consent_token, session.challenge)
    return key_spellings(ring) + [signature(token) for token in tokens]


def test_no_key_or_token_signature_is_in_the_log(ran: tuple[GateProcess, KeyRing, Session]) -> None:
    gate, ring, session = ran
    log = Path(gate.log).read_text(errors="replace")
    assert [secret for secret in secrets_of(ring, session) if secret in log] == []


def test_no_key_or_token_signature_is_in_the_metrics(ran: tuple[GateProcess, KeyRing, Session]) -> None:
    gate, ring, session = ran
    exported = httpx.get(gate.metrics_url + "/metrics").text
    assert "gate_pass_tokens_minted_total" in exported
    assert [secret for secret in secrets_of(ring, session) if secret in exported] == []


def test_no_page_gate_answers_with_shows_a_key_or_a_token_it_was_handed(
    ran: tuple[GateProcess, KeyRing, Session],
) -> None:
    _, ring, session = ran
    handed = [*key_spellings(ring), signature(session.pass_token), signature(session.consent_token)]
    minted = {  # the one answer that hands each token out
        ("/.gate/challenge/verify", 303): signature(session.pass_token),
        ("/.gate/terms/accept", 201): signature(session.consent_token),
    }
    for answer in session.answers:
        shown = answer.text + "\n".join(f"{name}: {value}" for name, value in answer.headers.multi_items())
        own = minted.get((answer.request.url.path, answer.status_code))
        leaked = [secret for secret in handed if secret in shown and secret != own]
        assert leaked == [], (answer.request.url, answer.status_code)
