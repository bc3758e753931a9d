"""Shared by the policy tests: the rule fixtures, captured browser headers, requests, and the `gate` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from textwrap import dedent

from gate.check import NO_PROXIES, scope_for
from gate.facts import Facts
from gate.net import TrustedProxies
from gate.policy.engine import Policy
from gate.policy.load import load_policy
from gate.policy.model import Decision

DATA = Path(__file__).resolve().parent.parent / "data"
GOOD = DATA / "rules" / "good"
BAD = DATA / "rules" / "bad"
HEADERS = DATA / "headers"
DOCS = DATA.parent.parent / "docs"

CLIENT = "203.0.113.7"
CHROME_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"
GPTBOT_UA = "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)"
CHATGPT_USER_UA = (
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0; +https://openai.com/bot"
)
CLAUDEBOT_UA = "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)"
GOOGLEBOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
AHREFS_UA = "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)"
CURL_UA = "curl/8.5.0"


def captured_headers(name: str) -> list[tuple[str, str]]:
    """The headers of a capture in tests/data/headers, in wire order."""
    data = json.loads((HEADERS / f"{name}.json").read_text())
    return [(str(header), str(value)) for header, value in data["headers"]]


def browser_headers(
    *, drop: Iterable[str] = (), extra: Iterable[tuple[str, str]] = (), user_agent: str | None = None
) -> list[tuple[str, str]]:
    """A real headful Chromium navigation without its Host (the URL gives it): no signal on any host."""
    dropped = {name.lower() for name in (*drop, "host")}
    if user_agent is not None:
        dropped.add("user-agent")
    headers = [(name, value) for name, value in captured_headers("chromium-headful-navigation")]
    kept = [(name, value) for name, value in headers if name.lower() not in dropped]
    if user_agent is not None:
        kept.append(("User-Agent", user_agent))
    return kept + list(extra)


def facts_for(
    url: str = "http://example.org/",
    *,
    headers: Sequence[tuple[str, str]] = (),
    method: str = "GET",
    ip: str = CLIENT,
    http_version: str = "1.1",
    proxies: TrustedProxies = NO_PROXIES,
) -> Facts:
    scope = scope_for(method, url, ip, headers)
    scope["http_version"] = http_version
    return Facts.from_scope(scope, proxies)


def decide(
    policy: Policy,
    url: str = "http://example.org/",
    *,
    headers: Sequence[tuple[str, str]] = (),
    method: str = "GET",
    ip: str = CLIENT,
    http_version: str = "1.1",
    proxies: TrustedProxies = NO_PROXIES,
) -> Decision:
    """What `policy` decides for one request."""
    facts = facts_for(url, headers=headers, method=method, ip=ip, http_version=http_version, proxies=proxies)
    return policy.evaluate(facts, policy.fingerprint(facts))


def write_rules(directory: Path, text: str, name: str = "rules.yaml") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text).lstrip("\n"))
    return path


def policy_from(directory: Path, text: str) -> Policy:
    return load_policy(write_rules(directory, text))


def line_of(path: Path, text: str) -> int:
    """The 1-based number of the first line of `path` containing `text`."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} is not in {path}")


def run_gate(*arguments: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m gate ARGUMENTS`, with GATE_RULES unset so the shipped rules are the default."""
    environment = {name: value for name, value in os.environ.items() if name != "GATE_RULES"}
    return subprocess.run(
        [sys.executable, "-m", "gate", *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )
