"""Policy.evaluate: rules in order, weigh rules and signals adding to a score, thresholds, the default, and the
reasons that explain a decision; then what the shipped policy decides for typical clients, and `gate check`."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from gate.net import TrustedProxies
from gate.policy import shipped_rules
from gate.policy.engine import Policy
from gate.policy.load import load_policy
from gate.policy.model import Action
from tests.policy.helpers import (
    AHREFS_UA,
    CHATGPT_USER_UA,
    CHROME_UA,
    CLAUDEBOT_UA,
    CURL_UA,
    GOOD,
    GOOGLEBOT_UA,
    GPTBOT_UA,
    browser_headers,
    captured_headers,
    decide,
    facts_for,
    line_of,
    policy_from,
    run_gate,
    write_rules,
)

NO_UA: list[tuple[str, str]] = []  # no User-Agent: the signal empty-user-agent (3)


@pytest.fixture(scope="module")
def shipped() -> Policy:
    return load_policy(shipped_rules())


# Order, score, thresholds, default


def test_the_first_terminal_rule_that_matches_decides(tmp_path: Path) -> None:
    policy = policy_from(
        tmp_path,
        """
        rules:
          - {name: other-path, match: {path: /other}, action: deny}
          - {name: first, match: {path: /page}, action: allow}
          - {name: second, match: {path: /page}, action: deny}
        """,
    )
    decision = decide(policy, "http://example.org/page", headers=browser_headers())
    assert (decision.action, decision.rule) == (Action.ALLOW, "first")


def test_a_rule_without_match_always_applies(tmp_path: Path) -> None:
    policy = policy_from(tmp_path, "rules: [{name: everyone, action: deny, status: 451}]")
    decision = decide(policy, headers=NO_UA)
    assert (decision.action, decision.rule, decision.status) == (Action.DENY, "everyone", 451)


def test_weigh_rules_add_to_the_score_and_evaluation_goes_on(tmp_path: Path) -> None:
    policy = policy_from(
        tmp_path,
        """
        rules:
          - {name: posts, match: {method: POST}, action: weigh, weight: 2}
          - {name: admin, match: {path: /admin/**}, action: weigh, weight: 1.5}
          - {name: not-taken, match: {path: /elsewhere}, action: weigh, weight: 100}
          - {name: login, match: {path: /admin/login}, action: challenge, difficulty: 10}
        """,
    )
    decision = decide(policy, "http://example.org/admin/login", method="POST", headers=browser_headers())
    assert (decision.action, decision.rule, decision.difficulty) == (Action.CHALLENGE, "login", 10)
    assert decision.score == 3.5
    assert [reason.split(" (")[0] for reason in decision.reasons] == ["rule posts", "rule admin", "rule login"]


def test_a_weigh_rule_alone_decides_nothing(tmp_path: Path) -> None:
    policy = policy_from(tmp_path, "rules: [{name: heavy, action: weigh, weight: 50}]\ndefault: {action: deny}")
    decision = decide(policy, headers=browser_headers())
    assert (decision.action, decision.rule, decision.score) == (Action.DENY, "default", 50)


def test_signal_weights_add_to_the_score(tmp_path: Path) -> None:
    policy = policy_from(tmp_path, "thresholds: [{name: five, score: 5, action: deny}]")
    assert decide(policy, headers=NO_UA).score == 3  # empty-user-agent
    decision = decide(policy, headers=NO_UA, http_version="1.0")  # and http-1.0
    assert (decision.rule, decision.score) == ("five", 5)


SCORED = """
rules:
  - {name: plus-one, match: {query: {one: true}}, action: weigh, weight: 1}
  - {name: plus-four, match: {query: {four: true}}, action: weigh, weight: 4}
  - {name: plus-eight, match: {query: {eight: true}}, action: weigh, weight: 8}
thresholds:
  - {name: two, score: 2, action: challenge, difficulty: 18}
  - {name: eight, score: 8, action: deny}
  - {name: five, score: 5, action: challenge, difficulty: 22}
default: {action: challenge, difficulty: 16}
"""


@pytest.mark.parametrize(
    ("query", "score", "rule", "action", "difficulty"),
    [
        ("", 0, "default", Action.CHALLENGE, 16),
        ("one", 1, "default", Action.CHALLENGE, 16),
        ("one&four", 5, "five", Action.CHALLENGE, 22),  # exactly on a threshold reaches it
        ("four", 4, "two", Action.CHALLENGE, 18),
        ("one&four&eight", 13, "eight", Action.DENY, None),
        ("eight", 8, "eight", Action.DENY, None),
    ],
)
def test_the_highest_threshold_reached_decides_else_the_default(
    tmp_path: Path, query: str, score: float, rule: str, action: Action, difficulty: int | None
) -> None:
    policy = policy_from(tmp_path, SCORED)
    decision = decide(policy, f"http://example.org/?{query}", headers=browser_headers())
    assert (decision.score, decision.rule, decision.action, decision.difficulty) == (score, rule, action, difficulty)


def test_without_a_default_the_built_in_one_allows(tmp_path: Path) -> None:
    policy = policy_from(tmp_path, "rules: [{name: never, match: {path: /never}, action: deny}]")
    decision = decide(policy, headers=NO_UA)
    assert (decision.action, decision.rule) == (Action.ALLOW, "default")
    assert decision.reasons[-1].endswith("default (built-in)")


def test_signal_weights_override_the_defaults(tmp_path: Path) -> None:
    policy = policy_from(
        tmp_path,
        """
        signal_weights: {empty-user-agent: 10, http-1.0: 0}
        thresholds: [{name: ten, score: 10, action: deny}]
        """,
    )
    decision = decide(policy, headers=NO_UA, http_version="1.0")
    assert (decision.rule, decision.score) == ("ten", 10)
    assert "signal http-1.0: HTTP/1.0, which no current browser speaks (+0)" in decision.reasons


def test_threshold_and_default_effects_carry_their_parameters(tmp_path: Path) -> None:
    policy = load_policy(GOOD / "scoring.yaml")
    admin = "http://example.org/admin/x"  # the weigh rule adds 4
    low = decide(policy, admin, headers=browser_headers(drop=["accept-language"]))  # no-accept-language: -1
    assert (low.rule, low.score, low.action, low.difficulty) == ("low", 3, Action.CHALLENGE, 18)
    middle = decide(policy, admin, headers=browser_headers(drop=["accept"]))  # no-accept: 2
    assert (middle.rule, middle.score, middle.action, middle.limit) == ("middle", 6, Action.THROTTLE, "slow")
    high = decide(policy, admin, headers=NO_UA)  # empty-user-agent: 10
    assert (high.rule, high.score, high.action, high.status) == ("high", 14, Action.DENY, 429)
    fractional = decide(policy, admin, headers=browser_headers(), http_version="1.0")  # http-1.0: 0.5
    assert (fractional.rule, fractional.score) == ("low", 4.5)


# Reasons


def test_reasons_name_each_signal_with_its_weight_and_the_rule_with_its_source(tmp_path: Path) -> None:
    path = write_rules(
        tmp_path,
        """
        rules:
          - {name: nosy, match: {header: {user-agent: false}}, action: weigh, weight: 2}
          - name: no-agent
            match: {signal: empty-user-agent}
            action: deny
        """,
    )
    decision = decide(load_policy(path), headers=NO_UA, http_version="1.0")
    assert decision.reasons == (
        "signal empty-user-agent: no User-Agent header (+3)",
        "signal http-1.0: HTTP/1.0, which no current browser speaks (+2)",
        f"rule nosy ({path}:{line_of(path, 'nosy')}): header user-agent absent (+2)",
        f"rule no-agent ({path}:{line_of(path, 'no-agent')}): signal empty-user-agent",
    )
    assert decision.score == 7


def test_reasons_name_the_threshold_reached_and_its_source(tmp_path: Path) -> None:
    path = write_rules(tmp_path, SCORED)
    decision = decide(load_policy(path), "http://example.org/?eight", headers=browser_headers())
    threshold_line = line_of(path, "name: eight")
    assert decision.reasons[-1] == f"score 8 reached threshold eight (8, {path}:{threshold_line})"


def test_reasons_say_when_the_default_decided(tmp_path: Path) -> None:
    path = write_rules(tmp_path, SCORED)
    decision = decide(load_policy(path), "http://example.org/?one", headers=browser_headers())
    assert decision.reasons[-1] == (
        f"no rule matched and score 1 is below every threshold: default ({path}:{line_of(path, 'default:')})"
    )


def test_negative_weights_read_as_subtractions(tmp_path: Path) -> None:
    # weights may be negative (docs/rules.md); "(+-3)" is what a reader of `gate check` should not have to parse
    policy = policy_from(
        tmp_path,
        """
        signal_weights: {empty-user-agent: -1}
        rules: [{name: trusted-office, match: {cidr: 192.0.2.0/24}, action: weigh, weight: -3}]
        """,
    )
    decision = decide(policy, headers=NO_UA, ip="192.0.2.1")
    assert decision.score == -4
    assert decision.reasons[0].endswith("(-1)")
    assert decision.reasons[1].endswith("(-3)")


# Actions


def test_each_action_carries_its_parameters() -> None:
    policy = load_policy(GOOD / "actions.yaml")
    chrome = browser_headers()
    gone = decide(policy, "http://example.org/gone/x", headers=chrome)
    assert (gone.action, gone.status) == (Action.DENY, 410)
    closed = decide(policy, "http://example.org/private/x", headers=chrome)
    assert (closed.action, closed.status) == (Action.DENY, None)
    work = decide(policy, "http://example.org/work/x", headers=chrome)
    assert (work.action, work.difficulty) == (Action.CHALLENGE, 32)
    slower = decide(policy, "http://example.org/search", headers=chrome)
    assert (slower.action, slower.limit, slower.status) == (Action.THROTTLE, "hourly", 503)
    teapot = decide(policy, "http://example.org/teapot", headers=chrome)
    assert (teapot.action, teapot.status) == (Action.ALLOW, 418)
    bot = decide(policy, headers=[("User-Agent", "GPTBot/1.2")])  # no agent lists here: an other-bot
    assert (bot.rule, bot.difficulty) == ("everything-else", 16)


def test_a_challenge_of_difficulty_zero_keeps_its_zero(tmp_path: Path) -> None:
    # 0 is in the documented range 0-32; it must not turn into "no difficulty given"
    decision = decide(load_policy(GOOD / "actions.yaml"), "http://example.org/easy/x", headers=browser_headers())
    assert (decision.rule, decision.action, decision.difficulty) == ("no-work", Action.CHALLENGE, 0)


def test_a_ja4_fingerprint_is_believed_only_from_a_trusted_proxy() -> None:
    policy = load_policy(GOOD / "fingerprints.yaml")
    headers = browser_headers(extra=[("X-JA4", "t13d1516h2_8daaf6152771_e5627efa2ab1")])
    proxies = TrustedProxies([ipaddress.ip_network("10.0.0.0/8")])
    trusted = decide(policy, headers=headers, ip="10.0.0.2", proxies=proxies)
    assert (trusted.action, trusted.rule, trusted.score) == (Action.DENY, "tools", 5)
    assert trusted.reasons[0].startswith("signal ja4:scraping-tools: TLS fingerprint t13d1516h2_")
    untrusted = decide(policy, headers=headers, ip="203.0.113.9", proxies=proxies)
    assert (untrusted.action, untrusted.rule, untrusted.score) == (Action.ALLOW, "default", 0)


# Every match key: a request it matches and one it does not

CASES: list[tuple[str, str, dict[str, Any] | None, dict[str, Any] | None]] = [
    ("agent_class", "{agent_class: [ai-crawler, seo-crawler]}", {"ua": GPTBOT_UA}, {"ua": CURL_UA}),
    ("agent-any-case", "{agent: [gptbot]}", {"ua": GPTBOT_UA}, {"ua": CLAUDEBOT_UA}),
    ("user_agent", '{user_agent: "(?i)python-requests/2\\\\."}', {"ua": "Python-Requests/2.32"}, {"ua": "curl/2.1"}),
    ("path-star", "{path: /blog/*}", {"url": "/blog/post"}, {"url": "/blog/2024/post"}),
    ("path-double-star", "{path: /docs/**}", {"url": "/docs/a/b/c"}, {"url": "/documents"}),
    ("path-suffix", '{path: "**.xml"}', {"url": "/a/b/sitemap.xml"}, {"url": "/sitemap.xml.gz"}),
    ("path-question-mark", '{path: "/v?/api"}', {"url": "/v2/api"}, {"url": "/v10/api"}),
    ("path-decoded", '{path: "/a b/*"}', {"url": "/a%20b/c"}, {"url": "/a%2520b/c"}),
    ("path_regex", '{path_regex: "^/wp-(admin|login)"}', {"url": "/wp-login.php"}, {"url": "/blog/wp-login.php"}),
    ("method", "{method: [post, PUT]}", {"method": "PUT"}, {"method": "GET"}),
    (
        "host-glob",
        '{host: ["*.example.org"]}',
        {"url": "http://www.example.org:8080/"},
        {"url": "http://a.b.example.org/"},
    ),
    ("host-exact", "{host: example.net}", {"url": "http://EXAMPLE.net/"}, {"url": "http://example.org/"}),
    ("header-present", "{header: {Cookie: true}}", {"extra": [("cookie", "a=1")]}, {}),
    ("header-absent", "{header: {accept-language: false}}", {"drop": ["accept-language"]}, {}),
    ("header-regex", '{header: {accept: "^image/"}}', {"extra": [("accept", "image/png")], "drop": ["accept"]}, {}),
    ("query-present", "{query: {replytocom: true}}", {"url": "/p?x=1&replytocom=5"}, {"url": "/p?reply=5"}),
    ("query-absent", "{query: {debug: false}}", {"url": "/p?x=1"}, {"url": "/p?debug"}),
    ("query-regex", '{query: {page: "^[0-9]+$"}}', {"url": "/p?page=12"}, {"url": "/p?page=12a"}),
    ("network", "{network: office}", {"ip": "192.0.2.55"}, {"ip": "198.51.100.1"}),
    ("cidr", '{cidr: ["2001:db8::/32", 198.51.100.7]}', {"ip": "2001:db8::1"}, {"ip": "198.51.100.8"}),
    ("verified-false", "{verified: false}", {"ua": GOOGLEBOT_UA}, None),  # nothing is verified yet
    ("verified-true", "{verified: true}", None, {"ua": GOOGLEBOT_UA}),
    ("signal", "{signal: [http-1.0, library-headers]}", {"version": "1.0"}, {"version": "1.1"}),
    ("any", "{any: [{method: POST}, {path: /login}]}", {"url": "/login"}, {"url": "/"}),
    ("all", "{all: [{method: POST}, {path: /login}]}", {"url": "/login", "method": "POST"}, {"url": "/login"}),
    ("not", "{not: {method: GET}}", {"method": "POST"}, {"method": "GET"}),
    ("keys-together", "{method: POST, path: /login}", {"url": "/login", "method": "POST"}, {"method": "POST"}),
]


def request(policy: Policy, spec: dict[str, Any]) -> tuple[Action, str]:
    url = spec.get("url", "/")
    headers = browser_headers(
        drop=spec.get("drop", ()), extra=spec.get("extra", ()), user_agent=spec.get("ua", CHROME_UA)
    )
    decision = decide(
        policy,
        url if url.startswith("http") else "http://example.org" + url,
        headers=headers,
        method=spec.get("method", "GET"),
        ip=spec.get("ip", "203.0.113.7"),
        http_version=spec.get("version", "1.1"),
    )
    return decision.action, decision.rule


@pytest.mark.parametrize(("key", "match", "matching", "other"), CASES, ids=[case[0] for case in CASES])
def test_match_key(
    tmp_path: Path, key: str, match: str, matching: dict[str, Any] | None, other: dict[str, Any] | None
) -> None:
    agents = "agents: [shipped:agents/*.yaml]" if key.startswith("agent") else ""
    policy = policy_from(
        tmp_path,
        f"""
        {agents}
        networks: {{office: [192.0.2.0/24]}}
        rules: [{{name: hit, match: {match}, action: deny}}]
        """,
    )
    if matching is not None:
        assert request(policy, matching) == (Action.DENY, "hit")
    if other is not None:
        assert request(policy, other) == (Action.ALLOW, "default")


# The shipped policy


@pytest.mark.parametrize(
    ("user_agent", "path", "action", "rule", "difficulty"),
    [
        (GPTBOT_UA, "/essays/one.html", Action.DENY, "impostors", None),  # not from OpenAI's published ranges
        (CHATGPT_USER_UA, "/essays/one.html", Action.DENY, "impostors", None),
        # Googlebot's and AhrefsBot's claims may still be proven by reverse DNS (tests/verify), so the fingerprint
        # alone leaves them unproven rather than impostors
        (GOOGLEBOT_UA, "/essays/one.html", Action.CHALLENGE, "unverified-search-engine-claims", 18),
        (CLAUDEBOT_UA, "/essays/one.html", Action.TERMS, "ai-agents-get-terms", None),  # publishes no ranges
        ("Mozilla/5.0 (compatible; YandexBot/3.0)", "/", Action.CHALLENGE, "unverified-search-engine-claims", 18),
        (CURL_UA, "/", Action.CHALLENGE, "libraries-and-headless-browsers", 20),
        (AHREFS_UA, "/", Action.DENY, "seo-crawlers", None),
        ("Nuclei - Open-source project (github.com/projectdiscovery/nuclei)", "/", Action.DENY, "scanners", None),
        ("Mozilla/5.0 (compatible; SomeNewBot/0.1)", "/", Action.CHALLENGE, "unknown-bots", 20),
        (GPTBOT_UA, "/robots.txt", Action.ALLOW, "site-files", None),
        (AHREFS_UA, "/.well-known/security.txt", Action.ALLOW, "site-files", None),
        (CURL_UA, "/.gate/challenge", Action.ALLOW, "site-files", None),
        (GPTBOT_UA, "/feed", Action.ALLOW, "feeds", None),
        (CURL_UA, "/feed/", Action.ALLOW, "feeds", None),
        (CURL_UA, "/blog/feed/atom.xml", Action.ALLOW, "feeds", None),
        (CURL_UA, "/rss", Action.ALLOW, "feeds", None),
        (CURL_UA, "/podcast.rss", Action.ALLOW, "feeds", None),
    ],
)
def test_shipped_policy_decides_for_typical_clients(
    shipped: Policy, user_agent: str, path: str, action: Action, rule: str, difficulty: int | None
) -> None:
    decision = decide(shipped, "https://blog.example" + path, headers=[("User-Agent", user_agent)])
    assert (decision.action, decision.rule, decision.difficulty) == (action, rule, difficulty)


@pytest.mark.parametrize(
    ("user_agent", "ip", "action", "rule"),
    [
        (GOOGLEBOT_UA, "66.249.66.1", Action.ALLOW, "verified-search-engines"),
        (GPTBOT_UA, "4.227.36.1", Action.TERMS, "ai-agents-get-terms"),
        (CHATGPT_USER_UA, "4.151.71.177", Action.TERMS, "ai-agents-get-terms"),
        (GPTBOT_UA, "66.249.66.1", Action.DENY, "impostors"),  # a Google address is not OpenAI's
    ],
)
def test_a_crawler_from_its_operators_published_ranges_is_verified(
    shipped: Policy, user_agent: str, ip: str, action: Action, rule: str
) -> None:
    facts = facts_for("https://blog.example/essays/one.html", headers=[("User-Agent", user_agent)], ip=ip)
    signals = shipped.fingerprint(facts)
    decision = shipped.evaluate(facts, signals)
    assert (decision.action, decision.rule) == (action, rule)
    assert signals.verified is (rule != "impostors")
    assert ("impostor" in signals.names) is (rule == "impostors")


def test_shipped_policy_gives_a_clean_chromium_the_default_light_challenge(shipped: Policy) -> None:
    facts = facts_for("http://127.0.0.1/", headers=captured_headers("chromium-headful-navigation"))
    signals = shipped.fingerprint(facts)
    decision = shipped.evaluate(facts, signals)
    assert (signals.agent_class, signals.findings) == ("browser", ())
    assert (decision.action, decision.rule, decision.difficulty, decision.score) == (Action.CHALLENGE, "default", 16, 0)
    assert len(decision.reasons) == 1


def test_shipped_policy_names_headless_chromium_by_its_user_agent(shipped: Policy) -> None:
    decision = decide(shipped, "http://127.0.0.1/", headers=captured_headers("chromium-navigation"))
    assert (decision.rule, decision.difficulty) == ("libraries-and-headless-browsers", 20)


def an_address_listed_in(name: str) -> str:
    """A host address of the first range in the shipped network list rules/networks/NAME.txt."""
    for line in (shipped_rules() / "networks" / f"{name}.txt").read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            network = ipaddress.ip_network(text, strict=False)
            return str(network.network_address + (1 if network.num_addresses > 1 else 0))
    raise AssertionError(f"{name}.txt lists no network")


def test_shipped_policy_weighs_a_browser_from_a_data_centre(shipped: Policy) -> None:
    decision = decide(shipped, "https://blog.example/", headers=browser_headers(), ip=an_address_listed_in("aws"))
    assert (decision.rule, decision.difficulty, decision.score) == ("suspicious-browser", 20, 3)
    assert any(reason.startswith("rule browser-from-a-data-centre (") for reason in decision.reasons)


def test_shipped_policy_gives_terms_to_any_client_from_an_ai_operator(shipped: Policy) -> None:
    decision = decide(shipped, headers=[("User-Agent", CURL_UA)], ip=an_address_listed_in("openai"))
    assert (decision.action, decision.rule) == (Action.TERMS, "ai-operator-networks")


def test_shipped_policy_challenges_a_library_in_a_browser_user_agent_harder(shipped: Policy) -> None:
    headers = [
        (name, CHROME_UA if name.lower() == "user-agent" else value)
        for name, value in captured_headers("python-requests")
    ]
    facts = facts_for("http://127.0.0.1/", headers=headers)
    signals = shipped.fingerprint(facts)
    decision = shipped.evaluate(facts, signals)
    assert signals.agent_class == "browser"
    assert {"library-headers", "no-client-hints", "no-accept-language"} <= signals.names
    assert (decision.action, decision.rule, decision.difficulty) == (Action.CHALLENGE, "inconsistent-browser", 22)
    assert decision.score >= 6


# gate check

CONTRACT = {"action", "rule", "agent_class", "agent", "verified", "score", "reasons"}


def test_check_explains_one_request_as_json() -> None:
    result = run_gate("check", "--url", "https://blog.example/essays/", "--header", f"User-Agent: {CURL_UA}")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert set(answer) >= CONTRACT
    assert answer["action"] == "challenge"
    assert answer["rule"] == "libraries-and-headless-browsers"
    assert (answer["agent_class"], answer["agent"], answer["verified"]) == ("http-library", "curl", False)
    assert answer["difficulty"] == 20
    assert answer["score"] == 0
    assert len(answer["reasons"]) == 1
    assert "rule libraries-and-headless-browsers (" in answer["reasons"][0]


def test_check_reads_the_rules_given(tmp_path: Path) -> None:
    rules = write_rules(tmp_path, "rules: [{name: closed, action: deny, status: 410}]")
    result = run_gate("check", "--rules", str(rules), "--url", "http://example.org/", "--method", "post")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert (answer["action"], answer["rule"], answer["status"]) == ("deny", "closed", 410)
    assert answer["agent_class"] == "unknown"


def test_check_answers_one_json_line_per_request_line() -> None:
    lines = [
        json.dumps({"url": "https://blog.example/", "headers": {"User-Agent": GPTBOT_UA}, "ip": "4.227.36.1"}),
        "",
        "{not json",
        "[1, 2]",
        json.dumps({"url": "ftp://blog.example/"}),
        json.dumps({"url": "https://blog.example/", "headers": "User-Agent: curl"}),
        json.dumps({"url": "https://blog.example/", "ip": "not-an-ip"}),
        json.dumps({"method": "POST", "url": "https://blog.example/robots.txt", "ip": "2001:db8::1"}),
    ]
    result = run_gate("check", "--jsonl", "-", stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(answers) == 7  # the blank line gets no answer
    assert (answers[0]["action"], answers[0]["agent"]) == ("terms", "GPTBot")
    assert set(answers[0]) >= CONTRACT
    assert [answer.get("line") for answer in answers[1:6]] == [3, 4, 5, 6, 7]
    assert all(set(answer) == {"line", "error"} for answer in answers[1:6])
    assert "ftp://blog.example/" in answers[3]["error"]
    assert (answers[6]["action"], answers[6]["rule"]) == ("allow", "site-files")


def test_check_without_a_url_is_an_error() -> None:
    result = run_gate("check")
    assert result.returncode == 2
    assert result.stderr.startswith("gate: error: ")
