"""A policy with many rules looks its candidate rules up instead of trying them all: the decisions, reasons and
scores are exactly those of trying every rule in order, for every kind of condition."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gate.policy.engine import Policy
from gate.policy.index import INDEX_FROM
from gate.policy.load import load_policy
from tests.policy.helpers import (
    CHROME_UA,
    CLAUDEBOT_UA,
    CURL_UA,
    GPTBOT_UA,
    browser_headers,
    facts_for,
)

# Every kind of condition, several times over, so the policy is past INDEX_FROM and each rule can be the one.
CONDITIONS = [
    {"method": ["POST", "DELETE"]},
    {"agent_class": ["ai-crawler"]},
    {"agent": ["ClaudeBot"]},
    {"signal": ["library-headers"]},
    {"header": {"x-probe": True}},
    {"header": {"x-token": "^secret-"}},
    {"header": {"accept-language": False}},
    {"path": ["/private/**", "/admin/*"]},
    {"path": ["**.xml"]},
    {"path": ["/"]},
    {"path_regex": "^/wp-"},
    {"user_agent": "(?i)curl/"},
    {"user_agent": "python-requests"},
    {"cidr": ["198.51.100.0/24", "2001:db8::/32"]},
    {"host": ["*.example.net"]},
    {"query": {"replytocom": True}},
    {"all": [{"method": ["GET"]}, {"path": ["/feed/**"]}]},
    {"any": [{"agent": ["GPTBot"]}, {"path": ["/secret/**"]}]},
    {"not": {"method": ["GET", "HEAD"]}},
    {"method": ["GET"], "path": ["/private/**"], "user_agent": "Chrome"},
]
ACTIONS: list[dict[str, object]] = [
    {"action": "weigh", "weight": 1.5},
    {"action": "deny"},
    {"action": "challenge", "difficulty": 18},
]
URLS = [
    "http://example.org/",
    "http://example.org/private/notes",
    "http://example.org/admin/users",
    "http://example.org/sitemap.xml",
    "http://example.org/wp-login.php",
    "http://example.org/feed/rss?replytocom=3",
    "http://example.org/secret/x",
    "http://blog.example.net/essays/one",
]
CLIENTS = [
    browser_headers(),
    browser_headers(user_agent=GPTBOT_UA),
    [("User-Agent", CLAUDEBOT_UA)],
    [("User-Agent", CURL_UA), ("Accept", "*/*")],
    [("User-Agent", "python-requests/2.32.3"), ("X-Probe", "1")],
    browser_headers(extra=[("X-Token", "secret-42")]),
    browser_headers(drop=["accept-language"], user_agent=CHROME_UA),
]


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> tuple[Policy, Policy]:
    """The same rules twice: one looks its rules up, one is made to try them all."""
    rules: list[dict[str, object]] = [
        {"name": f"rule-{number}", "match": CONDITIONS[number % len(CONDITIONS)], **ACTIONS[number % len(ACTIONS)]}
        for number in range(3 * len(CONDITIONS))
    ]
    path = tmp_path_factory.mktemp("index") / "rules.yaml"
    # Behind the shipped rules' import (its agent lists, networks and rules come after these).
    path.write_text(json.dumps({"version": 1, "import": ["shipped:default.yaml"], "rules": rules}))
    indexed, linear = load_policy(path), load_policy(path)
    object.__setattr__(linear, "index", None)  # no index: every rule is tried
    assert len(indexed.rules) >= INDEX_FROM and indexed.index is not None
    return indexed, linear


@settings(max_examples=300, deadline=None)
@given(
    url=st.sampled_from(URLS),
    headers=st.sampled_from(CLIENTS),
    method=st.sampled_from(["GET", "POST", "HEAD", "DELETE"]),
    ip=st.sampled_from(["203.0.113.7", "198.51.100.20", "2001:db8::5", "192.0.2.1"]),
)
def test_looking_rules_up_decides_exactly_as_trying_them_all(
    policies: tuple[Policy, Policy], url: str, headers: list[tuple[str, str]], method: str, ip: str
) -> None:
    indexed, linear = policies
    facts = facts_for(url, headers=headers, method=method, ip=ip)
    signals = indexed.fingerprint(facts)
    assert indexed.evaluate(facts, signals) == linear.evaluate(facts, signals)


def test_the_shipped_size_of_policy_builds_no_index(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        json.dumps({"version": 1, "rules": [{"name": "r", "match": {"method": ["POST"]}, "action": "deny"}]})
    )
    assert load_policy(path).index is None


def test_more_user_agent_regexes_than_one_re2_set_holds_are_still_matched(tmp_path: Path) -> None:
    # Each regex compiles alone, but together they pass RE2's memory budget for one set: tried one by one instead.
    rules = [
        {"name": f"tool-{n}", "match": {"user_agent": rf"Mozilla/5\.0 .{{0,100}}tool{n}\b"}, "action": "deny"}
        for n in range(300)
    ]
    path = tmp_path / "rules.yaml"
    path.write_text(json.dumps({"version": 1, "import": ["shipped:default.yaml"], "rules": rules}))
    policy = load_policy(path)
    facts = facts_for(headers=[("User-Agent", "Mozilla/5.0 (X11) tool277 crawler")])
    decision = policy.evaluate(facts, policy.fingerprint(facts))
    assert (decision.action.value, decision.rule) == ("deny", "tool-277")


def test_a_newline_in_the_path_cannot_slip_past_a_glob(tmp_path: Path) -> None:
    rules = [{"name": "admin", "match": {"path": ["/admin/**"]}, "action": "deny"}]
    path = tmp_path / "rules.yaml"
    path.write_text(json.dumps({"version": 1, "import": ["shipped:default.yaml"], "rules": rules}))
    policy = load_policy(path)
    for url in ("http://example.org/admin/x", "http://example.org/admin/%0Ax", "http://example.org/admin/a%0D%0Ab"):
        facts = facts_for(url, headers=browser_headers())
        assert policy.evaluate(facts, policy.fingerprint(facts)).rule == "admin", url
